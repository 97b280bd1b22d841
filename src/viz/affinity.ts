/**
 * Point-affinity maps (the paper's figure): for query points in one view, the cosine similarity of the
 * query's feature to every position of another view of the same image. Everything here is host math in
 * float64 on feature maps already read back from the GPU (small: h·w·C per view), so no kernel is needed.
 *
 * Conventions: feature maps are HWC rows; a map of h×w cells laid over an R×R view puts cell (r, c) at view
 * pixels [c·R/w, (c+1)·R/w) × [r·R/h, (r+1)·R/h), its centre at map coordinate (c + 0.5, r + 0.5).
 * Bilinear sampling is align_corners = false with the border replicated (F.interpolate / grid_sample
 * padding "border"), so a view position and a map position relate by u = x·w/R.
 *
 * @module
 */
import { type CropBox, viewToSourceX, viewToSourceY } from "../data/crops.ts";

/** The feature at map coordinate (u, v) (cell centres at +0.5), bilinear, border replicated. */
export function bilinearSample(
  map: ArrayLike<number>,
  h: number,
  w: number,
  C: number,
  u: number,
  v: number,
): Float64Array {
  const clamp = (a: number, n: number) => Math.min(Math.max(a, 0), n - 1);
  const fx = clamp(u - 0.5, w), fy = clamp(v - 0.5, h);
  const x0 = Math.floor(fx), y0 = Math.floor(fy);
  const x1 = Math.min(x0 + 1, w - 1), y1 = Math.min(y0 + 1, h - 1);
  const ax = fx - x0, ay = fy - y0;
  const out = new Float64Array(C);
  const taps: [number, number, number][] = [
    [y0, x0, (1 - ay) * (1 - ax)],
    [y0, x1, (1 - ay) * ax],
    [y1, x0, ay * (1 - ax)],
    [y1, x1, ay * ax],
  ];
  for (const [y, x, wt] of taps) {
    if (wt === 0) continue;
    const base = (y * w + x) * C;
    for (let c = 0; c < C; c++) out[c] += wt * map[base + c];
  }
  return out;
}

/** Cosine similarity of two vectors (0 when either is zero, rather than NaN). */
export function cosine(a: ArrayLike<number>, b: ArrayLike<number>): number {
  let ab = 0, aa = 0, bb = 0;
  for (let i = 0; i < a.length; i++) ab += a[i] * b[i], aa += a[i] * a[i], bb += b[i] * b[i];
  return aa > 0 && bb > 0 ? ab / Math.sqrt(aa * bb) : 0;
}

/**
 * The affinity map of `query` over an outH×outW view: at each output pixel centre, the cosine similarity
 * between the query and the bilinearly upsampled feature map (upsample, then compare, as the spec asks:
 * similarities of interpolated features, not interpolated similarities).
 */
export function affinityMap(
  query: ArrayLike<number>,
  map: ArrayLike<number>,
  h: number,
  w: number,
  C: number,
  outH: number,
  outW: number,
): Float64Array {
  const out = new Float64Array(outH * outW);
  for (let y = 0; y < outH; y++) {
    for (let x = 0; x < outW; x++) {
      out[y * outW + x] = cosine(query, bilinearSample(map, h, w, C, ((x + 0.5) * w) / outW, ((y + 0.5) * h) / outH));
    }
  }
  return out;
}

/** Colour-map stops (an inferno-like ramp: dark purple, red, orange, pale yellow), evenly spaced on [0, 1]. */
export const HEAT_STOPS: readonly (readonly [number, number, number])[] = [
  [0, 0, 4],
  [87, 16, 110],
  [188, 55, 84],
  [249, 142, 9],
  [252, 255, 164],
];

/** The colour of t ∈ [0, 1] (clamped), interpolated linearly between {@link HEAT_STOPS}. */
export function heatColor(t: number): [number, number, number] {
  const n = HEAT_STOPS.length - 1;
  const s = Math.min(Math.max(Number.isFinite(t) ? t : 0, 0), 1) * n;
  const k = Math.min(Math.floor(s), n - 1), f = s - k;
  const a = HEAT_STOPS[k], b = HEAT_STOPS[k + 1];
  return [0, 1, 2].map((c) => Math.round(a[c] + (b[c] - a[c]) * f)) as [number, number, number];
}

/** Min–max normalisation to [0, 1] (all zeros for a constant map), and the range it used. */
export function normalizeRange(v: ArrayLike<number>): { t: Float64Array; lo: number; hi: number } {
  let lo = Infinity, hi = -Infinity;
  for (let i = 0; i < v.length; i++) lo = Math.min(lo, v[i]), hi = Math.max(hi, v[i]);
  const t = new Float64Array(v.length);
  if (hi > lo) { for (let i = 0; i < v.length; i++) t[i] = (v[i] - lo) / (hi - lo); }
  return { t, lo, hi };
}

/** A view's geometry: its crop box in the original image and whether it is flipped. */
export interface ViewGeometry {
  /** Crop box in the original image. */
  box: CropBox;
  /** Whether the view is flipped horizontally. */
  flipped: boolean;
}

/**
 * Where continuous position (x, y) of view 1 lands in view 2 (both `R`×`R`), through the original image;
 * `inside` says whether it falls within view 2's crop. Inverse of {@link viewToSourceX} for view 2.
 */
export function mapViewPoint(
  x: number,
  y: number,
  v1: ViewGeometry,
  v2: ViewGeometry,
  R: number,
): { x: number; y: number; inside: boolean } {
  const sx = viewToSourceX(x, v1.box, R, v1.flipped), sy = viewToSourceY(y, v1.box, R);
  const ux = ((sx - v2.box.j) * R) / v2.box.w, y2 = ((sy - v2.box.i) * R) / v2.box.h;
  const x2 = v2.flipped ? R - ux : ux;
  return { x: x2, y: y2, inside: x2 >= 0 && x2 < R && y2 >= 0 && y2 < R };
}

/**
 * Picks up to `n` query cells on an S×S region mask, spread over regions: among the cells `usable` admits
 * (e.g. those whose true location lies in the other view; all cells when none does), the regions with
 * positive labels by size (largest first, then by label), one cell each, the usable cell nearest the
 * region's centroid (lowest index on ties), so the point sits inside the region rather than on its edge.
 * When there are fewer regions than `n`, the rest are farthest-point picks among the remaining cells.
 * Returns cell indices r·S + c.
 */
export function pickQueryCells(
  mask: ArrayLike<number>,
  S: number,
  n: number,
  usable: (cell: number) => boolean = () => true,
): number[] {
  let cand = Array.from({ length: S * S }, (_, i) => i).filter(usable);
  if (!cand.length) cand = Array.from({ length: S * S }, (_, i) => i);
  const byLabel = new Map<number, number[]>();
  for (const i of cand) {
    if (mask[i] > 0) byLabel.set(mask[i], [...(byLabel.get(mask[i]) ?? []), i]);
  }
  const regions = [...byLabel.entries()].sort((a, b) => b[1].length - a[1].length || a[0] - b[0]);
  const picked: number[] = [];
  for (const [, cells] of regions.slice(0, n)) {
    const my = cells.reduce((s, i) => s + Math.floor(i / S), 0) / cells.length;
    const mx = cells.reduce((s, i) => s + (i % S), 0) / cells.length;
    let best = cells[0], bestD = Infinity;
    for (const i of cells) {
      const d = (Math.floor(i / S) - my) ** 2 + ((i % S) - mx) ** 2;
      if (d < bestD) best = i, bestD = d;
    }
    picked.push(best);
  }
  while (picked.length < n) {
    let best = -1, bestD = -1;
    for (const i of cand) {
      if (picked.includes(i)) continue;
      const d = picked.length
        ? Math.min(...picked.map((p) => (Math.floor(p / S) - Math.floor(i / S)) ** 2 + ((p % S) - (i % S)) ** 2))
        : 0;
      if (d > bestD) best = i, bestD = d;
    }
    if (best < 0) break;
    picked.push(best);
  }
  return picked;
}

/**
 * The point head on the host in float64: y = W₂·relu(W₁·x + b₁) + b₂ for each of `N` rows of `x` [N, inD];
 * weights in PyTorch layout [out, in]. The head has no BN, so this is exactly what it computes in training
 * (in float64 rather than float32).
 */
export function pointHeadHost(
  x: ArrayLike<number>,
  N: number,
  w1: ArrayLike<number>,
  b1: ArrayLike<number>,
  w2: ArrayLike<number>,
  b2: ArrayLike<number>,
): { rows: Float64Array; dim: number } {
  const hid = b1.length, D = b2.length, inD = w1.length / hid;
  if (x.length !== N * inD || w2.length !== D * hid) throw new Error("point head: shapes do not match");
  const out = new Float64Array(N * D), hidden = new Float64Array(hid);
  for (let n = 0; n < N; n++) {
    for (let j = 0; j < hid; j++) {
      let s = b1[j];
      for (let k = 0; k < inD; k++) s += w1[j * inD + k] * x[n * inD + k];
      hidden[j] = s > 0 ? s : 0;
    }
    for (let d = 0; d < D; d++) {
      let s = b2[d];
      for (let j = 0; j < hid; j++) s += w2[d * hid + j] * hidden[j];
      out[n * D + d] = s;
    }
  }
  return { rows: out, dim: D };
}
