/** FH segmentation recovers known segments; label-map PNGs round-trip and read user formats. */
import assert from "node:assert/strict";
import { countRegions, defaultMinSize, felzenszwalb, gaussianSmooth } from "../../src/data/felzenszwalb.ts";
import type { LabelMap, RgbImage } from "../../src/data/image.ts";
import { decodeLabelMapPng, encodeLabelMapPng } from "../../src/data/labelmap_png.ts";
import { decodePng } from "../../src/data/png.ts";
import { Rng } from "../../src/util/rng.ts";
import { craftPng } from "./helpers.ts";

/** A 160×120 picture of five flat-coloured segments (background, two rectangles, a disc, a triangle). */
function segments(noise: number, seed: number): { img: RgbImage; truth: Int32Array } {
  const W = 160, H = 120, rng = new Rng(seed), truth = new Int32Array(W * H), data = new Uint8Array(W * H * 3);
  const colours = [[60, 90, 60], [200, 60, 50], [40, 60, 190], [230, 220, 90], [150, 150, 150]];
  for (let y = 0; y < H; y++) {
    for (let x = 0; x < W; x++) {
      let s = 0;
      if (x < 55 && y < 65) s = 1;
      else if (x >= 95 && y >= 72) s = 2;
      if ((x - 100) ** 2 + (y - 33) ** 2 <= 24 ** 2) s = 3;
      if (y >= 78 && y < 114 && Math.abs(x - 40) <= (y - 78) * 0.8) s = 4;
      truth[y * W + x] = s;
      for (let c = 0; c < 3; c++) {
        data[(y * W + x) * 3 + c] = Math.max(0, Math.min(255, Math.round(colours[s][c] + noise * rng.normal())));
      }
    }
  }
  return { img: { width: W, height: H, data }, truth };
}

/** Agreement after matching labels: many-to-one (each segment → its majority truth) and one-to-one (greedy). */
function agreement(pred: LabelMap, truth: Int32Array): { manyToOne: number; oneToOne: number } {
  const overlap = new Map<string, number>();
  for (let i = 0; i < truth.length; i++) {
    const k = `${pred.data[i]},${truth[i]}`;
    overlap.set(k, (overlap.get(k) ?? 0) + 1);
  }
  const best = new Map<number, number>();
  for (const [k, n] of overlap) {
    const p = Number(k.split(",")[0]);
    best.set(p, Math.max(best.get(p) ?? 0, n));
  }
  let manyToOne = 0, oneToOne = 0;
  for (const n of best.values()) manyToOne += n;
  const usedP = new Set<number>(), usedT = new Set<number>();
  for (const [k, n] of [...overlap].sort((a, b) => b[1] - a[1])) {
    const [p, t] = k.split(",").map(Number);
    if (usedP.has(p) || usedT.has(t)) continue;
    usedP.add(p), usedT.add(t), oneToOne += n;
  }
  return { manyToOne: manyToOne / truth.length, oneToOne: oneToOne / truth.length };
}

Deno.test("FH recovers five flat segments under noise: exactly 5 regions, ≥ 99% pixel agreement after matching", () => {
  for (const seed of [1, 2, 3]) {
    const { img, truth } = segments(6, seed);
    const map = felzenszwalb(img, { scale: 1000, sigma: 0.8, minSize: 300 });
    const n = countRegions(map), a = agreement(map, truth);
    // (with min size 100 the blended rings along high-contrast borders survive as thin regions, as FH does)
    assert.equal(n, 5, `seed ${seed}: ${n} regions`);
    assert.ok(a.oneToOne >= 0.99, `seed ${seed}: one-to-one agreement ${a.oneToOne}`);
    assert.equal(a.manyToOne, a.oneToOne);
    // ids are 1..n in raster order of first appearance
    assert.equal(map.data[0], 1);
    assert.equal(Math.max(...map.data), n);
  }
});

Deno.test("FH on a noise-free two-colour image with σ = 0 gives exactly the two halves", () => {
  const W = 20, H = 10, data = new Uint8Array(W * H * 3);
  for (let i = 0; i < W * H; i++) if (i % W >= 7) data.fill(255, i * 3, i * 3 + 3);
  const map = felzenszwalb({ width: W, height: H, data }, { scale: 100, sigma: 0, minSize: 1 });
  for (let i = 0; i < W * H; i++) assert.equal(map.data[i], i % W >= 7 ? 2 : 1);
});

Deno.test("min size merges small specks; small k alone keeps them", () => {
  const W = 16, H = 16, data = new Uint8Array(W * H * 3).fill(100);
  for (const [x, y] of [[5, 5], [6, 5], [5, 6], [6, 6]]) data.fill(250, (y * W + x) * 3, (y * W + x) * 3 + 3);
  const img = { width: W, height: H, data };
  assert.equal(countRegions(felzenszwalb(img, { scale: 10, sigma: 0, minSize: 1 })), 2);
  assert.equal(countRegions(felzenszwalb(img, { scale: 10, sigma: 0, minSize: 5 })), 1);
  assert.equal(defaultMinSize(256), 466);
  assert.equal(defaultMinSize(375), 1000);
});

Deno.test("gaussianSmooth keeps flat images flat and matches a hand 1-D reflect blur", () => {
  const flat = gaussianSmooth({ width: 9, height: 7, data: new Uint8Array(9 * 7 * 3).fill(77) }, 1.3);
  assert.ok(flat.every((v) => Math.abs(v - 77) < 1e-3));
  // a single bright column: its neighbours get the Gaussian weights (σ = 0.5, radius 2, scipy reflect)
  const W = 7, H = 1, d = new Uint8Array(W * H * 3);
  d.fill(100, 3 * 3, 3 * 3 + 3);
  const s = gaussianSmooth({ width: W, height: H, data: d }, 0.5);
  const w = [2, 1, 0, 1, 2].map((t) => Math.exp(-(t * t) / 0.5)), z = w.reduce((a, b) => a + b, 0);
  for (let x = 0; x < W; x++) {
    const dist = Math.abs(x - 3), want = dist <= 2 ? (100 * Math.exp(-(dist * dist) / 0.5)) / z : 0;
    assert.ok(Math.abs(s[x * 3] - want) < 1e-3, `x=${x}: ${s[x * 3]} vs ${want}`);
  }
});

Deno.test("label-map PNGs: 16-bit grey round trip with metadata, RGB ids above 65535", () => {
  const rng = new Rng(4);
  const small = { width: 11, height: 6, data: Int32Array.from({ length: 66 }, () => rng.int(65536)) };
  const a = decodeLabelMapPng(encodeLabelMapPng(small, { method: "fh", k: 1000 }));
  assert.deepEqual(a.map, small);
  assert.deepEqual(a.meta, { method: "fh", k: 1000 });
  assert.equal(decodePng(encodeLabelMapPng(small)).depth, 16);
  const big = { width: 5, height: 4, data: Int32Array.from({ length: 20 }, (_, i) => i * 700_001) };
  const bytes = encodeLabelMapPng(big);
  assert.equal(decodePng(bytes).colorType, 2);
  assert.deepEqual(decodeLabelMapPng(bytes).map, big);
  assert.throws(() => encodeLabelMapPng({ width: 1, height: 1, data: Int32Array.of(-1) }), /ids ≥ 0/);
});

Deno.test("user label maps: 8-bit grey, palette indices, RGB (R + 256G + 65536B)", () => {
  const grey = decodeLabelMapPng(
    craftPng({ width: 3, height: 2, depth: 8, colorType: 0, samples: [0, 1, 2, 3, 250, 7] }),
  );
  assert.deepEqual(Array.from(grey.map.data), [0, 1, 2, 3, 250, 7]);
  const pal = decodeLabelMapPng(craftPng({
    width: 4,
    height: 1,
    depth: 4,
    colorType: 3,
    samples: [0, 15, 3, 1],
    palette: Array(48).fill(9),
  }));
  assert.deepEqual(Array.from(pal.map.data), [0, 15, 3, 1]);
  const rgb = decodeLabelMapPng(
    craftPng({ width: 2, height: 1, depth: 8, colorType: 2, samples: [1, 2, 3, 255, 0, 0] }),
  );
  assert.deepEqual(Array.from(rgb.map.data), [1 + 512 + 3 * 65536, 255]);
});
