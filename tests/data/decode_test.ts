/** Decoding: PNG variants against PIL-made fixtures and hand-crafted files, JPEG, EXIF orientation, bad files, the pixel guard. */
import assert from "node:assert/strict";
import { Image } from "imagescript";
import { DecodeError, decodeImage, orient, probeImage } from "../../src/data/decode.ts";
import { decodePng, encodePng, pngToRgb } from "../../src/data/png.ts";
import { Rng } from "../../src/util/rng.ts";
import { bombPngHeader, craftPng, insertExifOrientation, jpegOf, testPicture } from "./helpers.ts";

const b64 = (s: string) => Uint8Array.from(atob(s), (c) => c.charCodeAt(0));

// Written by PIL 9.4 (tools: Image.fromarray(...).save(..., "PNG")); rgb = np.asarray(im.convert("RGB")).
const PIL: Record<string, { b64: string; rgb: number[] }> = {
  gray8: {
    b64:
      "iVBORw0KGgoAAAANSUhEUgAAAAUAAAAECAAAAABjWKqcAAAAIUlEQVR4nGPo9nr6cSXLtqO7v15lebqSV1CK4WnST64pAJzbDAFfVOvOAAAAAElFTkSuQmCC",
    rgb: [
      139,
      139,
      139,
      74,
      74,
      74,
      229,
      229,
      229,
      241,
      241,
      241,
      169,
      169,
      169,
      65,
      65,
      65,
      6,
      6,
      6,
      160,
      160,
      160,
      149,
      149,
      149,
      106,
      106,
      106,
      38,
      38,
      38,
      175,
      175,
      175,
      188,
      188,
      188,
      205,
      205,
      205,
      175,
      175,
      175,
      229,
      229,
      229,
      98,
      98,
      98,
      249,
      249,
      249,
      10,
      10,
      10,
      148,
      148,
      148,
    ],
  },
  rgba8: {
    b64:
      "iVBORw0KGgoAAAANSUhEUgAAAAYAAAAECAYAAACtBE5DAAAAb0lEQVR4nAFkAJv/AF9Wk8ZCJ2rVqy2nOUVRNw6ZstdMNCf6SADXMqHfcKyh6SYRWQHdBvJ/jwY80l4ZpiEB+b0MzCh8cFKmXE5ZgUc5WjKskHwLyuAKAKLmRkfwPi+4HyI/QZLFjv1RhfBxHvdnemrSK+YR45k/AAAAAElFTkSuQmCC",
    rgb: [
      95,
      86,
      147,
      66,
      39,
      106,
      171,
      45,
      167,
      69,
      81,
      55,
      153,
      178,
      215,
      52,
      39,
      250,
      215,
      50,
      161,
      112,
      172,
      161,
      38,
      17,
      89,
      221,
      6,
      242,
      143,
      6,
      60,
      94,
      25,
      166,
      249,
      189,
      12,
      33,
      57,
      124,
      199,
      149,
      202,
      72,
      220,
      3,
      122,
      136,
      147,
      133,
      82,
      115,
      162,
      230,
      70,
      240,
      62,
      47,
      31,
      34,
      63,
      146,
      197,
      142,
      81,
      133,
      240,
      30,
      247,
      103,
    ],
  },
  pal4: {
    b64:
      "iVBORw0KGgoAAAANSUhEUgAAAAcAAAAFBAMAAAB7tOvrAAAAMFBMVEVueU1XA34s/enhWneJeB43IaVX2OWnAylty4HbP2XPnBvcXR0AAAAAAAAAAAAAAAAF+sViAAAAIUlEQVR4nGMQEEsTYEhvCwxgSJbawsAwU2tnA4Nys3ABAEmwBoEbRh/UAAAAAElFTkSuQmCC",
    rgb: [
      87,
      3,
      126,
      110,
      121,
      77,
      87,
      3,
      126,
      87,
      216,
      229,
      87,
      216,
      229,
      87,
      216,
      229,
      87,
      3,
      126,
      87,
      216,
      229,
      167,
      3,
      41,
      109,
      203,
      129,
      87,
      216,
      229,
      55,
      33,
      165,
      87,
      3,
      126,
      55,
      33,
      165,
      87,
      216,
      229,
      225,
      90,
      119,
      87,
      3,
      126,
      207,
      156,
      27,
      220,
      93,
      29,
      137,
      120,
      30,
      110,
      121,
      77,
      219,
      63,
      101,
      219,
      63,
      101,
      44,
      253,
      233,
      207,
      156,
      27,
      220,
      93,
      29,
      219,
      63,
      101,
      109,
      203,
      129,
      44,
      253,
      233,
      225,
      90,
      119,
      109,
      203,
      129,
      225,
      90,
      119,
      87,
      3,
      126,
      225,
      90,
      119,
      167,
      3,
      41,
    ],
  },
  rgb8: {
    b64:
      "iVBORw0KGgoAAAANSUhEUgAAAAsAAAAJCAIAAABrBkF6AAAAqUlEQVR42gXBgYDAUAxEwXfX4wjJIpTgI5RgEUJQhBIEYUlCcjMXgjPyeWuLYt/lG8+nVc7r/FijhCE3oWUjEtLISfMnOgOtGAk63QwwuYM0P9hIIoa+yYjcZEZJR8qFMlWBdLxf7cn5pI+lxan6BYU42AaJ29hB8SgAM8YAI5A04xFiEIPH1zmuLWPYcr57U5oCq1qNrrO7W0+e3TrnrQ85z1Lfto+e/APYy3INtFRF4QAAAABJRU5ErkJggg==",
    rgb: [
      0,
      60,
      0,
      0,
      120,
      180,
      60,
      180,
      180,
      180,
      120,
      60,
      120,
      60,
      60,
      60,
      0,
      180,
      0,
      0,
      0,
      180,
      120,
      180,
      0,
      120,
      60,
      60,
      0,
      120,
      180,
      120,
      0,
      120,
      60,
      180,
      180,
      0,
      120,
      180,
      180,
      120,
      120,
      0,
      120,
      60,
      0,
      0,
      120,
      120,
      120,
      120,
      180,
      120,
      60,
      120,
      120,
      0,
      0,
      120,
      60,
      120,
      60,
      0,
      0,
      60,
      180,
      60,
      60,
      120,
      180,
      60,
      120,
      60,
      120,
      60,
      120,
      120,
      120,
      180,
      0,
      120,
      60,
      60,
      0,
      0,
      60,
      180,
      0,
      60,
      180,
      180,
      0,
      0,
      120,
      0,
      60,
      60,
      180,
      0,
      120,
      120,
      0,
      180,
      180,
      60,
      180,
      120,
      180,
      180,
      120,
      60,
      0,
      120,
      0,
      180,
      180,
      0,
      120,
      0,
      0,
      60,
      180,
      180,
      120,
      120,
      120,
      0,
      60,
      180,
      60,
      0,
      0,
      120,
      0,
      180,
      180,
      120,
      60,
      180,
      120,
      60,
      60,
      60,
      180,
      0,
      0,
      120,
      60,
      180,
      0,
      180,
      0,
      60,
      180,
      0,
      120,
      120,
      60,
      0,
      120,
      60,
      180,
      120,
      60,
      0,
      120,
      60,
      120,
      180,
      60,
      180,
      120,
      120,
      180,
      180,
      180,
      180,
      0,
      60,
      180,
      60,
      0,
      120,
      180,
      120,
      180,
      120,
      0,
      180,
      60,
      180,
      180,
      180,
      0,
      180,
      120,
      60,
      180,
      180,
      120,
      0,
      120,
      0,
      0,
      0,
      0,
      180,
      60,
      0,
      0,
      60,
      60,
      60,
      180,
      180,
      120,
      180,
      60,
      0,
      60,
      0,
      180,
      0,
      60,
      0,
      180,
      0,
      120,
      180,
      120,
      180,
      180,
      180,
      120,
      120,
      120,
      180,
      60,
      180,
      180,
      60,
      60,
      120,
      180,
      0,
      0,
      0,
      60,
      0,
      120,
      120,
      180,
      120,
      60,
      180,
      180,
      120,
      120,
      60,
      120,
      0,
      120,
      180,
      180,
      60,
      60,
      120,
      60,
      120,
      0,
      0,
      0,
      60,
      0,
      60,
      180,
      180,
      180,
      120,
      0,
      120,
      120,
      180,
      60,
      0,
      120,
      60,
      120,
      60,
      60,
      0,
      180,
      180,
      60,
      0,
      120,
    ],
  },
};
// PIL I;16 PNG (4×3, 16-bit grey) and its uint16 values.
const PIL16 = {
  b64:
    "iVBORw0KGgoAAAANSUhEUgAAAAQAAAADEAAAAADBDy1ZAAAAJElEQVR4nGNYpZrZpPd00TyG153isgkK+sJMtQuXcnNGPzgMAI4MCk8GuwfmAAAAAElFTkSuQmCC",
  values: [43557, 27010, 12005, 41630, 60297, 5917, 24608, 12051, 26666, 48168, 27003, 4054],
};

Deno.test("PNGs written by PIL decode to PIL's RGB (grey, RGBA, 4-bit palette, optimised RGB)", async () => {
  for (const [name, f] of Object.entries(PIL)) {
    const img = await decodeImage(b64(f.b64));
    assert.deepEqual(Array.from(img.data), f.rgb, name);
  }
  assert.equal(decodePng(b64(PIL.pal4.b64)).depth, 4);
});

Deno.test("a 16-bit PIL PNG decodes to its exact samples and to their high bytes as RGB", async () => {
  const raw = decodePng(b64(PIL16.b64));
  assert.equal(raw.depth, 16);
  assert.deepEqual(Array.from(raw.samples), PIL16.values);
  const img = await decodeImage(b64(PIL16.b64));
  assert.deepEqual([img.width, img.height], [4, 3]);
  assert.deepEqual(Array.from(img.data), PIL16.values.flatMap((v) => [v >> 8, v >> 8, v >> 8]));
});

Deno.test("every colour type × bit depth, plain and Adam7-interlaced, all five filters: exact samples", () => {
  const rng = new Rng(11);
  const combos: [number, number[]][] = [[0, [1, 2, 4, 8, 16]], [2, [8, 16]], [3, [1, 2, 4, 8]], [4, [8, 16]], [6, [
    8,
    16,
  ]]];
  const ch: Record<number, number> = { 0: 1, 2: 3, 3: 1, 4: 2, 6: 4 };
  let cases = 0;
  for (const [ct, depths] of combos) {
    for (const depth of depths) {
      for (const interlace of [false, true]) {
        const width = 13, height = 11, max = ct === 3 ? Math.min(1 << depth, 40) : 2 ** depth;
        const samples = Array.from({ length: width * height * ch[ct] }, () => rng.int(max));
        const palette = ct === 3 ? Array.from({ length: 40 * 3 }, (_, i) => (i * 37) % 256) : undefined;
        const raw = decodePng(craftPng({ width, height, depth, colorType: ct, interlace, samples, palette }));
        const what = `colour type ${ct}, depth ${depth}, interlace ${interlace}`;
        assert.deepEqual([raw.width, raw.height, raw.channels], [width, height, ch[ct]], what);
        assert.deepEqual(Array.from(raw.samples), samples, what);
        const rgb = pngToRgb(raw), k = 5 * ch[ct], s = samples[k];
        const expect = ct === 3
          ? palette!.slice(s * 3, s * 3 + 3)
          : ct === 0 || ct === 4
          ? Array(3).fill(depth === 16 ? s >> 8 : Math.round((s * 255) / (2 ** depth - 1)))
          : samples.slice(k, k + 3).map((v) => (depth === 16 ? v >> 8 : v));
        assert.deepEqual(Array.from(rgb.subarray(15, 18)), expect, what);
        cases++;
      }
    }
  }
  assert.equal(cases, 30);
});

Deno.test("encodePng round-trips 8/16-bit grey and RGB with text chunks", () => {
  const rng = new Rng(3);
  for (const [channels, depth] of [[1, 8], [1, 16], [3, 8]] as const) {
    const n = 9 * 7 * channels;
    const samples = depth === 16
      ? Uint16Array.from({ length: n }, () => rng.int(65536))
      : Uint8Array.from({ length: n }, () => rng.int(256));
    const bytes = encodePng({ width: 9, height: 7, channels, depth, samples, text: { plrc: '{"a":1}' } });
    const raw = decodePng(bytes);
    assert.deepEqual(Array.from(raw.samples), Array.from(samples));
    assert.deepEqual(raw.text, { plrc: '{"a":1}' });
  }
});

Deno.test("damaged PNGs are refused with a reason: CRC, truncation, bad filter, missing IEND", async () => {
  const good = craftPng({ width: 8, height: 8, depth: 8, colorType: 0, samples: Array(64).fill(9) });
  const flipped = good.slice();
  flipped[40] ^= 0xff; // inside the first IDAT
  await assert.rejects(decodeImage(flipped), /CRC mismatch/);
  await assert.rejects(decodeImage(good.subarray(0, good.length - 20)), /truncated PNG/);
  await assert.rejects(decodeImage(good.subarray(0, good.length - 12)), /no IEND/);
  await assert.rejects(decodeImage(good.subarray(0, 20)), /truncated PNG header/);
});

Deno.test("JPEG decodes to imagescript's pixels, close to the source", async () => {
  const src = testPicture(40, 24), jpg = await jpegOf(src);
  const img = await decodeImage(jpg);
  assert.deepEqual([img.width, img.height], [40, 24]);
  const ref = await Image.decode(jpg);
  for (let i = 0; i < 40 * 24; i++) {
    for (let c = 0; c < 3; c++) assert.equal(img.data[i * 3 + c], ref.bitmap[i * 4 + c]);
  }
  let err = 0;
  for (let i = 0; i < src.data.length; i++) err += Math.abs(img.data[i] - src.data[i]);
  assert.ok(err / src.data.length < 6, `mean abs error ${err / src.data.length}`);
});

Deno.test("EXIF orientation 6 rotates a JPEG 90° clockwise (red corner moves top-left → top-right)", async () => {
  const jpg = insertExifOrientation(await jpegOf(testPicture(40, 24)), 6);
  const info = probeImage(jpg);
  assert.deepEqual([info.width, info.height, info.orientation], [40, 24, 6]);
  const img = await decodeImage(jpg);
  assert.deepEqual([img.width, img.height], [24, 40]);
  const px = (x: number, y: number) => Array.from(img.data.subarray((y * 24 + x) * 3, (y * 24 + x) * 3 + 3));
  assert.ok(px(21, 3)[0] > 180 && px(21, 3)[1] < 70, `top-right ${px(21, 3)}`);
  assert.ok(px(2, 3)[0] < 70, `top-left ${px(2, 3)}`);
  const upright = await decodeImage(jpg, { orient: false });
  assert.deepEqual([upright.width, upright.height], [40, 24]);
});

Deno.test("orient() matches PIL exif_transpose for all 8 orientations on a 3×2 image", () => {
  // pixel value = its index; expected values are PIL 9.4's Image.transpose with exif_transpose's table
  const img = { width: 3, height: 2, data: Uint8Array.from([0, 1, 2, 3, 4, 5].flatMap((v) => [v, v, v])) };
  const want: Record<number, [number, number, number[]]> = {
    1: [3, 2, [0, 1, 2, 3, 4, 5]],
    2: [3, 2, [2, 1, 0, 5, 4, 3]],
    3: [3, 2, [5, 4, 3, 2, 1, 0]],
    4: [3, 2, [3, 4, 5, 0, 1, 2]],
    5: [2, 3, [0, 3, 1, 4, 2, 5]],
    6: [2, 3, [3, 0, 4, 1, 5, 2]],
    7: [2, 3, [5, 2, 4, 1, 3, 0]],
    8: [2, 3, [2, 5, 1, 4, 0, 3]],
  };
  for (const [o, [w, h, v]] of Object.entries(want)) {
    const r = orient(img, Number(o));
    assert.deepEqual(
      [r.width, r.height, Array.from(r.data).filter((_, i) => i % 3 === 0)],
      [w, h, v],
      `orientation ${o}`,
    );
  }
});

Deno.test("bad files give DecodeErrors with reasons: truncated JPEG, text, empty, garbage after SOI", async () => {
  const jpg = await jpegOf(testPicture(32, 32));
  for (const cut of [0.3, 0.6, 0.95]) {
    await assert.rejects(decodeImage(jpg.subarray(0, Math.floor(jpg.length * cut))), /truncated JPEG/);
  }
  await assert.rejects(decodeImage(new TextEncoder().encode("hello, I am text")), /not a JPEG or PNG/);
  await assert.rejects(decodeImage(new Uint8Array(0)), /empty file/);
  await assert.rejects(decodeImage(new Uint8Array([0xff, 0xd8, 0xff, 0xe0, 0, 4, 1, 2, 7, 7])), DecodeError);
});

Deno.test("the pixel guard refuses bombs from the header alone (PNG IHDR, JPEG SOF0)", async () => {
  await assert.rejects(decodeImage(bombPngHeader(100_000, 100_000)), /100000×100000 = 10000000000 pixels exceeds/);
  // a SOF0 claiming 60000×60000 followed by nothing: refused before any truncation check
  const sof = [0xff, 0xd8, 0xff, 0xc0, 0, 11, 8, 0xea, 0x60, 0xea, 0x60, 1, 1, 0x11, 0];
  await assert.rejects(decodeImage(new Uint8Array(sof)), /60000×60000 = 3600000000 pixels exceeds the limit/);
  // a small but real image under a tight limit
  const jpg = await jpegOf(testPicture(32, 32));
  await assert.rejects(decodeImage(jpg, { maxPixels: 1000 }), /32×32 = 1024 pixels exceeds the limit of 1000/);
  assert.equal((await decodeImage(jpg, { maxPixels: 1024 })).width, 32);
});
