/**
 * Resizing for the decode cache: antialiased area ("box") downscaling of RGB images, where each output
 * pixel is the exact area-weighted mean of the source pixels it covers (separable, so two 1-D passes),
 * and nearest-neighbour resizing of label maps (labels must never be blended).
 *
 * @module
 */
import type { LabelMap, RgbImage } from "./image.ts";

/** The size whose short side is at most `maxShort` (aspect kept, sides rounded, at least 1); unchanged if already small. */
export function fitShortSide(width: number, height: number, maxShort: number): { width: number; height: number } {
  const short = Math.min(width, height);
  if (short <= maxShort) return { width, height };
  const s = maxShort / short;
  return {
    width: width <= height ? maxShort : Math.max(1, Math.round(width * s)),
    height: height < width ? maxShort : Math.max(1, Math.round(height * s)),
  };
}

interface Taps {
  start: Int32Array;
  count: Int32Array;
  weights: Float64Array;
  stride: number;
}

/** Overlap weights of output cells [i·r, (i+1)·r) with source cells [j, j+1), r = src/dst (≥ 1). */
function areaTaps(src: number, dst: number): Taps {
  const r = src / dst, stride = Math.ceil(r) + 1;
  const start = new Int32Array(dst), count = new Int32Array(dst), weights = new Float64Array(dst * stride);
  for (let i = 0; i < dst; i++) {
    const a = i * r, b = Math.min(src, (i + 1) * r);
    const j0 = Math.floor(a), j1 = Math.min(src, Math.ceil(b));
    start[i] = j0, count[i] = j1 - j0;
    for (let j = j0; j < j1; j++) weights[i * stride + j - j0] = (Math.min(b, j + 1) - Math.max(a, j)) / r;
  }
  return { start, count, weights, stride };
}

/**
 * Area-averaging resize of an RGB image to `width`×`height` (each no larger than the source; equal sizes
 * return a copy). Rounds to nearest; deterministic.
 */
export function resizeArea(img: RgbImage, width: number, height: number): RgbImage {
  const W = img.width, H = img.height;
  if (width > W || height > H || width < 1 || height < 1) {
    throw new Error(`resizeArea: ${W}×${H} → ${width}×${height} is not a downscale`);
  }
  if (width === W && height === H) return { width, height, data: img.data.slice() };
  const tx = areaTaps(W, width), ty = areaTaps(H, height);
  // horizontal pass into floats, then vertical pass with rounding
  const mid = new Float64Array(width * H * 3);
  for (let y = 0; y < H; y++) {
    for (let x = 0; x < width; x++) {
      let r = 0, g = 0, b = 0;
      const j0 = tx.start[x], wo = x * tx.stride;
      for (let k = 0; k < tx.count[x]; k++) {
        const w = tx.weights[wo + k], s = (y * W + j0 + k) * 3;
        r += w * img.data[s], g += w * img.data[s + 1], b += w * img.data[s + 2];
      }
      const d = (y * width + x) * 3;
      mid[d] = r, mid[d + 1] = g, mid[d + 2] = b;
    }
  }
  const out = new Uint8Array(width * height * 3);
  for (let y = 0; y < height; y++) {
    const j0 = ty.start[y], wo = y * ty.stride;
    for (let x = 0; x < width; x++) {
      let r = 0, g = 0, b = 0;
      for (let k = 0; k < ty.count[y]; k++) {
        const w = ty.weights[wo + k], s = ((j0 + k) * width + x) * 3;
        r += w * mid[s], g += w * mid[s + 1], b += w * mid[s + 2];
      }
      const d = (y * width + x) * 3;
      out[d] = clamp8(r), out[d + 1] = clamp8(g), out[d + 2] = clamp8(b);
    }
  }
  return { width, height, data: out };
}

const clamp8 = (v: number) => Math.min(255, Math.max(0, Math.round(v)));

/** Downscales so the short side is at most `maxShort` (a copy-free no-op when already small enough). */
export function downscaleShortSide(img: RgbImage, maxShort: number): RgbImage {
  const s = fitShortSide(img.width, img.height, maxShort);
  return s.width === img.width && s.height === img.height ? img : resizeArea(img, s.width, s.height);
}

/** Nearest-neighbour resize of a label map, sampling source pixel centres (PIL NEAREST convention). */
export function resizeNearest(map: LabelMap, width: number, height: number): LabelMap {
  const out = new Int32Array(width * height);
  for (let y = 0; y < height; y++) {
    const sy = Math.min(map.height - 1, Math.floor(((y + 0.5) * map.height) / height));
    for (let x = 0; x < width; x++) {
      const sx = Math.min(map.width - 1, Math.floor(((x + 0.5) * map.width) / width));
      out[y * width + x] = map.data[sy * map.width + sx];
    }
  }
  return { width, height, data: out };
}

/**
 * Bilinear resampling (align_corners = false, edges clamped) of an h×w map of C channels (rows y·w + x,
 * channels last) to outH×outW, in float64: the one implementation behind image upscaling and the feature
 * upsampling of the evaluation protocols.
 */
export function bilinearResize(
  f: ArrayLike<number>,
  h: number,
  w: number,
  C: number,
  outH: number,
  outW: number,
): Float64Array {
  const out = new Float64Array(outH * outW * C);
  for (let y = 0; y < outH; y++) {
    const sy = Math.min(Math.max((y + 0.5) * h / outH - 0.5, 0), h - 1);
    const y0 = Math.floor(sy), y1 = Math.min(y0 + 1, h - 1), fy = sy - y0;
    for (let x = 0; x < outW; x++) {
      const sx = Math.min(Math.max((x + 0.5) * w / outW - 0.5, 0), w - 1);
      const x0 = Math.floor(sx), x1 = Math.min(x0 + 1, w - 1), fx = sx - x0;
      for (let c = 0; c < C; c++) {
        out[(y * outW + x) * C + c] = (1 - fy) * ((1 - fx) * f[(y0 * w + x0) * C + c] + fx * f[(y0 * w + x1) * C + c]) +
          fy * ((1 - fx) * f[(y1 * w + x0) * C + c] + fx * f[(y1 * w + x1) * C + c]);
      }
    }
  }
  return out;
}
