/**
 * Parity with PyTorch: tests/fixtures/losses.safetensors is written by tools/make_loss_fixtures.py
 * (F.grid_sample + F.normalize + an explicit SupCon with (image, region) labels; MoCo InfoNCE with target 0;
 * losses and autograd gradients w.r.t. the A0 rows in float64 from f32 inputs). The GPU losses run the same
 * computation; each tensor must agree within 1e-4 relative (max-abs metric: max|a − e| ≤ 1e-4 · max|e|).
 *
 * Also: with `regions: 1` labels (label = image index, every point of an image positive to every other),
 * the GPU loss is the release's one-region SupCon, written out here the way the release computes it.
 */
import assert from "node:assert/strict";
import { readSafetensors, type StTensor, toFloat32, toInt32 } from "../../src/io/safetensors.ts";
import { buildPointContrast } from "../../src/losses/point_contrast.ts";
import { buildImageContrast } from "../../src/losses/image_contrast.ts";
import { rowsRef } from "../../src/kernels/rows.ts";
import type { RowVariant } from "../../src/kernels/rows.ts";
import { Tensor } from "../../src/gpu/tensor.ts";
import { assertClose, freshSeed, gpu, GPU_TEST, readF64, Rng, runOnce } from "../util.ts";
import { gradTol, gridSample, randomPointInputs } from "./helpers.ts";

const fixture = await readSafetensors(new URL("../fixtures/losses.safetensors", import.meta.url).pathname);
const get = (name: string): StTensor => {
  const t = fixture.tensors.get(name);
  if (!t) throw new Error(`fixture lacks ${name}: regenerate with tools/make_loss_fixtures.py`);
  return t;
};
const REL = 1e-4;

/** max|a − e| ≤ rel · max|e|, the per-tensor metric of the parity checks. */
function assertRel(actual: ArrayLike<number>, expected: ArrayLike<number>, what: string): void {
  assertClose(actual, expected, gradTol(expected, REL, 0), what);
}

for (const variant of ["thread", "workgroup"] as RowVariant[]) {
  Deno.test({
    name: `point contrast loss and d y1(A0) match PyTorch (grid_sample, SupCon with region labels) (${variant})`,
    ...GPU_TEST,
    async fn() {
      const g = await gpu();
      const [B, h, w, D, ppi] = Array.from(toInt32(get("point.dims")));
      const [temperature, scale] = Array.from(toFloat32(get("point.params")));
      const y0 = Tensor.from(g, [B * h * w, D], toFloat32(get("point.y1A0")));
      const y1 = Tensor.from(g, [B * h * w, D], toFloat32(get("point.y1A1")));
      const pc = await buildPointContrast(g, {
        y1A0: y0,
        y1A1: y1,
        batch: B,
        h,
        w,
        dim: D,
        pointsPerImage: ppi,
        temperature,
        scale,
        variant,
      });
      pc.upload({
        a0: toFloat32(get("point.a0")),
        a1: toFloat32(get("point.a1")),
        labels: toInt32(get("point.labels")),
      });
      pc.loss.fill(NaN), pc.dY1.fill(NaN);
      await runOnce(g, [...pc.forward, ...pc.backward]);
      assertRel(await readF64(pc.loss), toFloat32(get("point.loss")), `point.loss (${variant})`);
      assertRel(await readF64(pc.dY1), toFloat32(get("point.dY1")), `point.dY1 (${variant})`);
      for (const t of [y0, y1, ...pc.owned]) t.dispose();
    },
  });

  Deno.test({
    name: `image InfoNCE loss, d y1(A0) and enqueued keys match PyTorch (MoCo, target 0) (${variant})`,
    ...GPU_TEST,
    async fn() {
      const g = await gpu();
      const [B, hw, D, Q] = Array.from(toInt32(get("image.dims")));
      const [temperature] = Array.from(toFloat32(get("image.params")));
      const y0 = Tensor.from(g, [B * hw, D], toFloat32(get("image.y1A0")));
      const y1 = Tensor.from(g, [B * hw, D], toFloat32(get("image.y1A1")));
      const ic = await buildImageContrast(g, {
        y1A0: y0,
        y1A1: y1,
        batch: B,
        hw,
        dim: D,
        queueSize: Q,
        temperature,
        seed: 0,
        variant,
      });
      const queue = toFloat32(get("image.queue"));
      ic.queue.upload(queue);
      ic.setPointer(Q - 1); // wraps: rows Q−1, 0, 1, ...
      ic.loss.fill(NaN), ic.dY1.fill(NaN);
      await runOnce(g, [...ic.forward, ...ic.backward, ...ic.enqueue]);
      assertRel(await readF64(ic.loss), toFloat32(get("image.loss")), `image.loss (${variant})`);
      assertRel(await readF64(ic.dY1), toFloat32(get("image.dY1")), `image.dY1 (${variant})`);
      const keys = toFloat32(get("image.keys")), after = await readF64(ic.queue);
      const expected = Float64Array.from(queue);
      for (let i = 0; i < B; i++) expected.set(keys.subarray(i * D, (i + 1) * D), ((Q - 1 + i) % Q) * D);
      assertRel(after, expected, `queue after enqueue (${variant})`);
      for (const t of [y0, y1, ...ic.owned]) t.dispose();
    },
  });
}

/**
 * The release's SupCon (one region per image, label = image index), written as the release computes it:
 * logits minus the row max, self excluded from the denominator, positives = the other points of the image,
 * mean log-probability over positives, then over all anchors, times −τ/τ_base.
 */
function releaseSupCon(f: Float64Array, image: number[], D: number, tau: number, tauBase: number): number {
  const n = image.length;
  let total = 0;
  for (let a = 0; a < n; a++) {
    const logits = Array.from({ length: n }, (_, c) => {
      let s = 0;
      for (let d = 0; d < D; d++) s += f[a * D + d] * f[c * D + d];
      return s / tau;
    });
    const max = Math.max(...logits);
    let denom = 0;
    for (let c = 0; c < n; c++) if (c !== a) denom += Math.exp(logits[c] - max);
    let sum = 0, count = 0;
    for (let b = 0; b < n; b++) {
      if (b === a || image[b] !== image[a]) continue;
      sum += logits[b] - max - Math.log(denom);
      count++;
    }
    total += sum / count;
  }
  return (-(tau / tauBase) * total) / n;
}

Deno.test({
  name: "with regions: 1 labels the point contrast is the release's one-region SupCon (loss and gradient)",
  ...GPU_TEST,
  async fn() {
    const g = await gpu();
    const seed = freshSeed(), rng = new Rng(seed);
    const [B, h, w, D, points, tau] = [3, 3, 3, 8, 5, 0.2];
    const y0v = rng.normals(B * h * w * D), y1v = rng.normals(B * h * w * D);
    const inp = randomPointInputs(rng, B, h, w, 1, points, 0); // regions: 1 → label = image index
    assert.deepEqual([...inp.labels], Array.from({ length: B * points }, (_, p) => Math.floor(p / points)));
    const y0 = Tensor.from(g, [B * h * w, D], y0v), y1 = Tensor.from(g, [B * h * w, D], y1v);
    const pc = await buildPointContrast(g, { y1A0: y0, y1A1: y1, batch: B, h, w, dim: D, pointsPerImage: points });
    pc.upload(inp);
    pc.loss.fill(NaN), pc.dY1.fill(NaN);
    await runOnce(g, [...pc.forward, ...pc.backward]);

    const P = B * points, image = [...inp.labels, ...inp.labels];
    const direct = (y0x: ArrayLike<number>) => {
      const feats = new Float64Array(2 * P * D);
      feats.set(gridSample(y0x, inp.a0, B, h, w, D), 0);
      feats.set(gridSample(y1v, inp.a1, B, h, w, D), P * D);
      return releaseSupCon(rowsRef.l2Normalize(feats, 2 * P, D).y, image, D, tau, 0.07);
    };
    const x = Float64Array.from(y0v);
    const loss = (await readF64(pc.loss))[0], expected = direct(x);
    assert.ok(Math.abs(loss - expected) <= 1e-5 * Math.abs(expected), `loss ${loss} vs ${expected} (seed ${seed})`);
    // gradient: central differences of the direct form at 20 random elements
    const dy = await readF64(pc.dY1);
    let scaleMax = 0;
    for (const v of dy) scaleMax = Math.max(scaleMax, Math.abs(v));
    for (let t = 0; t < 20; t++) {
      const i = rng.int(x.length), xi = x[i], H = 1e-5;
      x[i] = xi + H;
      const up = direct(x);
      x[i] = xi - H;
      const down = direct(x);
      x[i] = xi;
      const fd = (up - down) / (2 * H);
      assert.ok(Math.abs(dy[i] - fd) <= 1e-4 * scaleMax + 1e-7, `d y1[${i}] ${dy[i]} vs ${fd} (seed ${seed})`);
    }
    for (const t of [y0, y1, ...pc.owned]) t.dispose();
  },
});
