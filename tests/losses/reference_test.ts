/**
 * The float64 loss references' gradients against central finite differences of their own losses (d y1(A0)
 * for every element), on fresh random data with invalid points and points past the border.
 */
import assert from "node:assert/strict";
import { pointContrastRef } from "../../src/losses/point_contrast.ts";
import { imageContrastRef } from "../../src/losses/image_contrast.ts";
import { fdError, freshSeed, Rng } from "../util.ts";
import { randomPointInputs } from "./helpers.ts";

for (const [B, h, w, D, regions, points] of [[1, 2, 2, 3, 2, 2], [2, 3, 4, 5, 2, 3], [3, 2, 3, 4, 3, 2]]) {
  Deno.test(`finite differences agree with the point contrast reference [B ${B}, ${h}×${w}, D ${D}]`, () => {
    const seed = freshSeed(), rng = new Rng(seed);
    const y0 = Float64Array.from(rng.normals(B * h * w * D)), y1 = Float64Array.from(rng.normals(B * h * w * D));
    const inp = randomPointInputs(rng, B, h, w, regions, points, 0.3);
    const args = { y1A1: y1, batch: B, h, w, dim: D, ...inp };
    const ref = pointContrastRef({ y1A0: y0, ...args });
    const err = fdError((x) => pointContrastRef({ y1A0: x, ...args }).loss, y0, ref.dY1);
    assert.ok(err < 1e-6, `relative error ${err} (seed ${seed}, ${ref.anchors} anchors)`);
    // custom temperature and scale
    const t = { temperature: 0.5, scale: 1.7 };
    const ref2 = pointContrastRef({ y1A0: y0, ...args, ...t });
    const err2 = fdError((x) => pointContrastRef({ y1A0: x, ...args, ...t }).loss, y0, ref2.dY1);
    assert.ok(err2 < 1e-6, `relative error ${err2} with τ 0.5, scale 1.7 (seed ${seed})`);
  });
}

for (const [B, hw, D, Q] of [[1, 1, 3, 2], [3, 4, 5, 7]]) {
  Deno.test(`finite differences agree with the image InfoNCE reference [B ${B}, hw ${hw}, D ${D}, Q ${Q}]`, () => {
    const seed = freshSeed(), rng = new Rng(seed);
    const y0 = Float64Array.from(rng.normals(B * hw * D)), y1 = Float64Array.from(rng.normals(B * hw * D));
    const queue = Float64Array.from(rng.normals(Q * D, 0.5));
    const args = { y1A1: y1, queue, batch: B, hw, dim: D, temperature: 0.3 };
    const ref = imageContrastRef({ y1A0: y0, ...args });
    const err = fdError((x) => imageContrastRef({ y1A0: x, ...args }).loss, y0, ref.dY1);
    assert.ok(err < 1e-6, `relative error ${err} (seed ${seed})`);
  });
}
