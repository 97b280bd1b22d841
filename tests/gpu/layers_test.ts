import assert from "node:assert/strict";
import { bnBackward, bnBackwardRef, bnForwardEval, bnForwardRef, bnForwardTrain } from "../../src/kernels/batchnorm.ts";
import { emaUpdate, larsRef, larsStep, sgdRef, sgdStep } from "../../src/kernels/optim.ts";
import {
  maxPool,
  maxPoolBackward,
  maxPoolBackwardRef,
  maxPoolRef,
  type PoolGeom,
  poolOutSize,
} from "../../src/kernels/pool.ts";
import { Tensor } from "../../src/gpu/tensor.ts";
import { gatherBlocks, gatherBlocksRef, invertPermutation } from "../../src/kernels/gather.ts";
import { assertClose, freshSeed, gpu, GPU_TEST, poisoned, readF64, Rng, runOnce } from "../util.ts";

const TOL = { rtol: 1e-5, atol: 1e-5 };

// [rows, C, groups, relu, residual, partial-sum threads]: C 5 takes the scalar lanes, the others vec4; the
// last two force many chunks, so the partial sums are folded (1024 → 32 → 1 chunks per group)
for (
  const [rows, c, groups, relu, residual, threads] of [
    [24, 5, 1, false, false, undefined],
    [60, 16, 3, true, true, undefined],
    [2048, 8, 2, true, false, undefined],
    [2048, 8, 2, true, true, 1 << 20],
    [1030, 5, 2, false, true, 1 << 20],
  ] as const
) {
  Deno.test({
    name: `batch norm [${rows}×${c}] groups ${groups}${relu ? " +relu" : ""}${residual ? " +residual" : ""}${
      threads ? ` threads ${threads}` : ""
    }: train forward, running stats, backward, eval`,
    ...GPU_TEST,
    async fn() {
      const g = await gpu();
      const seed = freshSeed(), rng = new Rng(seed);
      const s = { rows, c, groups, eps: 1e-5, momentum: 0.1, threads };
      const xv = Float32Array.from(rng.normals(rows * c), (v, i) => 2 * v + (i % c)); // channel offsets
      const gv = rng.normals(c),
        bv = rng.normals(c),
        rmv = rng.normals(c),
        rvv = Float32Array.from({ length: c }, () => 0.5 + rng.next());
      const resv = rng.normals(rows * c), dyv = rng.normals(rows * c);
      const x = Tensor.from(g, [rows, c], xv), gamma = Tensor.from(g, [c], gv), beta = Tensor.from(g, [c], bv);
      const rm = Tensor.from(g, [c], rmv), rv = Tensor.from(g, [c], rvv), res = Tensor.from(g, [rows, c], resv);
      const dy = Tensor.from(g, [rows, c], dyv);
      const y = poisoned(g, [rows, c]), dx = poisoned(g, [rows, c]), dgam = poisoned(g, [c]), dbet = poisoned(g, [c]);
      const gout = poisoned(g, [rows, c]), yEval = poisoned(g, [rows, c]);
      const fwd = await bnForwardTrain(g, x, y, gamma, beta, rm, rv, s, { relu, residual: residual ? res : undefined });
      const bwd = await bnBackward(g, x, y, dy, fwd.saved, gamma, dx, dgam, dbet, s, { relu, gradOut: gout });
      await runOnce(g, [...fwd.dispatches, ...bwd.dispatches]);
      const tag = `seed=${seed}`;
      const ref = bnForwardRef(xv, gv, bv, rmv, rvv, s, { relu, residual: residual ? resv : undefined });
      const yv = await readF64(y);
      assertClose(yv, ref.y, TOL, `y ${tag}`);
      assertClose(await readF64(rm), ref.runningMean, TOL, `running mean ${tag}`);
      assertClose(await readF64(rv), ref.runningVar, TOL, `running var ${tag}`);
      const b = bnBackwardRef(xv, yv, dyv, gv, s, relu);
      assertClose(await readF64(dx), b.dx, { rtol: 1e-4, atol: 1e-4 }, `dx ${tag}`);
      assertClose(await readF64(dgam), b.dgamma, { rtol: 1e-4, atol: 1e-4 }, `dgamma ${tag}`);
      assertClose(await readF64(dbet), b.dbeta, { rtol: 1e-5, atol: 1e-4 }, `dbeta ${tag}`);
      assertClose(await readF64(gout), b.g, { rtol: 0, atol: 0 }, `masked gradient ${tag}`);
      // eval mode uses the (updated) running statistics
      const ev = await bnForwardEval(g, x, yEval, gamma, beta, rm, rv, s, { relu });
      await runOnce(g, ev.dispatches);
      const rmNow = await readF64(rm), rvNow = await readF64(rv);
      const evRef = Float64Array.from(xv, (v, i) => {
        const ch = i % c, o = (v - rmNow[ch]) / Math.sqrt(rvNow[ch] + 1e-5) * gv[ch] + bv[ch];
        return relu ? Math.max(o, 0) : o;
      });
      assertClose(await readF64(yEval), evRef, TOL, `eval ${tag}`);
      for (
        const t of [
          x,
          gamma,
          beta,
          rm,
          rv,
          res,
          dy,
          y,
          dx,
          dgam,
          dbet,
          gout,
          yEval,
          ...fwd.owned,
          ...bwd.owned,
          ...ev.owned,
        ]
      ) t.dispose();
    },
  });
}

Deno.test({
  name: "max pool 3×3/2 pad 1: forward values and arg-max, backward as a gather, match float64",
  ...GPU_TEST,
  async fn() {
    const g = await gpu();
    const seed = freshSeed(), rng = new Rng(seed);
    for (
      const geom of [{ nb: 2, ih: 9, iw: 8, c: 5, k: 3, stride: 2, pad: 1 }, {
        nb: 1,
        ih: 16,
        iw: 16,
        c: 8,
        k: 3,
        stride: 2,
        pad: 1,
      }] as PoolGeom[]
    ) {
      const [oh, ow] = poolOutSize(geom);
      const nIn = geom.nb * geom.ih * geom.iw * geom.c, nOut = geom.nb * oh * ow * geom.c;
      const xv = rng.normals(nIn), dyv = rng.normals(nOut);
      const x = Tensor.from(g, [nIn], xv), dy = Tensor.from(g, [nOut], dyv);
      const y = poisoned(g, [nOut]), arg = poisoned(g, [nOut], "i32"), dx = poisoned(g, [nIn]);
      await runOnce(g, [await maxPool(g, x, y, arg, geom), await maxPoolBackward(g, dy, arg, dx, geom)]);
      const ref = maxPoolRef(xv, geom);
      assertClose(await readF64(y), ref.y, { rtol: 0, atol: 0 }, `maxpool y seed=${seed}`);
      assert.deepEqual([...(await arg.read())], [...ref.arg]);
      // dx sums up to 4 overlapping windows' dy in f32 (the reference in float64): the bound allows that sum's
      // rounding, ~1e-7 per addition at partial sums of a few units (atol 1e-7 failed once at 1.1× on GL).
      // A wrong arg-max or a lost window is off by O(1).
      assertClose(
        await readF64(dx),
        maxPoolBackwardRef(dyv, ref.arg, nIn),
        { rtol: 1e-6, atol: 1e-6 },
        `maxpool dx seed=${seed}`,
      );
      for (const t of [x, dy, y, arg, dx]) t.dispose();
    }
  },
});

for (const nesterov of [false, true]) {
  Deno.test({
    name: `SGD step (momentum, weight decay with mask${nesterov ? ", Nesterov" : ""}) and EMA match float64`,
    ...GPU_TEST,
    async fn() {
      const g = await gpu();
      const seed = freshSeed(), rng = new Rng(seed);
      const n = 1003;
      const pv = rng.normals(n), gv = rng.normals(n), bv = rng.normals(n);
      const mv = Float32Array.from({ length: n }, (_, i) => (i % 3 ? 1 : 0));
      const o = { lr: 0.03, momentum: 0.9, weightDecay: 1e-4, nesterov };
      const p = Tensor.from(g, [n], pv),
        gr = Tensor.from(g, [n], gv),
        buf = Tensor.from(g, [n], bv),
        mask = Tensor.from(g, [n], mv);
      const k = Tensor.from(g, [n], gv);
      await runOnce(g, [await sgdStep(g, p, gr, buf, mask, o), await emaUpdate(g, k, p, 0.99)]);
      const ref = sgdRef(pv, gv, bv, mv, {
        ...o,
        lr: Math.fround(0.03),
        momentum: Math.fround(0.9),
        weightDecay: Math.fround(1e-4),
      });
      assertClose(await readF64(p), ref.p, { rtol: 1e-6, atol: 1e-6 }, `sgd p seed=${seed}`);
      assertClose(await readF64(buf), ref.buf, { rtol: 1e-6, atol: 1e-6 }, `sgd buf seed=${seed}`);
      const pNow = await readF64(p);
      const emaRef = Float64Array.from(gv, (v, i) => Math.fround(0.99) * v + (1 - Math.fround(0.99)) * pNow[i]);
      assertClose(await readF64(k), emaRef, { rtol: 1e-6, atol: 1e-6 }, `ema seed=${seed}`);
      for (const t of [p, gr, buf, mask, k]) t.dispose();
    },
  });
}

Deno.test({
  name: "LARS step (per-tensor trust ratio; biases/BN neither decayed nor adapted) matches float64",
  ...GPU_TEST,
  async fn() {
    const g = await gpu();
    const seed = freshSeed(), rng = new Rng(seed);
    const n = 700;
    const segments = [
      { offset: 0, numel: 300, adapt: true },
      { offset: 320, numel: 17, adapt: false },
      { offset: 352, numel: 300, adapt: true },
    ];
    const pv = rng.normals(n), gv = rng.normals(n, 0.01), bv = rng.normals(n);
    const o = { lr: 0.2, momentum: 0.9, weightDecay: 1e-2, nesterov: false, eta: 0.001 };
    const p = Tensor.from(g, [n], pv), gr = Tensor.from(g, [n], gv), buf = Tensor.from(g, [n], bv);
    const l = await larsStep(g, p, gr, buf, segments, o);
    await runOnce(g, l.dispatches);
    const f = Math.fround;
    const ref = larsRef(pv, gv, bv, segments, {
      ...o,
      lr: f(0.2),
      momentum: f(0.9),
      weightDecay: f(1e-2),
      eta: f(0.001),
    });
    assertClose(await readF64(p), ref.p, { rtol: 1e-5, atol: 1e-6 }, `lars p seed=${seed}`);
    assertClose(await readF64(buf), ref.buf, { rtol: 1e-5, atol: 1e-6 }, `lars buf seed=${seed}`);
    // the adapted step really is scaled: compare with plain SGD on the same numbers
    const sgd = sgdRef(pv, gv, bv, new Float32Array(n).fill(1), o);
    assert.ok(Math.abs(sgd.p[0] - ref.p[0]) > 1e-6);
    for (const t of [p, gr, buf, ...l.owned]) t.dispose();
  },
});

Deno.test({
  name: "block gather (shuffle-BN unpermute) is exact, and a permutation followed by its inverse is the identity",
  ...GPU_TEST,
  async fn() {
    const g = await gpu();
    const seed = freshSeed(), rng = new Rng(seed);
    const B = 6, size = 37;
    const xv = rng.normals(B * size);
    const perm = Uint32Array.from(rng.shuffle([0, 1, 2, 3, 4, 5]));
    const x = Tensor.from(g, [B * size], xv), p = Tensor.from(g, [B], perm, "u32");
    const inv = Tensor.from(g, [B], invertPermutation(perm), "u32");
    const y = poisoned(g, [B * size]), back = poisoned(g, [B * size]);
    await runOnce(g, [await gatherBlocks(g, x, p, y, B), await gatherBlocks(g, y, inv, back, B)]);
    assertClose(await readF64(y), gatherBlocksRef(xv, perm, B), { rtol: 0, atol: 0 }, `gather seed=${seed}`);
    assertClose(await readF64(back), xv, { rtol: 0, atol: 0 }, `gather inverse seed=${seed}`);
    for (const t of [x, p, inv, y, back]) t.dispose();
  },
});
