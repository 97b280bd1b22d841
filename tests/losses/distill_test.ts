/**
 * Point affinity distillation: the fused float64 reference equals the naive release form (materialised
 * upsampling, full [S² + K] vectors), its gradients agree with finite differences of the naive loss, the CSR
 * is exact, and the GPU kernels (both variants) match the reference on fresh random data with poisoned
 * outputs, over two steps with different pair lists, a centre update and a changed teacher temperature.
 */
import assert from "node:assert/strict";
import { matchPairs } from "../../src/data/pairs.ts";
import {
  buildDistillation,
  centerAlignment,
  DistillCollapseMonitor,
  distillCsr,
  distillFusedRef,
  distillNaiveRef,
  type DistillPairs,
  type DistillRefInput,
  type DistillVariant,
  upsampleCorners,
} from "../../src/losses/distill.ts";
import { Tensor } from "../../src/gpu/tensor.ts";
import { freshSeed, gpu, GPU_TEST, readF64, Rng, runOnce } from "../util.ts";

/** Random pairs: `perImage` (b, u, v) triples per image, any order. */
function randomPairs(rng: Rng, B: number, S: number, perImage: number): DistillPairs {
  const a: number[] = [], v: number[] = [], im: number[] = [];
  for (let b = 0; b < B; b++) {
    for (let i = 0; i < perImage; i++) a.push(rng.int(S * S)), v.push(rng.int(S * S)), im.push(b);
  }
  return { pairA: Uint32Array.from(a), pairB: Uint32Array.from(v), pairImage: Uint32Array.from(im) };
}

/** Geometric pairs from `matchPairs` for a random overlapping (possibly flipped) crop pair per image. */
function matchedPairs(rng: Rng, B: number, S: number): DistillPairs {
  const a: number[] = [], v: number[] = [], im: number[] = [];
  const crop = () => {
    const x0 = rng.uniform(0, 0.3), y0 = rng.uniform(0, 0.3), s = rng.uniform(0.5, 0.7);
    return rng.next() < 0.5 ? [x0, y0, x0 + s, y0 + s] : [x0 + s, y0, x0, y0 + s];
  };
  for (let b = 0; b < B; b++) {
    const p = matchPairs(crop(), crop(), S);
    for (let m = 0; m < p.a.length; m++) a.push(p.a[m]), v.push(p.b[m]), im.push(b);
  }
  return { pairA: Uint32Array.from(a), pairB: Uint32Array.from(v), pairImage: Uint32Array.from(im) };
}

/** Rows of unit norm (the bottleneck is L2-normalised), rounded to f32. */
function unitRows(rng: Rng, rows: number, cols: number): Float32Array {
  const x = rng.normals(rows * cols);
  for (let r = 0; r < rows; r++) {
    let s = 0;
    for (let i = 0; i < cols; i++) s += x[r * cols + i] ** 2;
    for (let i = 0; i < cols; i++) x[r * cols + i] /= Math.sqrt(s);
  }
  return x;
}

interface Sizes {
  B: number;
  h: number;
  w: number;
  S: number;
  dimZ: number;
  K: number;
}

function randomInput(rng: Rng, z: Sizes, pairs: DistillPairs, alpha: number): DistillRefInput {
  const N = z.B * z.h * z.w;
  return {
    ...z,
    zq: unitRows(rng, N, z.dimZ),
    zt: unitRows(rng, N, z.dimZ),
    za: unitRows(rng, N, z.dimZ),
    lq: rng.normals(N * z.K, 0.5),
    lt: rng.normals(N * z.K, 0.5),
    pairs,
    tauS: 0.1,
    tauT: rng.uniform(0.04, 0.07),
    alpha,
    mu: 0.9,
    center: rng.normals(z.S * z.S + z.K, 0.2),
  };
}

/** max|a − e| ≤ tol · max|e| (one scale per tensor). */
function assertMaxAbs(actual: ArrayLike<number>, expected: ArrayLike<number>, tol: number, what: string): void {
  assert.equal(actual.length, expected.length, `${what}: length`);
  let scale = 0, err = 0, at = -1;
  for (let i = 0; i < expected.length; i++) {
    scale = Math.max(scale, Math.abs(expected[i]));
    const d = Math.abs(actual[i] - expected[i]);
    if (!(d <= err)) err = Number.isNaN(d) ? Infinity : d, at = i;
  }
  assert.ok(
    err <= tol * scale,
    `${what}: max |error| ${err} at ${at} (${actual[at]} vs ${expected[at]}) > ${tol} × ${scale}`,
  );
}

Deno.test("fused distillation reference equals the naive release form", () => {
  const seed = freshSeed(), rng = new Rng(seed);
  const cases: [Sizes, (r: Rng) => DistillPairs, number][] = [
    [{ B: 2, h: 3, w: 4, S: 8, dimZ: 5, K: 6 }, (r) => randomPairs(r, 2, 8, 25), 0.7],
    [{ B: 2, h: 3, w: 3, S: 12, dimZ: 4, K: 7 }, (r) => matchedPairs(r, 2, 12), 1 / 128],
    [{ B: 1, h: 2, w: 5, S: 7, dimZ: 3, K: 4 }, (r) => randomPairs(r, 1, 7, 30), 2],
  ];
  for (const [z, mk, alpha] of cases) {
    const x = randomInput(rng, z, mk(rng), alpha);
    const a = distillNaiveRef(x), b = distillFusedRef(x);
    const tag = `${JSON.stringify(z)} seed=${seed}`;
    assert.ok(Math.abs(a.loss - b.loss) <= 1e-12 * Math.abs(a.loss), `loss ${a.loss} vs ${b.loss} ${tag}`);
    assertMaxAbs(b.dZq, a.dZq, 1e-10, `dZq ${tag}`);
    assertMaxAbs(b.dLq, a.dLq, 1e-10, `dLq ${tag}`);
    assertMaxAbs(b.center, a.center, 1e-12, `center ${tag}`);
    assert.ok(Math.abs(a.entropy - b.entropy) <= 1e-12 * a.entropy, `entropy ${a.entropy} vs ${b.entropy} ${tag}`);
    assert.ok(a.entropy > 0 && a.entropy < Math.log(z.S * z.S + z.K), `entropy ${a.entropy} ${tag}`);
  }
});

Deno.test("the teacher entropy is log(S² + K) for a flat teacher, and the alignment is the centre's mean ÷ α", () => {
  const rng = new Rng(freshSeed());
  const z = { B: 1, h: 2, w: 2, S: 4, dimZ: 3, K: 5 };
  const x = randomInput(rng, z, randomPairs(rng, 1, 4, 6), 0.5);
  // za = 0 and lt = 0: every teacher entry is 0, and a zero centre leaves it flat
  const flat = { ...x, za: new Float64Array(x.za.length), lt: new Float64Array(x.lt.length) };
  const r = distillNaiveRef({ ...flat, center: new Float64Array(16 + 5) });
  assert.ok(Math.abs(r.entropy - Math.log(21)) < 1e-12, `${r.entropy}`);
  const center = Float64Array.from({ length: 21 }, (_, j) => (j < 16 ? 0.25 : 9));
  assert.ok(Math.abs(centerAlignment(center, 4, 0.5) - 0.5) < 1e-15);
});

Deno.test("finite differences of the naive loss agree with the fused gradients", () => {
  const seed = freshSeed(), rng = new Rng(seed);
  const z = { B: 2, h: 2, w: 3, S: 6, dimZ: 4, K: 5 };
  const x = randomInput(rng, z, randomPairs(rng, 2, 6, 8), 1.5);
  const zq = Float64Array.from(x.zq), lq = Float64Array.from(x.lq);
  const { dZq, dLq } = distillFusedRef({ ...x, zq, lq });
  const H = 1e-6;
  for (const [name, arr, grad] of [["Zq", zq, dZq], ["Lq", lq, dLq]] as const) {
    let worst = 0;
    for (let i = 0; i < arr.length; i++) {
      const v = arr[i];
      arr[i] = v + H;
      const up = distillNaiveRef({ ...x, zq, lq }).loss;
      arr[i] = v - H;
      const down = distillNaiveRef({ ...x, zq, lq }).loss;
      arr[i] = v;
      const fd = (up - down) / (2 * H);
      worst = Math.max(worst, Math.abs(fd - grad[i]) / Math.max(1e-3, Math.abs(fd)));
    }
    assert.ok(worst < 1e-5, `d${name}: relative error ${worst} (seed ${seed})`);
  }
});

Deno.test("distillCsr groups every pair under its A0 corner cells with their bilinear weights", () => {
  const seed = freshSeed(), rng = new Rng(seed);
  const B = 3, h = 3, w = 4, S = 10, n = h * w;
  const p = randomPairs(rng, B, S, 40);
  const csr = distillCsr(p, B, h, w, S);
  assert.equal(csr.ptr[B * n], csr.pair.length);
  const total = new Float64Array(p.pairA.length);
  for (let cell = 0; cell < B * n; cell++) {
    for (let e = csr.ptr[cell]; e < csr.ptr[cell + 1]; e++) {
      const m = csr.pair[e];
      if (e > csr.ptr[cell]) assert.ok(m > csr.pair[e - 1], `pairs ascending in cell ${cell} (seed ${seed})`);
      assert.equal(p.pairImage[m], Math.floor(cell / n));
      const { cells, weights } = upsampleCorners(p.pairA[m], h, w, S);
      const want = cells.reduce((s, c, i) => s + (c === cell % n ? weights[i] : 0), 0);
      assert.ok(Math.abs(csr.weight[e] - want) < 1e-7 && want > 0, `weight of pair ${m} in cell ${cell}`);
      total[m] += csr.weight[e];
    }
  }
  for (const t of total) assert.ok(Math.abs(t - 1) < 1e-6, `weights of a pair sum to ${t} (seed ${seed})`);
  assert.throws(() => distillCsr({ ...p, pairImage: p.pairImage.map(() => B) }, B, h, w, S), /outside/);
});

for (const variant of ["thread", "workgroup"] as DistillVariant[]) {
  Deno.test({
    name: `fused distillation on the GPU matches the float64 reference (${variant})`,
    ...GPU_TEST,
    async fn() {
      const g = await gpu();
      const seed = freshSeed(), rng = new Rng(seed);
      const z = { B: 2, h: 3, w: 3, S: 12, dimZ: 8, K: 10 };
      const N = z.B * z.h * z.w, E = z.S * z.S + z.K;
      const p1 = matchedPairs(rng, z.B, z.S);
      const x = randomInput(rng, z, p1, 0.5);
      const p2 = randomPairs(rng, z.B, z.S, 97);
      const maxPairs = Math.max(p1.pairA.length, p2.pairA.length) + 37;
      const t = (data: Float32Array | ArrayLike<number>, cols: number, name: string) =>
        Tensor.from(g, [N, cols], data, "f32", name);
      const inputs = [t(x.zq, z.dimZ, "zq"), t(x.lq, z.K, "lq"), t(x.zt, z.dimZ, "zt"), t(x.lt, z.K, "lt")];
      const za = t(x.za, z.dimZ, "za");
      const d = await buildDistillation(g, {
        zq: inputs[0],
        lq: inputs[1],
        zt: inputs[2],
        lt: inputs[3],
        za,
        batch: z.B,
        ...z,
        maxPairs,
        tauS: x.tauS,
        tauT: x.tauT,
        alpha: x.alpha,
        centerMomentum: x.mu,
        variant,
      });
      let center: ArrayLike<number> = new Float64Array(E);
      for (const [step, pairs, tauT] of [[1, p1, x.tauT], [2, p2, 0.07]] as const) {
        const tag = `${variant} step ${step} M=${pairs.pairA.length} seed=${seed}`;
        // poison every owned buffer but the centre, then upload the pairs (rewriting the pair buffers)
        for (const o of d.owned) if (o !== d.center) o.fill(o.dtype === "f32" ? NaN : 0xffffffff);
        d.upload(pairs);
        d.setTeacherTemperature(tauT);
        await runOnce(g, [...d.forward, ...d.backward]);
        const ref = distillFusedRef({ ...x, pairs, tauT, center });
        const loss = (await readF64(d.loss))[0];
        assert.ok(Math.abs(loss - ref.loss) <= 1e-5 * Math.abs(ref.loss), `loss ${loss} vs ${ref.loss} ${tag}`);
        assertMaxAbs(await readF64(d.dZq), ref.dZq, 1e-4, `dZq ${tag}`);
        assertMaxAbs(await readF64(d.dLq), ref.dLq, 1e-4, `dLq ${tag}`);
        const entropy = (await readF64(d.entropy))[0], align = (await readF64(d.alignment))[0];
        assert.ok(Math.abs(entropy - ref.entropy) <= 1e-5 * ref.entropy, `entropy ${entropy} vs ${ref.entropy} ${tag}`);
        // read before the centre update: the alignment of the centre this step's teacher was centred with
        const wantAlign = centerAlignment(center, z.S, x.alpha);
        assert.ok(
          Math.abs(align - wantAlign) <= 1e-5 * (1 + Math.abs(wantAlign)),
          `align ${align} ${wantAlign} ${tag}`,
        );
        await runOnce(g, d.centerUpdate);
        const c = await readF64(d.center);
        assertMaxAbs(c, ref.center, 1e-5, `center ${tag}`);
        center = c;
      }
      // no pairs: zero loss and gradients, centre unchanged
      d.upload({ pairA: new Uint32Array(0), pairB: new Uint32Array(0), pairImage: new Uint32Array(0) });
      await runOnce(g, [...d.forward, ...d.backward, ...d.centerUpdate]);
      assert.deepEqual([...await readF64(d.loss)], [0]);
      assert.ok((await readF64(d.dLq)).every((v) => v === 0) && (await readF64(d.dZq)).every((v) => v === 0));
      assert.deepEqual(await readF64(d.center), center);
      assert.throws(() => d.upload(randomPairs(rng, z.B, z.S, maxPairs)), /exceed maxPairs/);
      for (const u of [...inputs, za, ...d.owned]) u.dispose();
    },
  });
}

Deno.test("the collapse monitor fires once, after `patience` steps of bottleneck alignment above 0.9", () => {
  const m = new DistillCollapseMonitor(5);
  const fired: number[] = [];
  // unaligned, then 4 steps above the threshold, one dip below it, then for good
  const align = [...Array(10).fill(0.5), ...Array(4).fill(0.95), 0.85, ...Array(12).fill(0.97)];
  align.forEach((a, i) => m.observe(i, a) && fired.push(i));
  assert.deepEqual(fired, [15 + 4]);
  assert.equal(m.collapsedAt, 19);
  // alignment at the threshold or below never fires, whatever the loss does
  const healthy = new DistillCollapseMonitor(5);
  for (let i = 0; i < 100; i++) assert.equal(healthy.observe(i, i % 2 ? 0.9 : 0.6), false);
  assert.equal(healthy.collapsedAt, null);
  assert.equal(DistillCollapseMonitor.patienceFor(128), 16);
  assert.equal(DistillCollapseMonitor.patienceFor(2000), 200);
});
