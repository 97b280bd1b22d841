import assert from "node:assert/strict";
import { Rng } from "../../src/util/rng.ts";
import {
  adjustBrightness,
  adjustContrast,
  adjustHue,
  adjustSaturation,
  blurKernelSize,
  colorJitter,
  DEFAULT_PHOTOMETRIC,
  gaussianBlur,
  gaussianKernel,
  grayscale,
  nhwcToNchw,
  normalizeInto,
  photometric,
} from "../../src/data/augment.ts";

const SEED = Number(Deno.env.get("PLRC_TEST_SEED") ?? Math.floor(Math.random() * 2 ** 31));
const at = `(seed ${SEED})`;

const random = (n: number, rng: Rng) => Float32Array.from({ length: n * 3 }, () => rng.next());
const near = (a: ArrayLike<number>, b: ArrayLike<number>, tol: number, what: string) => {
  assert.equal(a.length, b.length);
  for (let k = 0; k < a.length; k++) assert.ok(Math.abs(a[k] - b[k]) <= tol, `${what}[${k}]: ${a[k]} vs ${b[k]} ${at}`);
};

Deno.test("jitter ops with neutral factors are the identity", () => {
  const x = random(500, new Rng(SEED));
  const run = (f: (p: Float32Array) => void) => {
    const y = x.slice();
    f(y);
    return y;
  };
  near(run((p) => adjustBrightness(p, 1)), x, 0, "brightness 1");
  near(run((p) => adjustContrast(p, 1)), x, 1e-7, "contrast 1");
  near(run((p) => adjustSaturation(p, 1)), x, 1e-7, "saturation 1");
  near(run((p) => adjustHue(p, 0)), x, 1e-6, "hue 0");
});

Deno.test("jitter ops: hand values (torchvision semantics)", () => {
  const px = Float32Array.from([0.2, 0.4, 0.6, 0.8, 0.8, 0.8]);
  const b = px.slice();
  adjustBrightness(b, 1.5);
  near(b, [0.3, 0.6, 0.9, 1, 1, 1], 1e-6, "brightness clamps at 1");
  // Contrast blends with the mean of the grayscale image: gray = (0.2·0.299 + 0.4·0.587 + 0.6·0.114, 0.8).
  const g0 = 0.2 * 0.299 + 0.4 * 0.587 + 0.6 * 0.114, mean = (g0 + 0.8) / 2;
  const c = px.slice();
  adjustContrast(c, 0.5);
  near(c, [...px].map((v) => 0.5 * v + 0.5 * mean), 1e-6, "contrast 0.5");
  const c0 = px.slice();
  adjustContrast(c0, 0);
  near(c0, Array(6).fill(mean), 1e-6, "contrast 0");
  // Saturation blends each pixel with its own gray value; 0 gives grayscale.
  const s = px.slice();
  adjustSaturation(s, 0);
  near(s, [g0, g0, g0, 0.8, 0.8, 0.8], 1e-6, "saturation 0");
  const s2 = px.slice();
  adjustSaturation(s2, 2);
  near(
    s2,
    [2 * 0.2 - g0, 2 * 0.4 - g0, 2 * 0.6 - g0, 0.8, 0.8, 0.8].map((v) => Math.min(1, Math.max(0, v))),
    1e-6,
    "sat 2",
  );
});

Deno.test("hue: a shift rotates the HSV hue; +h then −h restores the pixel", () => {
  const red = Float32Array.from([1, 0, 0, 0.5, 0.25, 0.25]);
  adjustHue(red, 1 / 3);
  near(red, [0, 1, 0, 0.25, 0.5, 0.25], 1e-6, "red → green");
  const cyan = Float32Array.from([1, 0, 0]);
  adjustHue(cyan, -0.5);
  near(cyan, [0, 1, 1], 1e-6, "red → cyan");
  const x = random(1000, new Rng(SEED)), y = x.slice(), h = new Rng(SEED).uniform(-0.1, 0.1);
  adjustHue(y, h);
  adjustHue(y, -h);
  near(y, x, 1e-5, "round trip");
  // Value (max channel) and saturation are unchanged by a hue shift.
  const z = x.slice();
  adjustHue(z, 0.07);
  for (let k = 0; k < x.length; k += 3) {
    const mx = Math.max(x[k], x[k + 1], x[k + 2]), mz = Math.max(z[k], z[k + 1], z[k + 2]);
    assert.ok(Math.abs(mx - mz) < 1e-6, at);
  }
});

Deno.test("grayscale: equal channels with ITU-R 601-2 weights", () => {
  const px = Float32Array.from([1, 0, 0, 0, 1, 0, 0, 0, 1, 0.5, 0.25, 0.75]);
  grayscale(px);
  const g = 0.5 * 0.299 + 0.25 * 0.587 + 0.75 * 0.114;
  near(px, [0.299, 0.299, 0.299, 0.587, 0.587, 0.587, 0.114, 0.114, 0.114, g, g, g], 1e-7, "gray");
});

Deno.test("blur: kernel size 23 at 224 and 7 at 64, constants and the mean preserved, matches direct 2-D convolution", () => {
  assert.equal(blurKernelSize(224), 23);
  assert.equal(blurKernelSize(64), 7);
  const k = gaussianKernel(7, 1.3);
  assert.ok(Math.abs(k.reduce((a, b) => a + b) - 1) < 1e-6);
  for (let t = 0; t < 3; t++) assert.equal(k[t], k[6 - t]);
  const flat = new Float32Array(20 * 12 * 3).fill(0.3);
  gaussianBlur(flat, 20, 12, k);
  near(flat, new Float32Array(flat.length).fill(0.3), 1e-6, "constant");
  // A random patch inside a zero margin wider than the kernel: nothing reaches the border, so the sum is kept.
  const rng = new Rng(SEED), W = 30, H = 24, img = new Float32Array(W * H * 3);
  for (let y = 4; y < H - 4; y++) {
    for (let x = 4; x < W - 4; x++) for (let c = 0; c < 3; c++) img[(y * W + x) * 3 + c] = rng.next();
  }
  const out = img.slice();
  gaussianBlur(out, W, H, k);
  for (let c = 0; c < 3; c++) {
    let a = 0, b = 0;
    for (let p = 0; p < W * H; p++) a += img[p * 3 + c], b += out[p * 3 + c];
    assert.ok(Math.abs(a - b) < 1e-3, `channel ${c} sum ${a} → ${b} ${at}`);
  }
  // Direct 2-D convolution with the outer-product kernel (reflect padding is not reached inside).
  for (let y = 3; y < H - 3; y++) {
    for (let x = 3; x < W - 3; x++) {
      let want = 0;
      for (let dy = -3; dy <= 3; dy++) {
        for (let dx = -3; dx <= 3; dx++) want += k[dy + 3] * k[dx + 3] * img[((y + dy) * W + x + dx) * 3 + 1];
      }
      assert.ok(Math.abs(out[(y * W + x) * 3 + 1] - want) < 1e-5, `(${x},${y}) ${at}`);
    }
  }
  // Reflect padding at the border: column −1 reads column 1.
  const edge = Float32Array.from({ length: 5 * 3 }, (_, i) => Math.floor(i / 3));
  gaussianBlur(edge, 5, 1, Float32Array.from([0.25, 0.5, 0.25]));
  near([edge[0], edge[12]], [0.5, 3.5], 1e-6, "reflect");
});

Deno.test("normalisation and NHWC → NCHW match hand values", () => {
  const out = new Float32Array(8).fill(NaN);
  normalizeInto(Float32Array.from([0.485, 0.456, 0.406, 1, 0, 0.5]), out, 2);
  near(out.slice(2), [0, 0, 0, (1 - 0.485) / 0.229, -0.456 / 0.224, (0.5 - 0.406) / 0.225], 1e-6, "normalise");
  assert.ok(Number.isNaN(out[0]) && Number.isNaN(out[1]));
  // [N=2, H=1, W=2, C=3] → [2, 3, 1, 2]
  const x = Float32Array.from([...Array(12).keys()]);
  assert.deepEqual([...nhwcToNchw(x, 2, 1, 2, 3)], [0, 3, 1, 4, 2, 5, 6, 9, 7, 10, 8, 11]);
});

Deno.test("photometric: deterministic by seed, stays in [0, 1], applies jitter about 80% of the time", () => {
  const x = random(64 * 64, new Rng(SEED));
  const a = x.slice(), b = x.slice();
  photometric(a, 64, DEFAULT_PHOTOMETRIC, new Rng(SEED + 1));
  photometric(b, 64, DEFAULT_PHOTOMETRIC, new Rng(SEED + 1));
  assert.deepEqual(a, b);
  for (const v of a) assert.ok(v >= 0 && v <= 1, at);
  // With blur and grayscale off, the fraction of changed views estimates the jitter probability.
  const cfg = { ...DEFAULT_PHOTOMETRIC, grayscaleP: 0, blurP: 0 }, rng = new Rng(SEED);
  let changed = 0;
  const small = random(16, rng);
  for (let t = 0; t < 2000; t++) {
    const y = small.slice();
    photometric(y, 4, cfg, rng);
    if (y.some((v, k) => v !== small[k])) changed++;
  }
  assert.ok(Math.abs(changed / 2000 - 0.8) < 0.04, `${changed} of 2000 jittered ${at}`);
  // colorJitter draws factors in range: brightness alone on a mid-gray pixel stays within [0.6, 1.4]·0.5.
  const only = { ...DEFAULT_PHOTOMETRIC, contrast: 0, saturation: 0, hue: 0 };
  let lo = 1, hi = 0;
  for (let t = 0; t < 2000; t++) {
    const y = Float32Array.from([0.5, 0.5, 0.5]);
    colorJitter(y, only, rng);
    lo = Math.min(lo, y[0]), hi = Math.max(hi, y[0]);
  }
  assert.ok(lo >= 0.3 - 1e-6 && lo < 0.31 && hi <= 0.7 + 1e-6 && hi > 0.69, `${lo}..${hi} ${at}`);
});
