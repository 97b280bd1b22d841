/**
 * Parity with PyTorch: tests/fixtures/foundation.safetensors is written by tools/make_fixtures.py
 * (F.cross_entropy, F.normalize, softmax, log_softmax and their autograd gradients, float64 from f32
 * inputs). The GPU kernels run the same computation, including the mean over rows and its backward.
 */
import { readSafetensors, type StTensor, toFloat32, toInt32 } from "../../src/io/safetensors.ts";
import { reduceAxis, reduceAxisBackward } from "../../src/kernels/reduce.ts";
import * as rows from "../../src/kernels/rows.ts";
import type { RowVariant } from "../../src/kernels/rows.ts";
import { Tensor } from "../../src/gpu/tensor.ts";
import { assertClose, gpu, GPU_TEST, poisoned, readF64, runOnce } from "../util.ts";

const fixture = await readSafetensors(new URL("../fixtures/foundation.safetensors", import.meta.url).pathname);
const get = (name: string): StTensor => {
  const t = fixture.tensors.get(name);
  if (!t) throw new Error(`fixture lacks ${name}: regenerate with tools/make_fixtures.py`);
  return t;
};
const TOL = { rtol: 1e-5, atol: 1e-6 };

for (const variant of ["thread", "workgroup"] as RowVariant[]) {
  for (const soft of [false, true]) {
    const p = soft ? "ce_soft" : "ce";
    Deno.test({
      name: `${soft ? "soft-target " : ""}cross-entropy loss and gradient match PyTorch (${variant})`,
      ...GPU_TEST,
      async fn() {
        const g = await gpu();
        const lt = get(`${p}.logits`), [R, C] = lt.shape;
        const x = Tensor.from(g, [R, C], toFloat32(lt));
        const target = soft
          ? Tensor.from(g, [R, C], toFloat32(get(`${p}.target`)))
          : Tensor.from(g, [R], toInt32(get(`${p}.target`)), "i32");
        const loss = poisoned(g, [R]), lse = poisoned(g, [R]), mean = poisoned(g, [1]);
        const one = Tensor.from(g, [1], [1]), dloss = poisoned(g, [R]), dx = poisoned(g, [R, C]);
        const fwd = soft ? rows.softCrossEntropy : rows.crossEntropy;
        const bwd = soft ? rows.softCrossEntropyBackward : rows.crossEntropyBackward;
        const red = await reduceAxis(g, loss, 0, "mean", mean);
        await runOnce(g, [
          await fwd(g, x, target, loss, lse, variant),
          ...red.dispatches,
          await reduceAxisBackward(g, one, [R], 0, "mean", dloss),
          await bwd(g, x, lse, target, dloss, dx, variant),
        ]);
        assertClose(await readF64(mean), toFloat32(get(`${p}.loss`)), TOL, `${p}.loss`);
        assertClose(await readF64(dx), toFloat32(get(`${p}.grad`)), TOL, `${p}.grad`);
        for (const t of [x, target, loss, lse, mean, one, dloss, dx]) t.dispose();
      },
    });
  }

  Deno.test({
    name: `L2 normalisation and its gradient match PyTorch's F.normalize (${variant})`,
    ...GPU_TEST,
    async fn() {
      const g = await gpu();
      const xt = get("l2.x"), [R, C] = xt.shape;
      const x = Tensor.from(g, [R, C], toFloat32(xt)), dy = Tensor.from(g, [R, C], toFloat32(get("l2.dy")));
      const y = poisoned(g, [R, C]), norm = poisoned(g, [R]), dx = poisoned(g, [R, C]);
      await runOnce(g, [
        await rows.l2Normalize(g, x, y, norm, undefined, variant),
        await rows.l2NormalizeBackward(g, y, norm, dy, dx, undefined, variant),
      ]);
      assertClose(await readF64(y), toFloat32(get("l2.y")), TOL, "l2.y");
      // rows scaled by 1e-3 have gradients ~1e3 larger: relative tolerance carries them
      assertClose(await readF64(dx), toFloat32(get("l2.dx")), TOL, "l2.dx");
      for (const t of [x, dy, y, norm, dx]) t.dispose();
    },
  });

  for (
    const [name, fwd, bwd] of [
      ["softmax", rows.softmax, rows.softmaxBackward],
      ["log_softmax", rows.logSoftmax, rows.logSoftmaxBackward],
    ] as const
  ) {
    Deno.test({
      name: `${name} and its gradient match PyTorch (${variant})`,
      ...GPU_TEST,
      async fn() {
        const g = await gpu();
        const xt = get(`${name}.x`), [R, C] = xt.shape;
        const x = Tensor.from(g, [R, C], toFloat32(xt)), dy = Tensor.from(g, [R, C], toFloat32(get(`${name}.dy`)));
        const y = poisoned(g, [R, C]), dx = poisoned(g, [R, C]);
        await runOnce(g, [await fwd(g, x, y, variant), await bwd(g, y, dy, dx, variant)]);
        assertClose(await readF64(y), toFloat32(get(`${name}.y`)), TOL, `${name}.y`);
        assertClose(await readF64(dx), toFloat32(get(`${name}.dx`)), { rtol: 1e-5, atol: 1e-5 }, `${name}.dx`);
        for (const t of [x, dy, y, dx]) t.dispose();
      },
    });
  }
}
