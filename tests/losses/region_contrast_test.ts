/**
 * Region-level contrast (the `detcon` baseline): each region slot's points are averaged into one vector
 * before the contrast. The pooled float64 reference against finite differences, the GPU against the
 * reference, and pooling runs of one point reproducing point contrast exactly.
 */
import assert from "node:assert/strict";
import { buildPointContrast, pointContrastRef } from "../../src/losses/point_contrast.ts";
import { Tensor } from "../../src/gpu/tensor.ts";
import { assertClose, fdError, freshSeed, gpu, GPU_TEST, readF64, Rng, runOnce } from "../util.ts";
import { randomPointInputs } from "./helpers.ts";

Deno.test("finite differences agree with the region-pooled contrast reference", () => {
  const seed = freshSeed(), rng = new Rng(seed);
  const [B, h, w, D, regions, points] = [2, 3, 3, 4, 3, 4];
  const y0 = Float64Array.from(rng.normals(B * h * w * D)), y1 = Float64Array.from(rng.normals(B * h * w * D));
  const inp = randomPointInputs(rng, B, h, w, regions, points, 0.2);
  const args = { y1A1: y1, batch: B, h, w, dim: D, ...inp, pool: points };
  const ref = pointContrastRef({ y1A0: y0, ...args });
  assert.ok(ref.anchors > 0);
  const err = fdError((x) => pointContrastRef({ y1A0: x, ...args }).loss, y0, ref.dY1);
  assert.ok(err < 1e-6, `relative error ${err} (seed ${seed})`);
  // pooling runs of 1 is point contrast
  const plain = pointContrastRef({ y1A0: y0, ...args, pool: 1 });
  const noPool = pointContrastRef({ y1A0: y0, y1A1: y1, batch: B, h, w, dim: D, ...inp });
  assert.equal(plain.loss, noPool.loss);
});

for (const [B, h, w, D, regions, points] of [[2, 3, 4, 8, 3, 4], [4, 2, 2, 16, 4, 8]]) {
  Deno.test({
    name: `region-pooled contrast on the GPU matches float64 [B ${B}, ${h}×${w}, D ${D}, ${regions}×${points}]`,
    ...GPU_TEST,
    async fn() {
      const g = await gpu();
      const seed = freshSeed(), rng = new Rng(seed);
      const cells = B * h * w;
      const y0v = rng.normals(cells * D), y1v = rng.normals(cells * D);
      const y0 = Tensor.from(g, [cells, D], y0v), y1 = Tensor.from(g, [cells, D], y1v);
      const pc = await buildPointContrast(g, {
        y1A0: y0,
        y1A1: y1,
        batch: B,
        h,
        w,
        dim: D,
        pointsPerImage: regions * points,
        pool: points,
      });
      const inp = randomPointInputs(rng, B, h, w, regions, points, 0.25);
      pc.upload(inp);
      pc.loss.fill(NaN), pc.dY1.fill(NaN);
      await runOnce(g, [...pc.forward, ...pc.backward]);
      const ref = pointContrastRef({ y1A0: y0v, y1A1: y1v, batch: B, h, w, dim: D, ...inp, pool: points });
      const tag = `seed=${seed}`;
      assertClose(await readF64(pc.loss), [ref.loss], { rtol: 1e-5, atol: 1e-6 }, `loss ${tag}`);
      let scale = 0;
      for (const v of ref.dY1) scale = Math.max(scale, Math.abs(v));
      assertClose(await readF64(pc.dY1), ref.dY1, { rtol: 0, atol: 2e-5 * scale + 1e-7 }, `dY1 ${tag}`);
      for (const t of [y0, y1, ...pc.owned]) t.dispose();
    },
  });
}
