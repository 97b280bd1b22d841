/**
 * Bilinear resampling (align_corners = false, edges clamped) against values worked out by hand, and the
 * RGB upscaling built on it.
 */
import assert from "node:assert/strict";
import { rgbImage } from "../../src/data/image.ts";
import { bilinearResize } from "../../src/data/resize.ts";
import { resizeBilinear } from "../../src/eval/datasets.ts";

Deno.test("bilinearResize: hand-worked values, channels kept apart, identity at the same size", () => {
  // 1×2 → 1×4: source x = (x + 0.5)·2/4 − 0.5 = −0.25, 0.25, 0.75, 1.25, clamped to [0, 1]
  assert.deepEqual([...bilinearResize([0, 1], 1, 2, 1, 1, 4)], [0, 0.25, 0.75, 1]);
  // two channels, the second 10× the first: resampled independently
  assert.deepEqual([...bilinearResize([0, 0, 1, 10], 1, 2, 2, 1, 4)], [0, 0, 0.25, 2.5, 0.75, 7.5, 1, 10]);
  // 2×1 → 4×1 is the same along y
  assert.deepEqual([...bilinearResize([0, 1], 2, 1, 1, 4, 1)], [0, 0.25, 0.75, 1]);
  const f = Float64Array.from({ length: 3 * 5 * 2 }, (_, i) => Math.sin(i));
  assert.deepEqual(bilinearResize(f, 3, 5, 2, 3, 5), f);
});

Deno.test("resizeBilinear rounds the resampled RGB values", () => {
  const img = rgbImage(2, 1);
  img.data.set([0, 100, 200, 255, 101, 0]);
  const up = resizeBilinear(img, 4, 1);
  // per channel: a, a + (b − a)/4, a + 3(b − a)/4, b
  assert.deepEqual([...up.data], [0, 100, 200, 64, 100, 150, 191, 101, 50, 255, 101, 0]);
});
