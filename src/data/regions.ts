/**
 * Region sources over the full original image (a G×G grid, or any label map such as Felzenszwalb
 * segments or user PNGs) and the per-view region masks: the view's crop cut out of the source, flipped
 * with the view, and resized to S×S with nearest-neighbour sampling (S = R/4).
 *
 * Labels ≤ 0 mean "no region": they may appear in masks but are never chosen as regions.
 *
 * @module
 */
import type { CropBox } from "./crops.ts";
import { type LabelMap, labelMap } from "./image.ts";

/** Where an image's regions come from: a G×G grid over the whole image, or a label map. */
export type RegionSource = { kind: "grid"; grid: number } | { kind: "map"; map: LabelMap };

/**
 * Grid cell index along one axis for pixel `p` of `size` pixels split into `g` cells of floor(size/g)
 * pixels; the last cell absorbs the remainder (as the release's 4×4 grid does).
 */
function gridCell(p: number, size: number, g: number): number {
  const cell = Math.max(1, Math.floor(size / g));
  return Math.min(Math.floor(p / cell), g - 1);
}

/**
 * A per-pixel label lookup for an image of `width`×`height`. Grid labels are `row·G + col + 1` (1..G²),
 * with the grid laid directly on the original pixels. A label map of another size is sampled by nearest
 * neighbour (pixel centres), like the release's NEAREST resize of its label image.
 */
export function labelLookup(source: RegionSource, width: number, height: number): (x: number, y: number) => number {
  if (source.kind === "grid") {
    const g = source.grid;
    return (x, y) => gridCell(y, height, g) * g + gridCell(x, width, g) + 1;
  }
  const m = source.map;
  if (m.width === width && m.height === height) return (x, y) => m.data[y * width + x];
  const sx = m.width / width, sy = m.height / height;
  return (x, y) => m.data[Math.floor((y + 0.5) * sy) * m.width + Math.floor((x + 0.5) * sx)];
}

/** The full-resolution label map of a source (for tests and visualisation; masks never need it). */
export function regionLabelMap(source: RegionSource, width: number, height: number): LabelMap {
  const out = labelMap(width, height), at = labelLookup(source, width, height);
  for (let y = 0; y < height; y++) for (let x = 0; x < width; x++) out.data[y * width + x] = at(x, y);
  return out;
}

/**
 * The S×S region mask of a view: cell (r, c) holds the label of original pixel
 * (row ⌊i + (r+0.5)·h/S⌋, column ⌊j + (c'+0.5)·w/S⌋) with c' = c, or S−1−c for a flipped view. This is
 * PIL's NEAREST resize of the cropped label image, so it agrees with the view's image pixels.
 */
export function cutMask(
  source: RegionSource,
  width: number,
  height: number,
  box: CropBox,
  size: number,
  flipped: boolean,
): Int32Array {
  const at = labelLookup(source, width, height);
  const cols = new Int32Array(size);
  for (let c = 0; c < size; c++) {
    const cu = flipped ? size - 1 - c : c;
    // Multiply before dividing: (cu + 0.5)·w is exact, so the floor matches viewToSourceX at cell centres.
    cols[c] = box.j + Math.floor((cu + 0.5) * box.w / size);
  }
  const out = new Int32Array(size * size);
  for (let r = 0; r < size; r++) {
    const y = box.i + Math.floor((r + 0.5) * box.h / size);
    for (let c = 0; c < size; c++) out[r * size + c] = at(cols[c], y);
  }
  return out;
}

/** The distinct positive labels in a mask, ascending. */
export function presentLabels(mask: Int32Array): number[] {
  const seen = new Set<number>();
  for (const v of mask) if (v > 0) seen.add(v);
  return [...seen].sort((a, b) => a - b);
}

/** Labels present (positive) in both masks, ascending. */
export function commonLabels(a: Int32Array, b: Int32Array): number[] {
  const inB = new Set(presentLabels(b));
  return presentLabels(a).filter((l) => inB.has(l));
}
