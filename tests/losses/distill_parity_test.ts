/**
 * Parity with PyTorch: tests/fixtures/distill.safetensors is written by tools/make_distill_fixtures.py, an
 * independent implementation of the NAIVE release form (F.interpolate bilinear, align_corners=False, on
 * NCHW maps; explicit gathers of the full [S² + K] vectors; DINO CE with centre; autograd). The fused GPU
 * kernels (both variants) and the float64 fused reference must reproduce its loss, dZq, dLq and centre.
 */
import assert from "node:assert/strict";
import { readSafetensors, type StTensor, toFloat32, toInt32 } from "../../src/io/safetensors.ts";
import {
  buildDistillation,
  distillFusedRef,
  type DistillPairs,
  type DistillRefInput,
  type DistillVariant,
} from "../../src/losses/distill.ts";
import { Tensor } from "../../src/gpu/tensor.ts";
import { gpu, GPU_TEST, readF64, runOnce } from "../util.ts";

const fixture = await readSafetensors(new URL("../fixtures/distill.safetensors", import.meta.url).pathname);
const get = (name: string): StTensor => {
  const t = fixture.tensors.get(name);
  if (!t) throw new Error(`fixture lacks ${name}: regenerate with tools/make_distill_fixtures.py`);
  return t;
};
const meta = (name: string): number => {
  const v = fixture.metadata[name];
  if (v === undefined) throw new Error(`fixture lacks metadata ${name}`);
  return Number(v);
};

/** max|a − e| ≤ tol · max|e|. */
function assertMaxAbs(actual: ArrayLike<number>, expected: ArrayLike<number>, tol: number, what: string): void {
  assert.equal(actual.length, expected.length, `${what}: length`);
  let scale = 0, err = 0;
  for (let i = 0; i < expected.length; i++) {
    scale = Math.max(scale, Math.abs(expected[i]));
    const d = Math.abs(actual[i] - expected[i]);
    err = Number.isNaN(d) ? Infinity : Math.max(err, d);
  }
  assert.ok(err <= tol * scale, `${what}: max |error| ${err} > ${tol} × ${scale}`);
}

function load(c: string): DistillRefInput & { expect: Record<string, Float32Array> } {
  const u32 = (n: string) => Uint32Array.from(toInt32(get(`${c}.${n}`)));
  const pairs: DistillPairs = { pairA: u32("pair_a"), pairB: u32("pair_b"), pairImage: u32("pair_image") };
  const f = (n: string) => toFloat32(get(`${c}.${n}`));
  return {
    zq: f("zq"),
    lq: f("lq"),
    zt: f("zt"),
    lt: f("lt"),
    za: f("za"),
    pairs,
    B: meta(`${c}.B`),
    h: meta(`${c}.h`),
    w: meta(`${c}.w`),
    S: meta(`${c}.S`),
    dimZ: meta(`${c}.D`),
    K: meta(`${c}.K`),
    tauS: meta(`${c}.tau_s`),
    tauT: meta(`${c}.tau_t`),
    alpha: meta(`${c}.alpha`),
    mu: meta(`${c}.mu`),
    center: f("center"),
    expect: { loss: f("loss"), dzq: f("dzq"), dlq: f("dlq"), center: f("center_new") },
  };
}

const CASES = (fixture.metadata["cases"] ?? "").split(",").filter((c) => c);

Deno.test("the fixture has its cases", () => assert.deepEqual(CASES, ["a", "b"]));

for (const c of CASES) {
  Deno.test(`fused float64 reference matches PyTorch's naive distillation (case ${c})`, () => {
    const x = load(c), r = distillFusedRef(x);
    assertMaxAbs([r.loss], x.expect.loss, 1e-6, `loss ${c}`);
    assertMaxAbs(r.dZq, x.expect.dzq, 1e-6, `dZq ${c}`);
    assertMaxAbs(r.dLq, x.expect.dlq, 1e-6, `dLq ${c}`);
    assertMaxAbs(r.center, x.expect.center, 1e-6, `center ${c}`);
  });

  for (const variant of ["thread", "workgroup"] as DistillVariant[]) {
    Deno.test({
      name: `fused GPU distillation matches PyTorch's naive distillation (case ${c}, ${variant})`,
      ...GPU_TEST,
      async fn() {
        const g = await gpu();
        const x = load(c), N = x.B * x.h * x.w;
        const t = (data: Float32Array, cols: number) => Tensor.from(g, [N, cols], data);
        const ins = [t(x.zq as Float32Array, x.dimZ), t(x.lq as Float32Array, x.K)];
        const teach = [t(x.zt as Float32Array, x.dimZ), t(x.lt as Float32Array, x.K), t(x.za as Float32Array, x.dimZ)];
        const d = await buildDistillation(g, {
          zq: ins[0],
          lq: ins[1],
          zt: teach[0],
          lt: teach[1],
          za: teach[2],
          batch: x.B,
          h: x.h,
          w: x.w,
          S: x.S,
          dimZ: x.dimZ,
          K: x.K,
          maxPairs: x.pairs.pairA.length + 5,
          tauS: x.tauS,
          tauT: x.tauT,
          alpha: x.alpha,
          centerMomentum: x.mu,
          variant,
        });
        for (const o of [d.loss, d.dZq, d.dLq]) o.fill(NaN);
        d.center.upload(x.center);
        d.upload(x.pairs);
        await runOnce(g, [...d.forward, ...d.backward, ...d.centerUpdate]);
        const tag = `case ${c} (${variant})`;
        assertMaxAbs(await readF64(d.loss), x.expect.loss, 1e-4, `loss ${tag}`);
        assertMaxAbs(await readF64(d.dZq), x.expect.dzq, 1e-4, `dZq ${tag}`);
        assertMaxAbs(await readF64(d.dLq), x.expect.dlq, 1e-4, `dLq ${tag}`);
        assertMaxAbs(await readF64(d.center), x.expect.center, 1e-4, `center ${tag}`);
        for (const u of [...ins, ...teach, ...d.owned]) u.dispose();
      },
    });
  }
}
