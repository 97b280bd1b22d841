/**
 * View geometry for PLRC: RandomResizedCrop parameters (torchvision semantics), the rejection-sampled
 * A0/B0 crop pair, normalised crop coordinates with the flip recorded in them, and an antialiased
 * bilinear resized crop of an {@link RgbImage} (PIL semantics) with the flip folded in.
 *
 * Conventions (shared by masks, points and pairs):
 * - A crop box is integer pixels: rows `i .. i+h-1`, columns `j .. j+w-1` of the original image.
 * - Pixel (x, y) of an image covers the continuous square [x, x+1) × [y, y+1); its centre is (x+0.5, y+0.5).
 * - An output grid of size n×n over a box maps output cell centre (c + 0.5) to the source position
 *   `j + (c + 0.5) · w / n` (align_corners = false). A flipped view reads unflipped column `n − 1 − c`.
 * - Crop coords are `[x0, y0, x1, y1] = [j/(W−1), i/(H−1), (j+w−1)/(W−1), (i+h−1)/(H−1)]`, with x0 and x1
 *   swapped for a flipped view (so x0 > x1), as in PixPro/PLRC.
 *
 * @module
 */
import type { RgbImage } from "./image.ts";
import type { Rng } from "../util/rng.ts";

/** A crop in integer pixels of the original image: top row `i`, left column `j`, height `h`, width `w`. */
export interface CropBox {
  /** Top row. */
  i: number;
  /** Left column. */
  j: number;
  /** Height. */
  h: number;
  /** Width. */
  w: number;
}

/** RandomResizedCrop ranges: area fraction `scale` and aspect ratio `ratio` (w/h, drawn log-uniformly). */
export interface CropRanges {
  /** Area fraction range. */
  scale: [number, number];
  /** Aspect ratio range (w/h). */
  ratio: [number, number];
}

/** The PLRC / MoCo v2 ranges: scale (0.2, 1), ratio (3/4, 4/3). */
export const DEFAULT_CROP_RANGES: CropRanges = { scale: [0.2, 1], ratio: [3 / 4, 4 / 3] };

/** Python's round(): halves go to the even neighbour (torchvision rounds crop sizes with it). */
export function roundHalfEven(x: number): number {
  const r = Math.round(x);
  return Math.abs(x % 1) === 0.5 && r % 2 !== 0 ? r - 1 : r;
}

/**
 * torchvision `RandomResizedCrop.get_params`: 10 attempts at a random area fraction and log-uniform
 * aspect ratio, then a centre crop clamped to the ratio range.
 */
export function randomResizedCrop(width: number, height: number, rng: Rng, ranges = DEFAULT_CROP_RANGES): CropBox {
  const area = width * height;
  const [lo, hi] = [Math.log(ranges.ratio[0]), Math.log(ranges.ratio[1])];
  for (let attempt = 0; attempt < 10; attempt++) {
    const target = area * rng.uniform(ranges.scale[0], ranges.scale[1]);
    const aspect = Math.exp(rng.uniform(lo, hi));
    const w = roundHalfEven(Math.sqrt(target * aspect));
    const h = roundHalfEven(Math.sqrt(target / aspect));
    if (w > 0 && w <= width && h > 0 && h <= height) {
      return { i: rng.int(height - h + 1), j: rng.int(width - w + 1), h, w };
    }
  }
  // Fallback: the whole image, trimmed to the nearest allowed aspect ratio.
  const inRatio = width / height;
  let w = width, h = height;
  if (inRatio < ranges.ratio[0]) h = roundHalfEven(w / ranges.ratio[0]);
  else if (inRatio > ranges.ratio[1]) w = roundHalfEven(h * ranges.ratio[1]);
  return { i: Math.floor((height - h) / 2), j: Math.floor((width - w) / 2), h, w };
}

/** area(a ∩ b) / max(area(a), area(b)) on the pixel rectangles [j, j+w) × [i, i+h). */
export function overlapRatio(a: CropBox, b: CropBox): number {
  const iw = Math.max(0, Math.min(a.j + a.w, b.j + b.w) - Math.max(a.j, b.j));
  const ih = Math.max(0, Math.min(a.i + a.h, b.i + b.h) - Math.max(a.i, b.i));
  return (iw * ih) / Math.max(a.w * a.h, b.w * b.h);
}

/** A rejection-sampled crop pair. */
export interface CropPair {
  a: CropBox;
  b: CropBox;
  /** Pairs drawn (1 .. maxTries). */
  tries: number;
  /** Whether the returned pair meets the overlap rule (false only for the last-try fallback). */
  accepted: boolean;
}

/**
 * Draws (A, B) crop pairs until overlapRatio ≥ `minOverlap`, at most `maxTries` pairs; after that the last
 * pair is used as is (the release's fallback).
 */
export function sampleCropPair(
  width: number,
  height: number,
  rng: Rng,
  ranges = DEFAULT_CROP_RANGES,
  minOverlap = 0.5,
  maxTries = 100,
): CropPair {
  let a: CropBox, b: CropBox, tries = 0;
  do {
    a = randomResizedCrop(width, height, rng, ranges);
    b = randomResizedCrop(width, height, rng, ranges);
    tries++;
    if (overlapRatio(a, b) >= minOverlap) return { a, b, tries, accepted: true };
  } while (tries < maxTries);
  return { a, b, tries, accepted: false };
}

/** Normalised crop coords `[x0, y0, x1, y1]` (see module doc); a flip swaps x0 and x1. */
export function cropCoords(
  box: CropBox,
  width: number,
  height: number,
  flipped: boolean,
): [number, number, number, number] {
  // max(·, 1) keeps 1-pixel-wide images finite; such images have a single possible crop anyway.
  const sx = Math.max(width - 1, 1), sy = Math.max(height - 1, 1);
  const x0 = box.j / sx, x1 = (box.j + box.w - 1) / sx;
  const y0 = box.i / sy, y1 = (box.i + box.h - 1) / sy;
  return flipped ? [x1, y0, x0, y1] : [x0, y0, x1, y1];
}

/** Inverse of {@link cropCoords}: the integer box and the flip (exact for coords made by it). */
export function boxFromCoords(
  coords: ArrayLike<number>,
  width: number,
  height: number,
): { box: CropBox; flipped: boolean } {
  const sx = Math.max(width - 1, 1), sy = Math.max(height - 1, 1);
  const flipped = coords[0] > coords[2];
  const xa = Math.min(coords[0], coords[2]), xb = Math.max(coords[0], coords[2]);
  const j = Math.round(xa * sx), i = Math.round(coords[1] * sy);
  return { box: { i, j, w: Math.round(xb * sx) - j + 1, h: Math.round(coords[3] * sy) - i + 1 }, flipped };
}

/**
 * Source column (continuous, pixel units of the original image) of a continuous view position `x` on an
 * n-wide grid over `box`; inverse of the resize mapping, flip included. Cell centre x = c + 0.5.
 */
export function viewToSourceX(x: number, box: CropBox, n: number, flipped: boolean): number {
  return box.j + (flipped ? n - x : x) * box.w / n;
}

/** Source row (continuous) of a continuous view position `y` on an n-high grid over `box`. */
export function viewToSourceY(y: number, box: CropBox, n: number): number {
  return box.i + y * box.h / n;
}

/** Per-output-index filter taps of a 1-D antialiased bilinear resize. */
interface Taps {
  start: Int32Array;
  count: Int32Array;
  /** `maxTaps` weights per output index, normalised to sum 1. */
  weights: Float32Array;
  maxTaps: number;
}

/**
 * PIL-style antialiased triangle filter from `inSize` to `outSize` samples: output centre (o + 0.5)·scale,
 * support max(scale, 1), taps restricted to the input (the crop), weights renormalised.
 */
function bilinearTaps(inSize: number, outSize: number): Taps {
  const scale = inSize / outSize;
  const fs = Math.max(scale, 1), support = fs;
  const maxTaps = Math.ceil(support) * 2 + 1;
  const start = new Int32Array(outSize), count = new Int32Array(outSize);
  const weights = new Float32Array(outSize * maxTaps);
  for (let o = 0; o < outSize; o++) {
    const centre = (o + 0.5) * scale;
    const lo = Math.max(Math.trunc(centre - support + 0.5), 0);
    const hi = Math.min(Math.trunc(centre + support + 0.5), inSize);
    let sum = 0;
    const n = Math.min(hi - lo, maxTaps);
    for (let t = 0; t < n; t++) {
      const d = Math.abs((lo + t + 0.5 - centre) / fs);
      const wt = d < 1 ? 1 - d : 0;
      weights[o * maxTaps + t] = wt;
      sum += wt;
    }
    for (let t = 0; t < n; t++) weights[o * maxTaps + t] /= sum;
    start[o] = lo;
    count[o] = n;
  }
  return { start, count, weights, maxTaps };
}

/**
 * Crops `box` out of `img`, resizes it to `size`×`size` with antialiased bilinear filtering (PIL's
 * BILINEAR), optionally flips it horizontally, and returns RGB floats in [0, 1] (HWC, interleaved). Values
 * are not re-quantised to 8 bits between steps (PIL would round; the difference is below 1/255).
 */
export function resizedCrop(img: RgbImage, box: CropBox, size: number, flipped: boolean): Float32Array {
  const tx = bilinearTaps(box.w, size), ty = bilinearTaps(box.h, size);
  const src = img.data, W = img.width;
  // Horizontal pass over the crop's rows only, into [h, size, 3]; the flip is applied here.
  const tmp = new Float32Array(box.h * size * 3);
  for (let r = 0; r < box.h; r++) {
    const rowBase = ((box.i + r) * W + box.j) * 3;
    for (let o = 0; o < size; o++) {
      const s = tx.start[o], n = tx.count[o], wb = o * tx.maxTaps;
      let a = 0, b = 0, c = 0;
      for (let t = 0; t < n; t++) {
        const wt = tx.weights[wb + t], p = rowBase + (s + t) * 3;
        a += wt * src[p];
        b += wt * src[p + 1];
        c += wt * src[p + 2];
      }
      const q = (r * size + (flipped ? size - 1 - o : o)) * 3;
      tmp[q] = a / 255;
      tmp[q + 1] = b / 255;
      tmp[q + 2] = c / 255;
    }
  }
  // Vertical pass.
  const out = new Float32Array(size * size * 3);
  const rowLen = size * 3;
  for (let o = 0; o < size; o++) {
    const s = ty.start[o], n = ty.count[o], wb = o * ty.maxTaps, ob = o * rowLen;
    for (let t = 0; t < n; t++) {
      const wt = ty.weights[wb + t], ib = (s + t) * rowLen;
      for (let k = 0; k < rowLen; k++) out[ob + k] += wt * tmp[ib + k];
    }
  }
  return out;
}
