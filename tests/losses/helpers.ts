/**
 * Shared helpers of the loss tests: random point sets with invalid slots and the max-abs tolerance.
 *
 * @module
 */
import type { PointInputs } from "../../src/losses/point_contrast.ts";
import type { Rng } from "../util.ts";

/** Random points and labels: `regions` slots of `points` per image, some slots invalid (label −1). */
export function randomPointInputs(
  rng: Rng,
  B: number,
  h: number,
  w: number,
  regions: number,
  points: number,
  invalidRate = 0.25,
): PointInputs {
  const ppi = regions * points, P = B * ppi;
  const a0 = new Float32Array(2 * P), a1 = new Float32Array(2 * P), labels = new Int32Array(P);
  const coord = (lim: number) => {
    const r = rng.next();
    // mostly inside, some exactly on cell centres, some past the border (zero padding)
    if (r < 0.15) return rng.int(lim) + 0.5;
    if (r < 0.25) return rng.uniform(-0.4, lim + 0.4);
    return rng.uniform(0, lim);
  };
  for (let b = 0; b < B; b++) {
    for (let s = 0; s < regions; s++) {
      const ok = rng.next() >= invalidRate;
      for (let q = 0; q < points; q++) {
        const p = b * ppi + s * points + q;
        labels[p] = ok ? b * regions + s : -1;
        a0[2 * p] = coord(w), a0[2 * p + 1] = coord(h);
        a1[2 * p] = coord(w), a1[2 * p + 1] = coord(h);
      }
    }
  }
  return { a0, a1, labels };
}

/**
 * Max-abs metric: every element within `rel` · max|expected| + `floor` (the floor covers results that are
 * small differences of O(1) terms, e.g. a positive whose probability is nearly 1).
 */
export function gradTol(expected: ArrayLike<number>, rel: number, floor = 1e-9) {
  let m = 0;
  for (let i = 0; i < expected.length; i++) m = Math.max(m, Math.abs(expected[i]));
  return { rtol: 0, atol: rel * m + floor };
}

/** Direct bilinear sampling, grid_sample style: normalised coords → pixel index ((g + 1)·size − 1) / 2. */
export function gridSample(
  y: ArrayLike<number>,
  pts: ArrayLike<number>,
  B: number,
  h: number,
  w: number,
  D: number,
): Float64Array {
  const P = pts.length / 2, ppi = P / B, out = new Float64Array(P * D);
  for (let p = 0; p < P; p++) {
    const b = Math.floor(p / ppi);
    const gx = (2 * pts[2 * p]) / w - 1, gy = (2 * pts[2 * p + 1]) / h - 1;
    const ix = ((gx + 1) * w - 1) / 2, iy = ((gy + 1) * h - 1) / 2;
    const jx = Math.floor(ix), jy = Math.floor(iy);
    for (
      const [xx, yy, wt] of [
        [jx, jy, (jx + 1 - ix) * (jy + 1 - iy)],
        [jx + 1, jy, (ix - jx) * (jy + 1 - iy)],
        [jx, jy + 1, (jx + 1 - ix) * (iy - jy)],
        [jx + 1, jy + 1, (ix - jx) * (iy - jy)],
      ]
    ) {
      if (xx < 0 || xx >= w || yy < 0 || yy >= h) continue;
      for (let d = 0; d < D; d++) out[p * D + d] += wt * y[((b * h + yy) * w + xx) * D + d];
    }
  }
  return out;
}
