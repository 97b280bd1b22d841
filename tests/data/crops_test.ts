import assert from "node:assert/strict";
import { Rng } from "../../src/util/rng.ts";
import { rgbImage } from "../../src/data/image.ts";
import {
  boxFromCoords,
  type CropBox,
  cropCoords,
  overlapRatio,
  randomResizedCrop,
  resizedCrop,
  roundHalfEven,
  sampleCropPair,
} from "../../src/data/crops.ts";

// A fresh seed per run unless PLRC_TEST_SEED is set; every message names it.
const SEED = Number(Deno.env.get("PLRC_TEST_SEED") ?? Math.floor(Math.random() * 2 ** 31));
const at = `(seed ${SEED})`;

Deno.test("roundHalfEven is Python's round", () => {
  assert.deepEqual([2.5, 3.5, -2.5, 0.5, 1.4, 1.6, 7].map(roundHalfEven), [2, 4, -2, 0, 1, 2, 7]);
});

Deno.test("RandomResizedCrop: box inside the image, scale and ratio within bounds over many draws", () => {
  const rng = new Rng(SEED);
  let minFrac = 1, maxFrac = 0, minLogR = 1, maxLogR = -1;
  for (let t = 0; t < 20000; t++) {
    // Aspect ratios in [0.5, 2] keep even the centre-crop fallback within the scale range.
    const H = 20 + rng.int(500), W = Math.max(1, Math.round(H * Math.exp(rng.uniform(Math.log(0.5), Math.log(2)))));
    const b = randomResizedCrop(W, H, rng);
    assert.ok(
      b.w >= 1 && b.h >= 1 && b.i >= 0 && b.j >= 0 && b.i + b.h <= H && b.j + b.w <= W,
      `${JSON.stringify(b)} ${W}x${H} ${at}`,
    );
    // w and h are rounded to integers, so allow half a pixel either way.
    assert.ok((b.w + 0.5) * (b.h + 0.5) >= 0.2 * W * H, `area too small ${JSON.stringify(b)} ${W}x${H} ${at}`);
    assert.ok((b.w + 0.5) / Math.max(b.h - 0.5, 0.5) >= 3 / 4, `ratio too small ${JSON.stringify(b)} ${at}`);
    assert.ok((b.w - 0.5) / (b.h + 0.5) <= 4 / 3, `ratio too large ${JSON.stringify(b)} ${at}`);
    if (H >= 100 && W >= 100) {
      const frac = (b.w * b.h) / (W * H), lr = Math.log(b.w / b.h);
      minFrac = Math.min(minFrac, frac), maxFrac = Math.max(maxFrac, frac);
      minLogR = Math.min(minLogR, lr), maxLogR = Math.max(maxLogR, lr);
    }
  }
  // The draws really cover the ranges (not, say, always the fallback).
  assert.ok(minFrac < 0.21 && maxFrac > 0.95, `area fractions ${minFrac}..${maxFrac} ${at}`);
  assert.ok(
    minLogR < Math.log(3 / 4) + 0.02 && maxLogR > Math.log(4 / 3) - 0.02,
    `log ratios ${minLogR}..${maxLogR} ${at}`,
  );
});

Deno.test("RandomResizedCrop: centre-crop fallback clamps the ratio (torchvision)", () => {
  // No crop of ≥ 20% of a 1000×10 image fits with ratio ≤ 4/3, so all 10 attempts fail.
  assert.deepEqual(randomResizedCrop(1000, 10, new Rng(SEED)), { i: 0, j: 493, h: 10, w: 13 });
  assert.deepEqual(randomResizedCrop(10, 1000, new Rng(SEED)), { i: 493, j: 0, h: 13, w: 10 });
});

Deno.test("overlapRatio equals pixel counting", () => {
  const rng = new Rng(SEED);
  for (let t = 0; t < 300; t++) {
    const box = (): CropBox => {
      const w = 1 + rng.int(12), h = 1 + rng.int(12);
      return { i: rng.int(20 - h), j: rng.int(20 - w), h, w };
    };
    const a = box(), b = box();
    let inter = 0;
    for (let y = 0; y < 20; y++) {
      for (let x = 0; x < 20; x++) {
        const inA = x >= a.j && x < a.j + a.w && y >= a.i && y < a.i + a.h;
        const inB = x >= b.j && x < b.j + b.w && y >= b.i && y < b.i + b.h;
        if (inA && inB) inter++;
      }
    }
    assert.equal(overlapRatio(a, b), inter / Math.max(a.w * a.h, b.w * b.h), at);
  }
});

Deno.test("crop pairs: every accepted pair overlaps ≥ 0.5 and is the first such draw; else the 100th", () => {
  const rng = new Rng(SEED);
  let fallbacks = 0;
  for (let t = 0; t < 2000; t++) {
    const W = 50 + rng.int(600), H = 50 + rng.int(600);
    const seed = rng.int(2 ** 31);
    const p = sampleCropPair(W, H, new Rng(seed));
    // Replay the draws: the returned pair is the first to meet the rule, or the 100th.
    const replay = new Rng(seed);
    let first = -1, last: [CropBox, CropBox] | null = null;
    for (let k = 1; k <= 100; k++) {
      last = [randomResizedCrop(W, H, replay), randomResizedCrop(W, H, replay)];
      if (overlapRatio(last[0], last[1]) >= 0.5) {
        first = k;
        break;
      }
    }
    if (p.accepted) {
      assert.ok(overlapRatio(p.a, p.b) >= 0.5, at);
      assert.equal(p.tries, first, at);
    } else {
      fallbacks++;
      assert.equal(first, -1, at);
      assert.equal(p.tries, 100, at);
    }
    assert.deepEqual([p.a, p.b], last, at);
  }
  assert.ok(fallbacks < 20, `${fallbacks} fallbacks in 2000 ${at}`);
  const never = sampleCropPair(300, 200, new Rng(SEED), undefined, 1.01);
  assert.equal(never.tries, 100);
  assert.equal(never.accepted, false);
});

Deno.test("crop coords: normalised by (W−1, H−1), flip swaps x0/x1, boxFromCoords inverts", () => {
  assert.deepEqual(cropCoords({ i: 10, j: 20, h: 31, w: 41 }, 101, 51, false), [0.2, 0.2, 0.6, 0.8]);
  assert.deepEqual(cropCoords({ i: 10, j: 20, h: 31, w: 41 }, 101, 51, true), [0.6, 0.2, 0.2, 0.8]);
  const rng = new Rng(SEED);
  for (let t = 0; t < 2000; t++) {
    const W = 2 + rng.int(900), H = 2 + rng.int(900), flipped = rng.next() < 0.5;
    const box = randomResizedCrop(W, H, rng);
    const c = Float32Array.from(cropCoords(box, W, H, flipped)); // the batch stores float32
    if (box.w > 1) assert.equal(c[0] > c[2], flipped, at);
    assert.deepEqual(boxFromCoords(c, W, H), { box, flipped: box.w > 1 && flipped }, at);
  }
});

/** An image whose pixel (x, y) has RGB (x, y, x + y) mod 256. */
function ramp(W: number, H: number) {
  const img = rgbImage(W, H);
  for (let y = 0; y < H; y++) {
    for (let x = 0; x < W; x++) img.data.set([x % 256, y % 256, (x + y) % 256], (y * W + x) * 3);
  }
  return img;
}

Deno.test("resizedCrop: identity at scale 1, flip reverses columns, constants stay constant", () => {
  const img = ramp(9, 7);
  const sq = resizedCrop(img, { i: 0, j: 1, h: 7, w: 7 }, 7, false);
  const sqf = resizedCrop(img, { i: 0, j: 1, h: 7, w: 7 }, 7, true);
  for (let y = 0; y < 7; y++) {
    for (let x = 0; x < 7; x++) {
      for (let c = 0; c < 3; c++) {
        const want = img.data[(y * 9 + x + 1) * 3 + c] / 255;
        assert.ok(Math.abs(sq[(y * 7 + x) * 3 + c] - want) < 1e-6);
        assert.ok(Math.abs(sqf[(y * 7 + 6 - x) * 3 + c] - want) < 1e-6);
      }
    }
  }
  const flat = rgbImage(40, 30);
  flat.data.fill(77);
  for (const v of resizedCrop(flat, { i: 3, j: 5, h: 21, w: 33 }, 16, true)) assert.ok(Math.abs(v - 77 / 255) < 1e-6);
});

Deno.test("resizedCrop: 2× downscale uses PIL's antialiased triangle taps (1, 3, 3, 1)/8", () => {
  const W = 16, img = rgbImage(W, 16);
  const rng = new Rng(SEED);
  for (let k = 0; k < img.data.length; k++) img.data[k] = rng.int(256);
  const out = resizedCrop(img, { i: 0, j: 0, h: 16, w: 16 }, 8, false);
  const w = [1, 3, 3, 1].map((v) => v / 8);
  const px = (x: number, y: number, c: number) => img.data[(y * W + x) * 3 + c] / 255;
  for (let oy = 1; oy < 7; oy++) {
    for (let ox = 1; ox < 7; ox++) {
      for (let c = 0; c < 3; c++) {
        let want = 0;
        for (let a = 0; a < 4; a++) {
          for (let b = 0; b < 4; b++) want += w[a] * w[b] * px(2 * ox - 1 + b, 2 * oy - 1 + a, c);
        }
        assert.ok(Math.abs(out[(oy * 8 + ox) * 3 + c] - want) < 1e-5, `(${ox},${oy},${c}) ${at}`);
      }
    }
  }
  // At the border the taps are cut to the crop and renormalised: (3, 3, 1)/7.
  const e = [3, 3, 1].map((v) => v / 7);
  let want = 0;
  for (let a = 0; a < 3; a++) for (let b = 0; b < 3; b++) want += e[a] * e[b] * px(b, a, 0);
  assert.ok(Math.abs(out[0] - want) < 1e-5, `corner ${out[0]} vs ${want} ${at}`);
});

Deno.test("resizedCrop: upscaling interpolates a linear ramp exactly away from the borders", () => {
  const img = ramp(50, 50);
  const box = { i: 10, j: 12, h: 20, w: 20 };
  const out = resizedCrop(img, box, 60, false);
  for (let ox = 2; ox < 58; ox++) {
    // Output centre (ox + 0.5) maps to source centre coordinate j + (ox + 0.5)·w/60 − 0.5.
    const want = (box.j + (ox + 0.5) * 20 / 60 - 0.5) / 255;
    assert.ok(Math.abs(out[(30 * 60 + ox) * 3] - want) < 1e-5, `${ox}: ${out[(30 * 60 + ox) * 3] * 255}`);
  }
});
