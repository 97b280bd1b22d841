/**
 * Region label maps degraded on purpose, for the region-quality ablation (DetCon vs PLRC with grid, FH and
 * ground-truth masks, and with worse masks): boundary shift and block label noise, applied to the full-image
 * label map once it is computed, before any view is cut from it, so both views of an image see the same
 * degraded segmentation (a consistently wrong mask, as a poor segmenter would give, rather than noise that
 * differs between views).
 *
 * - **Shift** S: the label map is translated by (±S, ±S) pixels, signs drawn at random, with the border
 *   replicated, so every vertical boundary moves by exactly S columns and every horizontal one by S rows
 *   (a Chebyshev displacement of S). A fixed displacement, rather than one "up to S", makes the ablation's
 *   level the boundary error itself.
 * - **Noise** f: the map is tiled into b×b blocks (b = `block` pixels, the last row and column of blocks
 *   cut by the edge) and round(f · blocks) of them, drawn without replacement, are each filled with one
 *   label drawn uniformly from the other positive labels present in the map (other than the label at the
 *   block's centre). Blocks rather than single pixels: per-pixel noise would be averaged away by the
 *   nearest-neighbour S×S masks (and is not how segmenters fail); a block of 8 px is about 2–3 mask cells
 *   of a typical crop. Blocks straddling a boundary may already hold the new label in part, so the
 *   changed-pixel fraction is at most about f.
 *
 * Shift comes first, then noise. Both draw from the generator passed in (the caller derives it from the
 * data seed and the image index, so an image's degraded map is the same in every epoch).
 *
 * @module
 */
import { type LabelMap, labelMap } from "./image.ts";
import type { Rng } from "../util/rng.ts";

/** How to degrade a label map; all zero leaves it untouched. */
export interface Degradation {
  /** Fraction 0..1 of blocks relabelled. */
  noise: number;
  /** Block side in pixels (≥ 1). */
  block: number;
  /** Boundary shift in pixels (≥ 0). */
  shift: number;
}

/** Whether `d` changes anything. */
export function degrades(d: Degradation | undefined): d is Degradation {
  return !!d && (d.noise > 0 || d.shift > 0);
}

/** The map translated by (dx, dy) (content moves right/down for positive values), border replicated. */
export function translateLabels(m: LabelMap, dx: number, dy: number): LabelMap {
  const { width: W, height: H } = m, out = labelMap(W, H);
  for (let y = 0; y < H; y++) {
    const sy = Math.min(Math.max(y - dy, 0), H - 1);
    for (let x = 0; x < W; x++) out.data[y * W + x] = m.data[sy * W + Math.min(Math.max(x - dx, 0), W - 1)];
  }
  return out;
}

/** Shift by (±s, ±s) with random signs (module doc); returns the map and the offset used. */
export function shiftLabels(m: LabelMap, s: number, rng: Rng): { map: LabelMap; dx: number; dy: number } {
  const dx = rng.next() < 0.5 ? -s : s, dy = rng.next() < 0.5 ? -s : s;
  return { map: translateLabels(m, dx, dy), dx, dy };
}

/** Block label noise (module doc); returns the map and the blocks relabelled (indices row-major). */
export function blockNoise(
  m: LabelMap,
  fraction: number,
  block: number,
  rng: Rng,
): { map: LabelMap; blocks: number[] } {
  const { width: W, height: H } = m;
  const out: LabelMap = { width: W, height: H, data: Int32Array.from(m.data) };
  const present = [...new Set(m.data)].filter((l) => l > 0).sort((a, b) => a - b);
  const bw = Math.ceil(W / block), bh = Math.ceil(H / block), n = bw * bh;
  const k = Math.round(fraction * n);
  // partial Fisher–Yates: the first k entries are a uniform draw without replacement
  const order = Array.from({ length: n }, (_, i) => i);
  for (let i = 0; i < k; i++) {
    const j = i + rng.int(n - i);
    [order[i], order[j]] = [order[j], order[i]];
  }
  const blocks = order.slice(0, k).sort((a, b) => a - b);
  for (const b of blocks) {
    const x0 = (b % bw) * block, y0 = Math.floor(b / bw) * block;
    const x1 = Math.min(x0 + block, W), y1 = Math.min(y0 + block, H);
    const here = m.data[Math.floor((y0 + y1 - 1) / 2) * W + Math.floor((x0 + x1 - 1) / 2)];
    const others = present.filter((l) => l !== here);
    if (!others.length) continue; // a one-region map has nothing to swap in
    const lab = others[rng.int(others.length)];
    for (let y = y0; y < y1; y++) out.data.fill(lab, y * W + x0, y * W + x1);
  }
  return { map: out, blocks };
}

/** Shift, then noise; the map itself when `d` changes nothing. */
export function degradeLabels(m: LabelMap, d: Degradation, rng: Rng): LabelMap {
  let out = m;
  if (d.shift > 0) out = shiftLabels(out, d.shift, rng).map;
  if (d.noise > 0) out = blockNoise(out, d.noise, d.block, rng).map;
  return out;
}
