/**
 * Image-level InfoNCE on the GPU against its float64 reference (fresh random data, poisoned outputs,
 * both row variants), the ring-buffer queue update (pointer as a uniform, wrap-around), and the queue init.
 */
import assert from "node:assert/strict";
import { buildImageContrast, imageContrastRef, initQueue } from "../../src/losses/image_contrast.ts";
import type { RowVariant } from "../../src/kernels/rows.ts";
import { Tensor } from "../../src/gpu/tensor.ts";
import { assertClose, freshSeed, gpu, GPU_TEST, readF64, Rng, runOnce } from "../util.ts";
import { gradTol } from "./helpers.ts";

// [B, hw, D, Q]
const CASES: [number, number, number, number][] = [
  [1, 1, 3, 1],
  [2, 1, 5, 2],
  [3, 4, 8, 17],
  [4, 9, 16, 300],
  [8, 49, 32, 1000],
];

for (const variant of ["thread", "workgroup"] as RowVariant[]) {
  for (const [B, hw, D, Q] of CASES) {
    Deno.test({
      name: `image InfoNCE (${variant}) loss and d y1(A0) match float64 [B ${B}, hw ${hw}, D ${D}, Q ${Q}]`,
      ...GPU_TEST,
      async fn() {
        const g = await gpu();
        const seed = freshSeed(), rng = new Rng(seed);
        const y0 = Tensor.empty(g, [B * hw, D], "f32", "y1A0"), y1 = Tensor.empty(g, [B * hw, D], "f32", "y1A1");
        const ic = await buildImageContrast(g, {
          y1A0: y0,
          y1A1: y1,
          batch: B,
          hw,
          dim: D,
          queueSize: Q,
          seed,
          variant,
          // the workgroup runs write into a caller's tensor
          dY1: variant === "workgroup" ? Tensor.empty(g, [B * hw, D], "f32", "external dY1") : undefined,
        });
        let queue: Float64Array = Float64Array.from(await ic.queue.read());
        assertClose(queue, initQueue(Q, D, seed), { rtol: 0, atol: 0 }, "initial queue");
        let ptr = 0;
        // three steps through the same bound dispatches: the queue fills and wraps
        for (let step = 0; step < 3; step++) {
          const tag = `${variant} B${B} hw${hw} D${D} Q${Q} step ${step} seed=${seed}`;
          // a shared direction makes the positives matter
          const y0v = rng.normals(B * hw * D), y1v = rng.normals(B * hw * D);
          for (let i = 0; i < y0v.length; i++) y1v[i] += y0v[i];
          y0.upload(y0v), y1.upload(y1v);
          ic.setPointer(ptr);
          ic.loss.fill(NaN), ic.dY1.fill(NaN);
          await runOnce(g, [...ic.forward, ...ic.backward, ...ic.enqueue]);
          const ref = imageContrastRef({ y1A0: y0v, y1A1: y1v, queue, batch: B, hw, dim: D });
          const loss = (await readF64(ic.loss))[0];
          assert.ok(
            Math.abs(loss - ref.loss) <= 1e-5 * Math.max(1, Math.abs(ref.loss)),
            `loss ${loss} vs ${ref.loss} (${tag})`,
          );
          assertClose(await readF64(ic.dY1), ref.dY1, gradTol(ref.dY1, 2e-5, 1e-6), `d y1(A0) ${tag}`);
          // the queue: rows ptr .. ptr+B−1 (mod Q) now hold the keys, all others unchanged
          const after = await readF64(ic.queue);
          const expected = queue.slice();
          for (let i = 0; i < B; i++) {
            for (let d = 0; d < D; d++) expected[((ptr + i) % Q) * D + d] = ref.keys[i * D + d];
          }
          assertClose(after, expected, { rtol: 0, atol: 2e-6 }, `queue after enqueue ${tag}`);
          queue = after;
          ptr = (ptr + B) % Q;
        }
        for (const t of new Set([y0, y1, ic.dY1, ...ic.owned])) t.dispose();
      },
    });
  }
}

Deno.test("initQueue is uniform in [−s, s], s = 1/√(D/3), reproducible from the seed", () => {
  const seed = freshSeed();
  const [Q, D] = [4096, 12];
  const a = initQueue(Q, D, seed), b = initQueue(Q, D, seed), c = initQueue(Q, D, seed + 1);
  assert.deepEqual(a, b);
  assert.notDeepEqual(a, c);
  const s = 1 / Math.sqrt(D / 3);
  let sum = 0, sq = 0, norms = 0;
  for (let i = 0; i < a.length; i++) {
    assert.ok(a[i] >= -s && a[i] <= s, `value ${a[i]} outside ±${s} (seed ${seed})`);
    sum += a[i], sq += a[i] * a[i];
  }
  for (let r = 0; r < Q; r++) {
    let n = 0;
    for (let d = 0; d < D; d++) n += a[r * D + d] ** 2;
    norms += Math.sqrt(n) / Q;
  }
  // uniform on [−s, s]: mean 0, variance s²/3 = 1/D, so E‖row‖² = 1
  assert.ok(Math.abs(sum / a.length) < 0.02 * s, `mean ${sum / a.length} (seed ${seed})`);
  assert.ok(Math.abs((sq / a.length) * D - 1) < 0.03, `variance·D ${(sq / a.length) * D} (seed ${seed})`);
  assert.ok(norms > 0.9 && norms <= 1, `mean row norm ${norms} (seed ${seed})`);
});

Deno.test({
  name: "image InfoNCE rejects a queue shorter than the batch",
  ...GPU_TEST,
  async fn() {
    const g = await gpu();
    const y = Tensor.empty(g, [4 * 2, 3]);
    await assert.rejects(
      buildImageContrast(g, { y1A0: y, y1A1: y, batch: 4, hw: 2, dim: 3, queueSize: 3, seed: 1 }),
      /queue of 3 rows/,
    );
    y.dispose();
  },
});
