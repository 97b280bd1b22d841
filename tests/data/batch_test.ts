import assert from "node:assert/strict";
import { Rng } from "../../src/util/rng.ts";
import { labelMap, rgbImage } from "../../src/data/image.ts";
import { overlapRatio } from "../../src/data/crops.ts";
import { matchPairs } from "../../src/data/pairs.ts";
import {
  type BatchItem,
  collate,
  dataConfig,
  makeBatch,
  makeKeyedSample,
  makeSample,
  type PlrcBatch,
  splitBatch,
} from "../../src/data/batch.ts";
import { benchDataViews } from "../../src/bench/data_views.ts";

const SEED = Number(Deno.env.get("PLRC_TEST_SEED") ?? Math.floor(Math.random() * 2 ** 31));
const at = `(seed ${SEED})`;

/** Random images of assorted sizes, some with a label map. */
function items(n: number, rng: Rng, keyBase = 0): BatchItem[] {
  return Array.from({ length: n }, (_, t) => {
    const W = 40 + rng.int(200), H = 40 + rng.int(200), image = rgbImage(W, H);
    for (let k = 0; k < image.data.length; k++) image.data[k] = rng.int(256);
    const item: BatchItem = { image, key: keyBase + t };
    if (rng.next() < 0.3) {
      const m = labelMap(W, H);
      for (let p = 0; p < W * H; p++) m.data[p] = 1 + Math.floor((p % W) / 7) % 5; // vertical stripes
      item.regions = m;
    }
    return item;
  });
}

const cfg = dataConfig({ resolution: 32, seed: SEED });

Deno.test("dataConfig: defaults (R 224, S 56, G 4, 4 regions × 16 points), S follows R, bad values throw", () => {
  const d = dataConfig();
  assert.deepEqual([d.resolution, d.maskSize, d.grid, d.regions, d.points], [224, 56, 4, 4, 16]);
  assert.equal(dataConfig({ resolution: 64 }).maskSize, 16);
  assert.throws(() => dataConfig({ resolution: 30 }), RangeError); // S = 7.5
  assert.throws(() => dataConfig({ regions: 0 }), RangeError);
  assert.throws(() => dataConfig({ crop: { scale: [0.5, 0.2], ratio: [1, 1] } }), RangeError);
});

/** Checks every shape and the internal consistency of the pair indexes. */
function checkLayout(b: PlrcBatch) {
  const { n, resolution: R, maskSize: S, regions, points } = b, P = regions * points, S2 = S * S;
  for (const v of [b.viewA0, b.viewA1, b.viewB0]) assert.equal(v.length, n * R * R * 3);
  for (const m of [b.maskA0, b.maskA1]) assert.equal(m.length, n * S2);
  for (const c of [b.coordA0, b.coordA1, b.coordB0]) assert.equal(c.length, n * 4);
  assert.equal(b.pointsA0.length, n * P * 2);
  assert.equal(b.pointLabel.length, n * P);
  const M = b.pairOffsets[n];
  assert.deepEqual([b.pairA.length, b.pairB.length, b.pairImage.length, b.b0Pairs.length], [M, M, M, M]);
  assert.equal(b.a0Ptr.length, n * S2 + 1);
  // A0 CSR: pairs of global position g = image·S² + u are exactly a0Ptr[g] .. a0Ptr[g+1]−1.
  for (let g = 0; g < n * S2; g++) {
    for (let m = b.a0Ptr[g]; m < b.a0Ptr[g + 1]; m++) assert.equal(b.pairImage[m] * S2 + b.pairA[m], g);
  }
  assert.equal(b.a0Ptr[n * S2], M);
  // B0 CSR: a permutation of all pairs, grouped by B0 position, ascending within a group.
  const seen = new Uint8Array(M);
  for (let g = 0; g < n * S2; g++) {
    for (let t = b.b0Ptr[g]; t < b.b0Ptr[g + 1]; t++) {
      const m = b.b0Pairs[t];
      assert.equal(b.pairImage[m] * S2 + b.pairB[m], g);
      if (t > b.b0Ptr[g]) assert.ok(b.b0Pairs[t - 1] < m);
      seen[m]++;
    }
  }
  assert.ok(seen.every((s) => s === 1));
  for (let i = 0; i < n; i++) {
    for (let m = b.pairOffsets[i]; m < b.pairOffsets[i + 1]; m++) assert.equal(b.pairImage[m], i);
  }
  for (let r = 0; r < n * P; r++) {
    assert.equal(b.pointValid[r] === 1, b.pointLabel[r] >= 0);
    if (b.pointLabel[r] >= 0) assert.equal(b.pointLabel[r], Math.floor(r / points));
  }
}

Deno.test("makeBatch: layout, CSR indexes, labels, pairs and points agree with the per-image pieces", () => {
  const rng = new Rng(SEED), its = items(6, rng);
  const b = makeBatch(its, cfg);
  checkLayout(b);
  const S = cfg.maskSize;
  its.forEach((item, i) => {
    const s = makeSample(item, cfg, Rng.derive(cfg.seed, item.key!));
    // Pairs come from the A0 and B0 coords (float64 in the sample; the batch stores float32).
    const p = matchPairs(s.coords.subarray(0, 4), s.coords.subarray(8, 12), S);
    assert.deepEqual(b.pairA.slice(b.pairOffsets[i], b.pairOffsets[i + 1]), p.a);
    assert.deepEqual(b.pairB.slice(b.pairOffsets[i], b.pairOffsets[i + 1]), p.b);
    assert.ok(s.pairAccepted ? overlapRatio(s.boxes[0].box, s.boxes[2].box) >= 0.5 : s.pairTries === 100, at);
    // Points of slot r lie in cells of the slot's region in their view's mask.
    for (let r = 0; r < cfg.regions; r++) {
      const label = b.regionLabel[i * cfg.regions + r];
      if (label < 0) continue;
      for (let k = 0; k < cfg.points; k++) {
        const row = (i * cfg.regions + r) * cfg.points + k;
        for (const [pts, mask] of [[b.pointsA0, b.maskA0], [b.pointsA1, b.maskA1]] as const) {
          const x = pts[2 * row] - 0.5, y = pts[2 * row + 1] - 0.5;
          assert.equal(mask[i * S * S + y * S + x], label, at);
        }
      }
    }
  });
});

Deno.test("splitBatch: each part equals the collated batch of its images (labels, pair images, CSR re-based)", () => {
  const rng = new Rng(SEED), its = items(6, rng);
  const whole = makeBatch(its, cfg);
  for (const parts of [1, 2, 3]) {
    const split = splitBatch(whole, parts);
    assert.equal(split.length, parts);
    split.forEach((part, k) => {
      const n = 6 / parts;
      const own = collate(
        its.slice(k * n, (k + 1) * n).map((it) => makeKeyedSample(it as BatchItem & { key: number }, cfg)),
        cfg,
      );
      checkLayout(part);
      assert.deepEqual(part, own, `part ${k} of ${parts} ${at}`);
    });
  }
  // pairs exist in more than one part, so the re-basing above was exercised
  assert.ok(splitBatch(whole, 2).every((p) => p.pairA.length > 0), at);
  assert.throws(() => splitBatch(whole, 4), /does not split/);
});

Deno.test("determinism: same seed and keys give identical batches regardless of batch composition", () => {
  const rng = new Rng(SEED), its = items(4, rng);
  const a = makeBatch(its, cfg), b = makeBatch(its, cfg);
  assert.deepEqual(a, b);
  // Image 2 alone gives the same sample as inside the batch.
  const solo = makeBatch([its[2]], cfg), R = cfg.resolution, v = R * R * 3;
  assert.deepEqual(solo.viewA0, a.viewA0.slice(2 * v, 3 * v));
  assert.deepEqual(solo.pointsA1, a.pointsA1.slice(2 * cfg.regions * cfg.points * 2, 3 * cfg.regions * cfg.points * 2));
  assert.deepEqual(solo.pairB, a.pairB.slice(a.pairOffsets[2], a.pairOffsets[3]));
  // Another seed or key changes the views.
  const other = makeBatch(its, { ...cfg, seed: cfg.seed + 1 });
  assert.notDeepEqual(other.viewA0, a.viewA0);
  const shifted = makeBatch(its.map((it) => ({ ...it, key: it.key! + 100 })), cfg);
  assert.notDeepEqual(shifted.coordA0, a.coordA0);
  // Items without keys draw their generators from the rng argument.
  const noKey = its.map(({ image, regions }) => ({ image, regions }));
  assert.deepEqual(makeBatch(noKey, cfg, new Rng(5)), makeBatch(noKey, cfg, new Rng(5)));
  assert.throws(() => makeBatch(noKey, cfg));
});

Deno.test("views: photometric off gives the normalised crop; flips are recorded in the coords", () => {
  const image = rgbImage(50, 40);
  for (let p = 0; p < 50 * 40; p++) image.data.set([200, 100, 50], p * 3);
  const geo = { ...cfg, photometric: false as const };
  const b = makeBatch([{ image, key: 1 }, { image, key: 2 }, { image, key: 3 }], geo);
  const want = [200 / 255, 100 / 255, 50 / 255].map((v, c) => (v - cfg.mean[c]) / cfg.std[c]);
  for (let k = 0; k < b.viewB0.length; k++) assert.ok(Math.abs(b.viewB0[k] - want[k % 3]) < 1e-5);
  let flips = 0;
  for (let t = 0; t < 40; t++) {
    const s = makeSample({ image, key: t }, geo, Rng.derive(1, t));
    s.boxes.forEach(({ box, flipped }, v) => {
      flips += flipped ? 1 : 0;
      if (box.w > 1) assert.equal(s.coords[v * 4] > s.coords[v * 4 + 2], flipped);
    });
  }
  assert.ok(flips > 30 && flips < 90, `${flips} flips of 120 views`);
});

Deno.test("regions: 1 reproduces the release's form: one label per image, every point of an image a positive", () => {
  const rng = new Rng(SEED), one = dataConfig({ resolution: 32, regions: 1, points: 16, seed: SEED });
  const b = makeBatch(items(5, rng), one);
  checkLayout(b);
  assert.equal(b.pointLabel.length, 5 * 16);
  for (let i = 0; i < 5; i++) {
    const labels = new Set(b.pointLabel.slice(i * 16, i * 16 + 16));
    assert.ok(labels.size === 1 && (labels.has(i) || labels.has(-1)), at);
  }
});

Deno.test("collate of no samples is an empty batch", () => {
  const b = collate([], cfg);
  assert.equal(b.n, 0);
  assert.deepEqual([...b.a0Ptr], [0]);
});

Deno.test("benchDataViews returns one finite measurement per resolution", async () => {
  const r = await benchDataViews({ resolutions: [32], batchSize: 2, batches: 1, photometricViews: 2 });
  assert.ok(r.length >= 1);
  for (const m of r) {
    assert.equal(m.resolution, 32);
    assert.ok(Number.isFinite(m.msPerView) && m.msPerView > 0, JSON.stringify(m));
  }
});
