/**
 * Point-level region contrast on the GPU against its float64 reference (fresh random data, poisoned
 * outputs, both row variants), and the sampling CSR against a direct bilinear sampler (adjoint identity).
 */
import assert from "node:assert/strict";
import {
  buildPointContrast,
  pointContrastRef,
  pointInputsFromBatch,
  pointSamplingCsr,
} from "../../src/losses/point_contrast.ts";
import type { PlrcBatch } from "../../src/data/batch.ts";
import type { RowVariant } from "../../src/kernels/rows.ts";
import { Tensor } from "../../src/gpu/tensor.ts";
import { assertClose, freshSeed, gpu, GPU_TEST, readF64, Rng, runOnce } from "../util.ts";
import { gradTol, gridSample, randomPointInputs } from "./helpers.ts";

// [B, h, w, D, regions, points]
const CASES: [number, number, number, number, number, number][] = [
  [1, 2, 3, 5, 2, 3],
  [2, 3, 4, 8, 3, 4],
  [3, 5, 5, 16, 2, 8],
  [4, 7, 7, 32, 4, 4],
];

for (const variant of ["thread", "workgroup"] as RowVariant[]) {
  for (const [B, h, w, D, regions, points] of CASES) {
    Deno.test({
      name: `point contrast (${variant}) loss and d y1(A0) match float64 [B ${B}, ${h}×${w}, D ${D}, ` +
        `${regions}×${points} points]`,
      ...GPU_TEST,
      async fn() {
        const g = await gpu();
        const seed = freshSeed(), rng = new Rng(seed);
        const cells = B * h * w;
        const y0 = Tensor.empty(g, [cells, D], "f32", "y1A0"), y1 = Tensor.empty(g, [cells, D], "f32", "y1A1");
        const pc = await buildPointContrast(g, {
          y1A0: y0,
          y1A1: y1,
          batch: B,
          h,
          w,
          dim: D,
          pointsPerImage: regions * points,
          variant,
          // the workgroup runs write into a caller's tensor
          dY1: variant === "workgroup" ? Tensor.empty(g, [cells, D], "f32", "external dY1") : undefined,
        });
        // two steps through the same bound dispatches, each with fresh data
        for (let step = 0; step < 2; step++) {
          const tag = `${variant} B${B} ${h}×${w} D${D} step ${step} seed=${seed}`;
          const y0v = rng.normals(cells * D), y1v = rng.normals(cells * D);
          const inp = randomPointInputs(rng, B, h, w, regions, points, step === 0 ? 0.25 : 0.5);
          y0.upload(y0v), y1.upload(y1v);
          pc.upload(inp);
          pc.loss.fill(NaN), pc.dY1.fill(NaN);
          await runOnce(g, [...pc.forward, ...pc.backward]);
          const ref = pointContrastRef({ y1A0: y0v, y1A1: y1v, batch: B, h, w, dim: D, ...inp });
          const loss = (await readF64(pc.loss))[0];
          assert.ok(
            Math.abs(loss - ref.loss) <= 1e-5 * Math.max(1, Math.abs(ref.loss)),
            `loss ${loss} vs ${ref.loss} (${tag})`,
          );
          const dy = await readF64(pc.dY1);
          assertClose(dy, ref.dY1, gradTol(ref.dY1, 2e-5), `d y1(A0) ${tag}`);
        }
        for (const t of new Set([y0, y1, pc.dY1, ...pc.owned])) t.dispose();
      },
    });
  }
}

Deno.test({
  name: "point contrast with no valid point gives loss 0 and a zero gradient",
  ...GPU_TEST,
  async fn() {
    const g = await gpu();
    const rng = new Rng(freshSeed());
    const [B, h, w, D] = [2, 3, 3, 4];
    const y0 = Tensor.from(g, [B * h * w, D], rng.normals(B * h * w * D));
    const y1 = Tensor.from(g, [B * h * w, D], rng.normals(B * h * w * D));
    const pc = await buildPointContrast(g, { y1A0: y0, y1A1: y1, batch: B, h, w, dim: D, pointsPerImage: 3 });
    const inp = randomPointInputs(rng, B, h, w, 1, 3, 1);
    pc.upload(inp);
    pc.loss.fill(NaN), pc.dY1.fill(NaN);
    await runOnce(g, [...pc.forward, ...pc.backward]);
    assert.deepEqual([...await readF64(pc.loss)], [0]);
    assert.ok((await readF64(pc.dY1)).every((v) => v === 0));
    for (const t of [y0, y1, ...pc.owned]) t.dispose();
  },
});

Deno.test("pointSamplingCsr is the transpose of bilinear sampling (⟨S y, g⟩ = ⟨y, Sᵀ g⟩) within 4·P entries", () => {
  const seed = freshSeed(), rng = new Rng(seed);
  for (const [B, h, w, D, ppi] of [[1, 1, 1, 2, 5], [2, 3, 5, 3, 7], [3, 7, 7, 4, 16]]) {
    const inp = randomPointInputs(rng, B, h, w, 1, ppi, 0);
    const P = B * ppi;
    const csr = pointSamplingCsr(inp.a0, B, h, w);
    assert.equal(csr.ptr.length, B * h * w + 1);
    assert.equal(csr.ptr[0], 0);
    assert.ok(csr.index.length <= 4 * P && csr.index.length === csr.ptr[B * h * w]);
    for (let c = 0; c < B * h * w; c++) {
      assert.ok(csr.ptr[c] <= csr.ptr[c + 1]);
      for (let e = csr.ptr[c] + 1; e < csr.ptr[c + 1]; e++) assert.ok(csr.index[e - 1] < csr.index[e], "ordered");
    }
    const y = Float64Array.from(rng.normals(B * h * w * D)), dg = Float64Array.from(rng.normals(P * D));
    const sy = gridSample(y, inp.a0, B, h, w, D);
    let lhs = 0, rhs = 0;
    for (let i = 0; i < sy.length; i++) lhs += sy[i] * dg[i];
    for (let c = 0; c < B * h * w; c++) {
      for (let e = csr.ptr[c]; e < csr.ptr[c + 1]; e++) {
        for (let d = 0; d < D; d++) rhs += y[c * D + d] * csr.weight[e] * dg[csr.index[e] * D + d];
      }
    }
    assert.ok(Math.abs(lhs - rhs) <= 1e-5 * (1 + Math.abs(lhs)), `${lhs} vs ${rhs} (seed ${seed})`);
  }
});

Deno.test("pointInputsFromBatch scales S-grid points to the feature grid and keeps the labels", () => {
  const batch = {
    n: 1,
    maskSize: 8,
    pointsA0: Float32Array.from([0.5, 7.5, 4, 2]),
    pointsA1: Float32Array.from([8, 0, 1.5, 3.5]),
    pointLabel: Int32Array.from([0, -1]),
  } as unknown as PlrcBatch;
  const x = pointInputsFromBatch(batch, 2, 4);
  assert.deepEqual([...x.a0], [0.25, 1.875, 2, 0.5]);
  assert.deepEqual([...x.a1], [4, 0, 0.75, 0.875]);
  assert.deepEqual([...x.labels], [0, -1]);
});
