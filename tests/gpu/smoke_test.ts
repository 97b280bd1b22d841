/**
 * The GPU smoke subset that CI also runs on the GL backend (DENO_WEBGPU_BACKEND=gl): the on-device
 * self-check of the foundation kernels, both row variants (one of them uses workgroup barriers), and a
 * one-submission chain.
 */
import assert from "node:assert/strict";
import { selfCheck } from "../../src/kernels/selfcheck.ts";
import * as rows from "../../src/kernels/rows.ts";
import { Tensor } from "../../src/gpu/tensor.ts";
import { assertClose, freshSeed, gpu, GPU_TEST, poisoned, readF64, Rng, runOnce } from "../util.ts";

Deno.test({
  name: "smoke: the kernel self-check passes on this adapter",
  ...GPU_TEST,
  async fn() {
    const g = await gpu();
    const results = await selfCheck(g);
    for (const r of results) assert.ok(r.ok, `${r.kernel} on ${g.summary.backend}: max error ${r.maxErr}`);
  },
});

for (const variant of ["thread", "workgroup"] as const) {
  Deno.test({
    name: `smoke: softmax cross-entropy forward and backward (${variant})`,
    ...GPU_TEST,
    async fn() {
      const g = await gpu();
      const seed = freshSeed(), rng = new Rng(seed);
      const R = 9, C = 130;
      const xv = rng.normals(R * C, 2), tv = Int32Array.from({ length: R }, () => rng.int(C)), gv = rng.normals(R);
      const x = Tensor.from(g, [R, C], xv), t = Tensor.from(g, [R], tv, "i32"), dl = Tensor.from(g, [R], gv);
      const loss = poisoned(g, [R]), lse = poisoned(g, [R]), dx = poisoned(g, [R, C]);
      await runOnce(g, [
        await rows.crossEntropy(g, x, t, loss, lse, variant),
        await rows.crossEntropyBackward(g, x, lse, t, dl, dx, variant),
      ]);
      const tol = { rtol: 2e-5, atol: 2e-5 };
      assertClose(await readF64(loss), rows.rowsRef.crossEntropy(xv, tv, R, C).loss, tol, `loss seed=${seed}`);
      assertClose(await readF64(dx), rows.rowsRef.crossEntropyBackward(xv, tv, gv, R, C), tol, `dx seed=${seed}`);
      for (const tt of [x, t, dl, loss, lse, dx]) tt.dispose();
    },
  });
}
