/** The pictures decode as PNGs of the expected size and show what they claim (mask tint, points, curves). */
import assert from "node:assert/strict";
import { makeBatch } from "../../src/data/batch.ts";
import { decodePng } from "../../src/data/png.ts";
import { dataConfigOf, resolveConfig } from "../../src/train/config/mod.ts";
import { scenesSource } from "../../src/data/sources.ts";
import { labelColor } from "../../src/viz/draw.ts";
import { renderCurves, renderSample } from "../../src/viz/pictures.ts";

Deno.test("sample picture: three views side by side, A0 tinted by its mask, region points in slot colours", async () => {
  const cfg = resolveConfig({ sets: ["data.resolution=64"] });
  const data = dataConfigOf(cfg);
  const src = scenesSource({ count: 4, size: 96, classes: 6, seed: 2 });
  const b = makeBatch([{ ...(await src.get(1)), key: 1 }], data);
  const k = 3, R = 64;
  const cv = renderSample(b, 0, { mean: data.mean, std: data.std, scale: k, pairs: 0 });
  const png = decodePng(cv.png());
  assert.equal(png.width, 3 * R * k + 16);
  assert.equal(png.height, R * k);
  // the first valid point of slot 0 is drawn in its region's colour at its position in A0
  const S = b.maskSize, cell = (R * k) / S;
  const q = Array.from(b.pointValid).findIndex((v) => v > 0);
  assert.ok(q >= 0);
  const col = labelColor(b.regionLabel[Math.floor(q / b.points)]);
  const x = Math.round(b.pointsA0[2 * q] * cell), y = Math.round(b.pointsA0[2 * q + 1] * cell);
  const i = 3 * (y * png.width + x);
  // a later point may overdraw this one; its colour then is another slot's, so accept any slot colour
  const slotColours = Array.from(b.regionLabel).map((l) => labelColor(l).join());
  const got = [png.samples[i], png.samples[i + 1], png.samples[i + 2]].join();
  assert.ok(got === col.join() || slotColours.includes(got), `pixel ${got} at a point`);
});

Deno.test("curves picture: each series is drawn in its colour", () => {
  const records = Array.from({ length: 50 }, (_, s) => ({ step: s, loss: 10 - s / 10, loss_image: Math.sin(s) }));
  const png = decodePng(renderCurves(records, ["loss", "loss_image"], 200, 100).png());
  assert.equal(png.width, 200);
  const has = (rgb: number[]) => {
    for (let i = 0; i < png.samples.length; i += 3) {
      if (png.samples[i] === rgb[0] && png.samples[i + 1] === rgb[1] && png.samples[i + 2] === rgb[2]) return true;
    }
    return false;
  };
  assert.ok(has(labelColor(1)) && has(labelColor(2)));
  assert.ok(!has(labelColor(3)), "no third series");
});
