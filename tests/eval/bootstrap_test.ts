/** The test set's own error: binomial and bootstrap standard errors on cases with a known answer. */
import assert from "node:assert/strict";
import {
  apBootstrapSE,
  binomialSE,
  bootstrapSE,
  imageCounts,
  miouOfImages,
  resampleIndices,
  sd,
} from "../../src/eval/bootstrap.ts";
import { type Detection, evaluateDetections, type GtBox } from "../../src/eval/ap.ts";
import { meanIoU } from "../../src/eval/linear.ts";
import { freshSeed, Rng } from "../util.ts";

Deno.test("binomialSE is sqrt(p(1 − p)/n)", () => {
  assert.equal(binomialSE(0.5, 100), 0.05);
  assert.equal(binomialSE(1, 10), 0);
  assert.ok(Math.abs(binomialSE(0.2, 64) - 0.05) < 1e-15);
});

Deno.test("bootstrap: identical images give se 0; a mean's se matches a direct float64 computation", () => {
  assert.equal(bootstrapSE(30, () => 0.7), 0);
  const seed = freshSeed(), rng = new Rng(seed);
  const v = Float64Array.from({ length: 50 }, () => rng.normal());
  const meanOf = (idx: ArrayLike<number>) => Array.from(idx, (i) => v[i]).reduce((a, x) => a + x, 0) / idx.length;
  // the same resamples by hand: standard deviation (n − 1) of the resampled means
  const direct = resampleIndices(50, 200, seed).map(meanOf);
  const m = direct.reduce((a, x) => a + x, 0) / direct.length;
  const want = Math.sqrt(direct.reduce((a, x) => a + (x - m) ** 2, 0) / (direct.length - 1));
  assert.ok(Math.abs(bootstrapSE(50, meanOf, { seed }) - want) < 1e-15, `seed ${seed}`);
  // and it estimates the standard error of a mean, σ/√n (σ with denominator n), within sampling error
  const big = bootstrapSE(50, meanOf, { resamples: 4000, seed });
  const vm = v.reduce((a, x) => a + x, 0) / v.length;
  const theory = Math.sqrt(v.reduce((a, x) => a + (x - vm) ** 2, 0) / v.length / v.length);
  assert.ok(Math.abs(big / theory - 1) < 0.06, `seed ${seed}: bootstrap ${big} vs σ/√n ${theory}`);
  // resamples draw with replacement over every index
  const r = resampleIndices(10, 50, seed);
  assert.ok(r.every((x) => x.length === 10 && x.every((i) => i >= 0 && i < 10)));
  assert.equal(new Set(Array.from(r.flatMap((x) => [...x]))).size, 10);
  assert.equal(sd([1, 3]), Math.SQRT2);
});

Deno.test("miouOfImages from per-image counts equals meanIoU of the chosen images' pixels together", () => {
  const seed = freshSeed(), rng = new Rng(seed), K = 5;
  const images = Array.from({ length: 6 }, () => {
    const label = Int32Array.from({ length: 40 }, () => rng.int(K - 1)); // class K−1 only ever predicted
    const pred = label.map((l) => (rng.next() < 0.6 ? l : rng.int(K)));
    return { label, pred };
  });
  const counts = images.map((im) => imageCounts(im.pred, im.label, K));
  for (const idx of [[0, 1, 2, 3, 4, 5], [2, 2, 5], [4]]) {
    const pred = idx.flatMap((i) => [...images[i].pred]), label = idx.flatMap((i) => [...images[i].label]);
    const want = meanIoU(pred, label, K).miou;
    assert.ok(Math.abs(miouOfImages(counts, idx) - want) < 1e-12, `seed ${seed}: images ${idx}`);
  }
  // every image the same → every resample the same → se 0
  const same = Array.from({ length: 8 }, () => counts[0]);
  assert.equal(bootstrapSE(8, (idx) => miouOfImages(same, idx)), 0);
});

Deno.test("AP's bootstrap: identical images give se 0; each resample scores its images as new ones", () => {
  const one = (image: number) => ({
    dets: [
      { image, classId: 0, score: 0.9, box: [0, 0, 10, 10] },
      { image, classId: 0, score: 0.8, box: [20, 20, 30, 30] }, // a false positive
    ] as Detection[],
    gts: [{ image, classId: 0, box: [0, 0, 10, 11] }, { image, classId: 1, box: [5, 5, 9, 9] }] as GtBox[],
  });
  const imgs = Array.from({ length: 5 }, (_, i) => one(i));
  const se = apBootstrapSE(imgs.map((x) => x.dets), imgs.map((x) => x.gts), 2);
  assert.deepEqual(se, { ap: 0, ap50: 0 });
  // a mixed set: the se is the spread of AP over the resamples, each computed directly
  const seed = freshSeed(), rng = new Rng(seed);
  const dets: Detection[][] = [], gts: GtBox[][] = [];
  for (let i = 0; i < 12; i++) {
    const g: GtBox[] = [{ image: i, classId: i % 2, box: [10, 10, 30, 30] }];
    const shift = rng.uniform(0, 15); // IoU from 1 down to ≈ 0.3
    dets.push([{ image: i, classId: i % 2, score: rng.next(), box: [10 + shift, 10, 30 + shift, 30] }]);
    gts.push(g);
  }
  const got = apBootstrapSE(dets, gts, 2, { seed, resamples: 30 });
  const direct = resampleIndices(12, 30, seed).map((idx) => {
    const d = Array.from(idx).flatMap((i, j) => dets[i].map((x) => ({ ...x, image: j })));
    const g = Array.from(idx).flatMap((i, j) => gts[i].map((x) => ({ ...x, image: j })));
    return evaluateDetections(d, g, 2);
  });
  assert.ok(Math.abs(got.ap - sd(direct.map((r) => r.ap))) < 1e-15, `seed ${seed}`);
  assert.ok(Math.abs(got.ap50 - sd(direct.map((r) => r.ap50))) < 1e-15, `seed ${seed}`);
  assert.ok(got.ap > 0, `seed ${seed}: a set with varied matches has a spread`);
});
