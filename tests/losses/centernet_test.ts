/**
 * The CenterNet-style detection loss: targets on a hand-worked case, the float64 reference's gradient
 * against finite differences, the loss against a direct evaluation of the formula, and the fused GPU
 * kernel against the reference on fresh random data with poisoned outputs.
 */
import assert from "node:assert/strict";
import { buildCenterNetLoss, centerNetLossRef, centerNetTargets, GAUSSIAN_ALPHA } from "../../src/losses/centernet.ts";
import { Tensor } from "../../src/gpu/tensor.ts";
import { assertClose, fdError, freshSeed, gpu, GPU_TEST, poisoned, readF64, Rng, runOnce } from "../util.ts";

/** Random head outputs and targets: heat in [0, 1) with some exact 1s, regressions at a few centres. */
function randomCase(rng: Rng, N: number, K: number) {
  const out = Float64Array.from({ length: N * (K + 4) }, () => rng.normal() * 2);
  const heat = Float32Array.from({ length: N * K }, () => (rng.next() < 0.1 ? 1 : rng.next() ** 3));
  const mask = Float32Array.from({ length: N }, () => (rng.next() < 0.2 ? 1 : 0));
  const reg = Float32Array.from({ length: N * 4 }, (_, i) => (mask[i >> 2] ? rng.normal() : 0));
  return { out, heat, reg, mask, centres: mask.reduce((a, b) => a + b, 0) };
}

Deno.test("targets: one box gives a unit peak at its centre cell, a Gaussian around it, and its regressions", () => {
  // 16×16 px box from (4, 4) at stride 8: centre (12, 12) px = (1.5, 1.5) cells → cell (1, 1), offset .5;
  // size 2 cells → log 2; σ = 0.54·2/6 = 0.18 cells, so the neighbour (0, 1) gets exp(−1/(2·0.18²))
  const t = centerNetTargets([[{ box: [4, 4, 20, 20], classId: 1 }]], 3, 3, 8, 2);
  assert.equal(t.centres, 1);
  const cell = (x: number, y: number) => y * 3 + x;
  assert.equal(t.heat[cell(1, 1) * 2 + 1], 1);
  assert.equal(t.heat[cell(1, 1) * 2 + 0], 0, "other class untouched");
  const s = GAUSSIAN_ALPHA * 2 / 6;
  assert.ok(Math.abs(t.heat[cell(0, 1) * 2 + 1] - Math.exp(-1 / (2 * s * s))) < 1e-9);
  assert.deepEqual([...t.mask], [0, 0, 0, 0, 1, 0, 0, 0, 0]);
  assertClose(t.reg.subarray(cell(1, 1) * 4, cell(1, 1) * 4 + 4), [Math.log(2), Math.log(2), 0.5, 0.5], {
    rtol: 1e-6,
    atol: 1e-7,
  }, "regression targets");
  // a sub-pixel box is skipped; two images keep separate maps
  const two = centerNetTargets(
    [[{ box: [0, 0, 0.5, 4], classId: 0 }], [{ box: [0, 0, 8, 8], classId: 0 }]],
    2,
    2,
    8,
    1,
  );
  assert.equal(two.centres, 1);
  assert.equal(two.heat[4], 1, "image 1 cell 0");
  assert.equal(two.heat[0], 0, "image 0 empty");
});

Deno.test("the reference loss is the formula, and its gradient matches finite differences", () => {
  const seed = freshSeed(), rng = new Rng(seed), N = 12, K = 3;
  const c = randomCase(rng, N, K);
  const { loss, grad } = centerNetLossRef(c.out, c, K, { size: 0.7, offset: 1.3 });
  // direct: sum of per-element terms over the number of centres
  let direct = 0;
  for (let r = 0; r < N; r++) {
    for (let k = 0; k < K; k++) {
      const p = 1 / (1 + Math.exp(-c.out[r * (K + 4) + k])), y = c.heat[r * K + k];
      direct += y === 1 ? -((1 - p) ** 2) * Math.log(p) : -((1 - y) ** 4) * p * p * Math.log(1 - p);
    }
    for (let j = 0; j < 4; j++) {
      direct += (j < 2 ? 0.7 : 1.3) * c.mask[r] * Math.abs(c.out[r * (K + 4) + K + j] - c.reg[r * 4 + j]);
    }
  }
  direct /= Math.max(1, c.centres);
  assert.ok(Math.abs(loss - direct) < 1e-9 * Math.max(1, Math.abs(direct)), `seed ${seed}: ${loss} vs ${direct}`);
  const x = Float64Array.from(c.out);
  const err = fdError((v) => centerNetLossRef(v, c, K, { size: 0.7, offset: 1.3 }).loss, x, grad);
  assert.ok(err < 1e-6, `seed ${seed}: finite-difference error ${err}`);
  // large logits stay finite (the stable log-sigmoid), with the gradient of the saturated branch
  const big = centerNetLossRef([60, -60, 0, 0, 0, 0, 0, 0, 0, 0], {
    heat: [1, 0],
    reg: [0, 0, 0, 0],
    mask: [0],
  }, 2);
  assert.ok(Number.isFinite(big.loss) && big.grad.every(Number.isFinite));
});

Deno.test({
  name: "the fused GPU loss and gradient match the float64 reference (fresh data, poisoned outputs)",
  ...GPU_TEST,
  async fn() {
    const g = await gpu();
    const seed = freshSeed(), rng = new Rng(seed);
    for (const [N, K] of [[300, 6], [37, 1]]) {
      const c = randomCase(rng, N, K);
      const out = Tensor.from(g, [N, K + 4], Float32Array.from(c.out), "f32", "head out");
      const grad = poisoned(g, [N, K + 4], "f32", "grad");
      const l = await buildCenterNetLoss(g, out, N, K, { weights: { size: 0.5, offset: 2 }, grad });
      l.loss.fill(NaN);
      l.upload(c);
      await runOnce(g, l.dispatches);
      const ref = centerNetLossRef(Float32Array.from(c.out), c, K, { size: 0.5, offset: 2 });
      assertClose(await readF64(grad), ref.grad, { rtol: 1e-4, atol: 1e-6 }, `seed ${seed}: gradient N ${N}`);
      assertClose(await readF64(l.loss), [ref.loss], { rtol: 1e-4, atol: 1e-6 }, `seed ${seed}: loss N ${N}`);
      for (const t of [out, grad, ...l.owned]) t.dispose();
    }
  },
});
