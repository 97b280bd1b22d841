/**
 * Region choice and point sampling for point-level region contrast, as the release samples them.
 *
 * Up to `regions` labels present in both A0's and A1's S×S masks are drawn uniformly without replacement;
 * for each, `points` cells of that region are drawn uniformly with replacement in each view, independently.
 *
 * **Coordinate convention.** A point is a continuous position (x, y) in units of the S×S mask grid, x along
 * columns and y along rows, with the centre of cell (row r, column c) at (c + 0.5, r + 0.5); the grid spans
 * [0, S] × [0, S]. Sampled points are always cell centres. The same position on an F×F feature map (same
 * view, same extent) is (x·F/S, y·F/S) with the same half-cell convention ({@link toFeatureGrid}), and in
 * `grid_sample`'s normalised form with align_corners = false it is (2x/S − 1, 2y/S − 1) ({@link toGridSample}).
 * For bilinear sampling of a F×F map at feature coords (u, v): the four taps are the cells around
 * (u − 0.5, v − 0.5).
 *
 * **Fewer common regions than slots.** Slots past the number of common regions are *invalid*: their
 * region label is −1, their points repeat slot 0's points (so they stay in range) and their validity is 0.
 * An image with no common region at all has every slot invalid. Losses must skip invalid points.
 *
 * @module
 */
import type { Rng } from "../util/rng.ts";
import { commonLabels } from "./regions.ts";

/** Sampled points of one image. */
export interface ImagePoints {
  /** Region label per slot, −1 where the slot is invalid; length `regions`. */
  regionLabel: Int32Array;
  /** 1 for a valid slot, 0 otherwise; length `regions`. */
  valid: Uint8Array;
  /** A0 points `[regions · points, 2]` as (x, y) in S-grid units, slot-major. */
  a0: Float32Array;
  /** A1 points, same layout. */
  a1: Float32Array;
}

/** `n` cell-centre points drawn uniformly with replacement from the cells of `mask` labelled `label`. */
export function samplePointsInRegion(
  mask: Int32Array,
  size: number,
  label: number,
  n: number,
  rng: Rng,
  out: Float32Array,
  offset: number,
): void {
  const cells: number[] = [];
  for (let k = 0; k < mask.length; k++) if (mask[k] === label) cells.push(k);
  if (cells.length === 0) throw new Error(`label ${label} is not present in the mask`);
  for (let p = 0; p < n; p++) {
    const k = cells[rng.int(cells.length)];
    out[offset + 2 * p] = (k % size) + 0.5; // x = column
    out[offset + 2 * p + 1] = Math.floor(k / size) + 0.5; // y = row
  }
}

/** Chooses up to `regions` common regions of the two masks and samples `points` per region per view. */
export function samplePoints(
  maskA0: Int32Array,
  maskA1: Int32Array,
  size: number,
  regions: number,
  points: number,
  rng: Rng,
): ImagePoints {
  const common = rng.shuffle(commonLabels(maskA0, maskA1)).slice(0, regions);
  const regionLabel = new Int32Array(regions).fill(-1), valid = new Uint8Array(regions);
  const a0 = new Float32Array(regions * points * 2), a1 = new Float32Array(regions * points * 2);
  const stride = points * 2;
  common.forEach((label, s) => {
    regionLabel[s] = label;
    valid[s] = 1;
    samplePointsInRegion(maskA0, size, label, points, rng, a0, s * stride);
    samplePointsInRegion(maskA1, size, label, points, rng, a1, s * stride);
  });
  // Invalid slots copy slot 0 (cell centres, or the grid centre when nothing is valid).
  for (let s = common.length; s < regions; s++) {
    for (let k = 0; k < stride; k++) {
      a0[s * stride + k] = common.length > 0 ? a0[k] : size / 2;
      a1[s * stride + k] = common.length > 0 ? a1[k] : size / 2;
    }
  }
  return { regionLabel, valid, a0, a1 };
}

/** Converts S-grid point coords (x, y) to an F×F feature grid of the same view: (x·F/S, y·F/S). */
export function toFeatureGrid(coords: Float32Array, maskSize: number, featSize: number): Float32Array {
  const s = featSize / maskSize;
  return coords.map((v) => v * s);
}

/** Converts S-grid point coords to grid_sample's normalised [−1, 1] coords (align_corners = false). */
export function toGridSample(coords: Float32Array, maskSize: number): Float32Array {
  return coords.map((v) => (2 * v) / maskSize - 1);
}
