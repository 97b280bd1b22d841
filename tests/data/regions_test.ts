import assert from "node:assert/strict";
import { Rng } from "../../src/util/rng.ts";
import { type LabelMap, labelMap, rgbImage } from "../../src/data/image.ts";
import { randomResizedCrop, resizedCrop, viewToSourceX, viewToSourceY } from "../../src/data/crops.ts";
import {
  commonLabels,
  cutMask,
  labelLookup,
  presentLabels,
  regionLabelMap,
  type RegionSource,
} from "../../src/data/regions.ts";

const SEED = Number(Deno.env.get("PLRC_TEST_SEED") ?? Math.floor(Math.random() * 2 ** 31));
const at = `(seed ${SEED})`;

Deno.test("grid regions: labels row·G + col + 1, the last row and column absorb the remainder", () => {
  const m = regionLabelMap({ kind: "grid", grid: 4 }, 10, 7);
  // Columns: cells of ⌊10/4⌋ = 2 px, the last takes 6..9; rows: ⌊7/4⌋ = 1 px, the last takes 3..6.
  const row = (y: number) => [...m.data.subarray(y * 10, y * 10 + 10)];
  assert.deepEqual(row(0), [1, 1, 2, 2, 3, 3, 4, 4, 4, 4]);
  assert.deepEqual(row(1), [5, 5, 6, 6, 7, 7, 8, 8, 8, 8]);
  assert.deepEqual(row(2), [9, 9, 10, 10, 11, 11, 12, 12, 12, 12]);
  for (let y = 3; y < 7; y++) assert.deepEqual(row(y), [13, 13, 14, 14, 15, 15, 16, 16, 16, 16]);
  // 224 px split 4 ways gives the release's 56-px cells.
  const at224 = labelLookup({ kind: "grid", grid: 4 }, 224, 224);
  assert.deepEqual([at224(0, 0), at224(55, 0), at224(56, 0), at224(223, 223), at224(56, 56)], [1, 1, 2, 16, 6]);
});

Deno.test("label maps: used as is at the image size, sampled by nearest neighbour at another size", () => {
  const m = labelMap(2, 2);
  m.data.set([1, 2, 3, 4]);
  const same = labelLookup({ kind: "map", map: m }, 2, 2);
  assert.deepEqual([same(0, 0), same(1, 0), same(0, 1), same(1, 1)], [1, 2, 3, 4]);
  const big = regionLabelMap({ kind: "map", map: m }, 4, 6);
  assert.deepEqual([...big.data], [1, 1, 2, 2, 1, 1, 2, 2, 1, 1, 2, 2, 3, 3, 4, 4, 3, 3, 4, 4, 3, 3, 4, 4]);
});

Deno.test("present and common labels ignore labels ≤ 0", () => {
  assert.deepEqual(presentLabels(Int32Array.from([3, 0, 3, -1, 7, 2])), [2, 3, 7]);
  assert.deepEqual(commonLabels(Int32Array.from([1, 2, 3, 0]), Int32Array.from([3, 0, 1, 5])), [1, 3]);
});

/** A random Voronoi label map with `k` regions (labels 1..k) and some unlabelled (0) pixels. */
function voronoi(W: number, H: number, k: number, rng: Rng): LabelMap {
  const m = labelMap(W, H), cx = Array.from({ length: k }, () => rng.uniform(0, W));
  const cy = Array.from({ length: k }, () => rng.uniform(0, H));
  for (let y = 0; y < H; y++) {
    for (let x = 0; x < W; x++) {
      let best = 0, bd = Infinity;
      for (let t = 0; t < k; t++) {
        const d = (x - cx[t]) ** 2 + (y - cy[t]) ** 2;
        if (d < bd) bd = d, best = t;
      }
      m.data[y * W + x] = best === k - 1 ? 0 : best + 1; // one region is "no region"
    }
  }
  return m;
}

Deno.test("cutMask: each cell holds the source label at its centre mapped back through crop and flip", () => {
  const rng = new Rng(SEED);
  for (let t = 0; t < 300; t++) {
    const W = 30 + rng.int(300), H = 30 + rng.int(300), S = [4, 7, 16, 56][rng.int(4)];
    const src: RegionSource = rng.next() < 0.5
      ? { kind: "grid", grid: 1 + rng.int(6) }
      : { kind: "map", map: voronoi(W, H, 2 + rng.int(12), rng) };
    const full = regionLabelMap(src, W, H);
    const box = randomResizedCrop(W, H, rng), flipped = rng.next() < 0.5;
    const mask = cutMask(src, W, H, box, S, flipped);
    for (let r = 0; r < S; r++) {
      for (let c = 0; c < S; c++) {
        const x = Math.floor(viewToSourceX(c + 0.5, box, S, flipped)), y = Math.floor(viewToSourceY(r + 0.5, box, S));
        assert.ok(x >= box.j && x < box.j + box.w && y >= box.i && y < box.i + box.h, at);
        assert.equal(mask[r * S + c], full.data[y * W + x], `cell (${r},${c}) ${at}`);
      }
    }
  }
});

/** Distinct colours for labels 0..63. */
const colour = (l: number) => [(l * 37) % 256, (l * 101 + 50) % 256, (l * 59 + 120) % 256];

Deno.test("image and mask flip together: the view's colour at a mask cell encodes the cell's label", () => {
  const rng = new Rng(SEED);
  let checked = 0, border = 0;
  for (let t = 0; t < 150; t++) {
    const W = 60 + rng.int(400), H = 60 + rng.int(400), R = [32, 64][rng.int(2)], S = R / 4;
    const src: RegionSource = rng.next() < 0.5
      ? { kind: "grid", grid: 2 + rng.int(5) }
      : { kind: "map", map: voronoi(W, H, 3 + rng.int(10), rng) };
    const full = regionLabelMap(src, W, H);
    const img = rgbImage(W, H);
    for (let p = 0; p < W * H; p++) img.data.set(colour(full.data[p]), p * 3);
    const box = randomResizedCrop(W, H, rng), flipped = rng.next() < 0.5;
    const view = resizedCrop(img, box, R, flipped), mask = cutMask(src, W, H, box, S, flipped);
    const sx = box.w / R, sy = box.h / R;
    for (let r = 0; r < S; r++) {
      for (let c = 0; c < S; c++) {
        // The mean of the view's 2×2 pixels around the cell centre (R/S = 4 view pixels per cell).
        const mean = [0, 0, 0];
        for (const [dy, dx] of [[1, 1], [1, 2], [2, 1], [2, 2]]) {
          for (let k = 0; k < 3; k++) mean[k] += view[((4 * r + dy) * R + 4 * c + dx) * 3 + k] / 4;
        }
        // Where every source pixel the filter can reach around the cell's source point has the cell's label,
        // the colour must be exactly that label's colour; a mismatched flip fails here.
        const X = viewToSourceX(c + 0.5, box, S, flipped), Y = viewToSourceY(r + 0.5, box, S);
        const hx = 0.5 * sx + Math.max(sx, 1) + 1, hy = 0.5 * sy + Math.max(sy, 1) + 1;
        let uniform = true;
        for (let y = Math.max(0, Math.floor(Y - hy)); y <= Math.min(H - 1, Math.ceil(Y + hy)) && uniform; y++) {
          for (let x = Math.max(0, Math.floor(X - hx)); x <= Math.min(W - 1, Math.ceil(X + hx)); x++) {
            if (full.data[y * W + x] !== mask[r * S + c]) uniform = false;
          }
        }
        if (!uniform) {
          border++;
          continue;
        }
        checked++;
        const want = colour(mask[r * S + c]);
        for (let k = 0; k < 3; k++) {
          assert.ok(Math.abs(mean[k] * 255 - want[k]) < 1e-3, `cell (${r},${c}) flip ${flipped} ${at}`);
        }
      }
    }
  }
  assert.ok(checked > border, `only ${checked} interior cells vs ${border} border cells ${at}`);
});
