import assert from "node:assert/strict";
import { Rng } from "../../src/util/rng.ts";
import { labelMap } from "../../src/data/image.ts";
import { boxFromCoords, cropCoords, randomResizedCrop } from "../../src/data/crops.ts";
import { cutMask, regionLabelMap, type RegionSource } from "../../src/data/regions.ts";
import { samplePoints, toFeatureGrid, toGridSample } from "../../src/data/points.ts";

const SEED = Number(Deno.env.get("PLRC_TEST_SEED") ?? Math.floor(Math.random() * 2 ** 31));
const at = `(seed ${SEED})`;

Deno.test("a point sampled in region r of a view maps back (crop coords + flip) into region r of the image", () => {
  const rng = new Rng(SEED);
  let valid = 0;
  for (let t = 0; t < 250; t++) {
    const W = 40 + rng.int(400), H = 40 + rng.int(400), S = [8, 16, 56][rng.int(3)];
    let src: RegionSource = { kind: "grid", grid: 1 + rng.int(6) };
    if (rng.next() < 0.4) {
      // Random blocky label map with unlabelled holes.
      const m = labelMap(W, H), bs = 5 + rng.int(40), labels = new Map<number, number>();
      for (let y = 0; y < H; y++) {
        for (let x = 0; x < W; x++) {
          const cell = Math.floor(y / bs) * 1000 + Math.floor(x / bs);
          if (!labels.has(cell)) labels.set(cell, rng.int(8));
          m.data[y * W + x] = labels.get(cell)!;
        }
      }
      src = { kind: "map", map: m };
    }
    const full = regionLabelMap(src, W, H);
    const views = [0, 1].map(() => {
      const box = randomResizedCrop(W, H, rng), flipped = rng.next() < 0.5;
      return { coords: Float32Array.from(cropCoords(box, W, H, flipped)), mask: cutMask(src, W, H, box, S, flipped) };
    });
    const regions = 1 + rng.int(5), points = 1 + rng.int(20);
    const p = samplePoints(views[0].mask, views[1].mask, S, regions, points, rng);
    for (let s = 0; s < regions; s++) {
      if (!p.valid[s]) continue;
      valid++;
      [p.a0, p.a1].forEach((pts, v) => {
        // Map back using only what the batch carries: the float32 crop coords.
        const { box, flipped } = boxFromCoords(views[v].coords, W, H);
        for (let k = 0; k < points; k++) {
          const x = pts[(s * points + k) * 2], y = pts[(s * points + k) * 2 + 1];
          assert.ok(x > 0 && x < S && y > 0 && y < S && (x - 0.5) % 1 === 0 && (y - 0.5) % 1 === 0, at);
          assert.equal(views[v].mask[(y - 0.5) * S + (x - 0.5)], p.regionLabel[s], at);
          const X = Math.floor(box.j + (flipped ? S - x : x) * box.w / S), Y = Math.floor(box.i + y * box.h / S);
          assert.equal(full.data[Y * W + X], p.regionLabel[s], `view ${v} slot ${s} point ${k} ${at}`);
        }
      });
    }
  }
  assert.ok(valid > 250, `${valid} valid slots ${at}`);
});

/** A mask from rows of labels. */
const mask = (rows: number[][]) => Int32Array.from(rows.flat());

Deno.test("regions: distinct common labels, invalid slots marked and filled with slot 0's points", () => {
  const a0 = mask([[1, 1, 2, 2], [1, 1, 2, 2], [3, 3, 0, 0], [3, 3, 0, 0]]);
  const a1 = mask([[2, 2, 5, 5], [2, 2, 5, 5], [1, 1, 0, 0], [1, 1, 0, 0]]);
  for (let t = 0; t < 50; t++) {
    const p = samplePoints(a0, a1, 4, 4, 3, new Rng(SEED + t));
    assert.deepEqual([...p.valid], [1, 1, 0, 0]);
    assert.deepEqual([...p.regionLabel.slice(0, 2)].sort(), [1, 2]);
    assert.deepEqual([...p.regionLabel.slice(2)], [-1, -1]);
    for (const s of [2, 3]) {
      assert.deepEqual(p.a0.slice(s * 6, s * 6 + 6), p.a0.slice(0, 6));
      assert.deepEqual(p.a1.slice(s * 6, s * 6 + 6), p.a1.slice(0, 6));
    }
  }
  const none = samplePoints(a0, mask([[5, 5, 5, 5], [5, 5, 5, 5], [0, 0, 0, 0], [0, 0, 0, 0]]), 4, 2, 3, new Rng(SEED));
  assert.deepEqual([...none.valid, ...none.regionLabel], [0, 0, -1, -1]);
});

Deno.test("regions: each common label is chosen with equal probability; points are uniform over its cells", () => {
  const a0 = mask([[1, 2, 3, 4], [1, 2, 3, 4], [1, 2, 3, 4], [1, 2, 3, 4]]);
  const a1 = mask([[4, 4, 4, 4], [3, 3, 3, 3], [2, 2, 2, 2], [1, 2, 3, 4]]);
  const rng = new Rng(SEED), chosen = [0, 0, 0, 0, 0], cells = new Map<string, number>();
  const n = 4000;
  for (let t = 0; t < n; t++) {
    const p = samplePoints(a0, a1, 4, 1, 8, rng);
    chosen[p.regionLabel[0]]++;
    if (p.regionLabel[0] === 1) {
      for (let k = 0; k < 8; k++) {
        const key = `${p.a0[2 * k]},${p.a0[2 * k + 1]}`;
        cells.set(key, (cells.get(key) ?? 0) + 1);
      }
    }
  }
  for (let l = 1; l <= 4; l++) assert.ok(Math.abs(chosen[l] - n / 4) < 0.1 * n, `label ${l}: ${chosen} ${at}`);
  // Region 1 in A0 is column 0: four cells, each drawn about a quarter of the time.
  assert.deepEqual([...cells.keys()].sort(), ["0.5,0.5", "0.5,1.5", "0.5,2.5", "0.5,3.5"]);
  const total = [...cells.values()].reduce((a, b) => a + b);
  for (const c of cells.values()) assert.ok(Math.abs(c - total / 4) < 0.1 * total, `cells ${[...cells]} ${at}`);
});

Deno.test("regions: 1 gives the release's form (one common region, all points in it, both views)", () => {
  const rng = new Rng(SEED);
  const src: RegionSource = { kind: "grid", grid: 4 };
  let valid = 0;
  for (let t = 0; t < 100; t++) {
    const W = 200 + rng.int(300), H = 200 + rng.int(300);
    const m0 = cutMask(src, W, H, randomResizedCrop(W, H, rng), 56, rng.next() < 0.5);
    const m1 = cutMask(src, W, H, randomResizedCrop(W, H, rng), 56, rng.next() < 0.5);
    const p = samplePoints(m0, m1, 56, 1, 16, rng);
    assert.equal(p.a0.length, 32);
    if (!p.valid[0]) continue; // A0 and A1 are independent: rarely they share no cell
    valid++;
    for (let k = 0; k < 16; k++) {
      assert.equal(m0[(p.a0[2 * k + 1] - 0.5) * 56 + p.a0[2 * k] - 0.5], p.regionLabel[0]);
      assert.equal(m1[(p.a1[2 * k + 1] - 0.5) * 56 + p.a1[2 * k] - 0.5], p.regionLabel[0]);
    }
  }
  assert.ok(valid >= 90, `${valid} of 100 images have a common region ${at}`);
});

Deno.test("coordinate helpers: feature grid and grid_sample forms match the doc's formulas", () => {
  const pts = Float32Array.from([0.5, 55.5, 28, 10.5]);
  const f = toFeatureGrid(pts, 56, 7);
  assert.deepEqual([...f], [0.0625, 6.9375, 3.5, 1.3125]);
  const g = toGridSample(pts, 56);
  // the release: x = (col + 0.5)/56·2 − 1 for col 0, row 55.
  for (const [i, want] of [[0, (0 + 0.5) / 56 * 2 - 1], [1, (55 + 0.5) / 56 * 2 - 1], [2, 0]]) {
    assert.ok(Math.abs(g[i] - want) < 1e-6);
  }
});
