/**
 * Photometric augmentation of one view (MoCo v2 "aug+", the last step of making a view) as pure functions over
 * RGB floats in [0, 1] (HWC interleaved), so they run in workers: colour jitter in random order with
 * torchvision semantics, random grayscale, Gaussian blur, and ImageNet normalisation.
 *
 * Differences from the release, on purpose: values stay in float between ops instead of being rounded to
 * 8 bits by PIL; the blur is a true separable Gaussian (reflect padding) instead of PIL's box
 * approximation, with kernel size 2·⌊0.05·R⌋ + 1 (23 at R = 224, 7 at R = 64: SimCLR/BYOL's 10% of the
 * view) and σ drawn in [0.1, 2] px *at the 224-px reference*, scaled by R/224 so the blur covers the same
 * fraction of the view at every resolution (at R = 224 this is exactly MoCo v2's range).
 *
 * @module
 */
import type { Rng } from "../util/rng.ts";

/** Parameters of the photometric pipeline. */
export interface PhotometricConfig {
  /** Colour-jitter strengths (factors uniform in [1 − s, 1 + s]; hue shift uniform in [−hue, hue]). */
  brightness: number;
  /** Contrast jitter strength. */
  contrast: number;
  /** Saturation jitter strength. */
  saturation: number;
  /** Hue jitter strength. */
  hue: number;
  /** Probability that colour jitter is applied. */
  jitterP: number;
  /** Probability of grayscale. */
  grayscaleP: number;
  /** Probability of Gaussian blur. */
  blurP: number;
  /** σ range in pixels at R = 224 (scaled by R/224). */
  blurSigma: [number, number];
}

/** MoCo v2 / PLRC defaults. */
export const DEFAULT_PHOTOMETRIC: PhotometricConfig = {
  brightness: 0.4,
  contrast: 0.4,
  saturation: 0.4,
  hue: 0.1,
  jitterP: 0.8,
  grayscaleP: 0.2,
  blurP: 0.5,
  blurSigma: [0.1, 2.0],
};

/** ImageNet channel means and standard deviations. */
export const IMAGENET_MEAN: readonly number[] = [0.485, 0.456, 0.406];
/** ImageNet channel standard deviations. */
export const IMAGENET_STD: readonly number[] = [0.229, 0.224, 0.225];

/** ITU-R 601-2 luma weights (PIL's "L" conversion; torchvision's tensor path rounds 0.299 to 0.2989). */
export const LUMA = [0.299, 0.587, 0.114] as const;

const clamp01 = (v: number) => (v < 0 ? 0 : v > 1 ? 1 : v);

/** Multiplies every value by `f`, clamped to [0, 1] (torchvision adjust_brightness). */
export function adjustBrightness(px: Float32Array, f: number): void {
  for (let k = 0; k < px.length; k++) px[k] = clamp01(px[k] * f);
}

/** Blends with the mean grayscale value: f·x + (1 − f)·mean(gray), clamped (adjust_contrast). */
export function adjustContrast(px: Float32Array, f: number): void {
  let sum = 0;
  for (let k = 0; k < px.length; k += 3) sum += LUMA[0] * px[k] + LUMA[1] * px[k + 1] + LUMA[2] * px[k + 2];
  const m = (1 - f) * (sum / (px.length / 3));
  for (let k = 0; k < px.length; k++) px[k] = clamp01(f * px[k] + m);
}

/** Blends each pixel with its grayscale value: f·x + (1 − f)·gray, clamped (adjust_saturation). */
export function adjustSaturation(px: Float32Array, f: number): void {
  for (let k = 0; k < px.length; k += 3) {
    const g = (1 - f) * (LUMA[0] * px[k] + LUMA[1] * px[k + 1] + LUMA[2] * px[k + 2]);
    px[k] = clamp01(f * px[k] + g);
    px[k + 1] = clamp01(f * px[k + 1] + g);
    px[k + 2] = clamp01(f * px[k + 2] + g);
  }
}

/** Shifts hue by `shift` turns (in [−0.5, 0.5]) in HSV space (adjust_hue). */
export function adjustHue(px: Float32Array, shift: number): void {
  for (let k = 0; k < px.length; k += 3) {
    const r = px[k], g = px[k + 1], b = px[k + 2];
    const max = Math.max(r, g, b), min = Math.min(r, g, b), c = max - min;
    if (c === 0) continue; // gray pixels have no hue
    let h: number;
    if (max === r) h = ((g - b) / c) / 6;
    else if (max === g) h = ((b - r) / c + 2) / 6;
    else h = ((r - g) / c + 4) / 6;
    h = (((h + shift) % 1) + 1) % 1;
    const s = c / max, v = max;
    // HSV → RGB
    const h6 = h * 6, i = Math.floor(h6) % 6, f = h6 - Math.floor(h6);
    const p = v * (1 - s), q = v * (1 - s * f), t = v * (1 - s * (1 - f));
    let o0: number, o1: number, o2: number;
    switch (i) {
      case 0:
        [o0, o1, o2] = [v, t, p];
        break;
      case 1:
        [o0, o1, o2] = [q, v, p];
        break;
      case 2:
        [o0, o1, o2] = [p, v, t];
        break;
      case 3:
        [o0, o1, o2] = [p, q, v];
        break;
      case 4:
        [o0, o1, o2] = [t, p, v];
        break;
      default:
        [o0, o1, o2] = [v, p, q];
    }
    px[k] = o0;
    px[k + 1] = o1;
    px[k + 2] = o2;
  }
}

/** Replaces every pixel by its ITU-R 601-2 luma on all three channels. */
export function grayscale(px: Float32Array): void {
  for (let k = 0; k < px.length; k += 3) {
    const g = LUMA[0] * px[k] + LUMA[1] * px[k + 1] + LUMA[2] * px[k + 2];
    px[k] = px[k + 1] = px[k + 2] = g;
  }
}

/** Blur kernel size for an R×R view: 2·⌊0.05·R⌋ + 1 (23 at 224). */
export function blurKernelSize(resolution: number): number {
  return 2 * Math.floor(0.05 * resolution) + 1;
}

/** Normalised 1-D Gaussian weights of odd length `size`. */
export function gaussianKernel(size: number, sigma: number): Float32Array {
  const half = (size - 1) / 2, k = new Float32Array(size);
  let sum = 0;
  for (let t = 0; t < size; t++) sum += k[t] = Math.exp(-((t - half) ** 2) / (2 * sigma * sigma));
  for (let t = 0; t < size; t++) k[t] /= sum;
  return k;
}

/** Reflect (without repeating the edge) index into [0, n). */
function reflect(p: number, n: number): number {
  if (n === 1) return 0;
  while (p < 0 || p >= n) p = p < 0 ? -p : 2 * (n - 1) - p;
  return p;
}

/**
 * Separable Gaussian blur of a `width`×`height` RGB image in place, reflect padding (torchvision). Outer taps
 * with weight below 1e-9 are skipped (at small σ most of the 23 are): they change no value by more than
 * 3e-8, under float32 resolution, and the blur then costs in proportion to σ.
 */
export function gaussianBlur(px: Float32Array, width: number, height: number, full: Float32Array): void {
  let cut = 0;
  while (cut < (full.length - 1) >> 1 && full[cut] < 1e-9 && full[full.length - 1 - cut] < 1e-9) cut++;
  const kernel = full.subarray(cut, full.length - cut);
  const half = (kernel.length - 1) >> 1, tmp = new Float32Array(px.length);
  const idx = new Int32Array(Math.max(width, height) + 2 * half);
  // Horizontal.
  for (let t = -half; t < width + half; t++) idx[t + half] = reflect(t, width);
  for (let y = 0; y < height; y++) {
    const row = y * width * 3;
    for (let x = 0; x < width; x++) {
      let a = 0, b = 0, c = 0;
      for (let t = 0; t < kernel.length; t++) {
        const w = kernel[t], p = row + idx[x + t] * 3;
        a += w * px[p];
        b += w * px[p + 1];
        c += w * px[p + 2];
      }
      const q = row + x * 3;
      tmp[q] = a;
      tmp[q + 1] = b;
      tmp[q + 2] = c;
    }
  }
  // Vertical, whole rows at a time.
  for (let t = -half; t < height + half; t++) idx[t + half] = reflect(t, height);
  const rowLen = width * 3;
  px.fill(0);
  for (let y = 0; y < height; y++) {
    const ob = y * rowLen;
    for (let t = 0; t < kernel.length; t++) {
      const w = kernel[t], ib = idx[y + t] * rowLen;
      for (let k = 0; k < rowLen; k++) px[ob + k] += w * tmp[ib + k];
    }
  }
}

/** Colour jitter with torchvision's draw order: the op order, then the four factors, then applied. */
export function colorJitter(px: Float32Array, cfg: PhotometricConfig, rng: Rng): void {
  const order = rng.shuffle([0, 1, 2, 3]);
  const b = rng.uniform(1 - cfg.brightness, 1 + cfg.brightness);
  const c = rng.uniform(1 - cfg.contrast, 1 + cfg.contrast);
  const s = rng.uniform(1 - cfg.saturation, 1 + cfg.saturation);
  const h = rng.uniform(-cfg.hue, cfg.hue);
  for (const op of order) {
    if (op === 0) adjustBrightness(px, b);
    else if (op === 1) adjustContrast(px, c);
    else if (op === 2) adjustSaturation(px, s);
    else adjustHue(px, h);
  }
}

/**
 * The full random photometric pipeline on one `size`×`size` view in place: jitter (p), grayscale (p),
 * blur (p). Draws from `rng` in a fixed order, so a seed fixes the result.
 */
export function photometric(px: Float32Array, size: number, cfg: PhotometricConfig, rng: Rng): void {
  if (rng.next() < cfg.jitterP) colorJitter(px, cfg, rng);
  if (rng.next() < cfg.grayscaleP) grayscale(px);
  if (rng.next() < cfg.blurP) {
    const sigma = rng.uniform(cfg.blurSigma[0], cfg.blurSigma[1]) * size / 224;
    gaussianBlur(px, size, size, gaussianKernel(blurKernelSize(size), sigma));
  }
}

/** Writes (x − mean)/std per channel of an HWC view into `out` at element `offset` (NHWC batch slot). */
export function normalizeInto(
  px: Float32Array,
  out: Float32Array,
  offset: number,
  mean: readonly number[] = IMAGENET_MEAN,
  std: readonly number[] = IMAGENET_STD,
): void {
  const i0 = 1 / std[0], i1 = 1 / std[1], i2 = 1 / std[2];
  for (let k = 0; k < px.length; k += 3) {
    out[offset + k] = (px[k] - mean[0]) * i0;
    out[offset + k + 1] = (px[k + 1] - mean[1]) * i1;
    out[offset + k + 2] = (px[k + 2] - mean[2]) * i2;
  }
}

/** Converts an NHWC tensor to NCHW. */
export function nhwcToNchw(x: Float32Array, n: number, h: number, w: number, c: number): Float32Array {
  const out = new Float32Array(x.length), hw = h * w;
  for (let b = 0; b < n; b++) {
    for (let p = 0; p < hw; p++) {
      const src = (b * hw + p) * c;
      for (let ch = 0; ch < c; ch++) out[(b * c + ch) * hw + p] = x[src + ch];
    }
  }
  return out;
}
