/**
 * Test helpers for the data pipeline: an independent PNG writer (every filter type, Adam7, any depth; CRCs
 * from node:zlib, not from the code under test), JPEGs from imagescript, an EXIF orientation inserter, and
 * a folder of good and bad files.
 *
 * @module
 */
import { crc32, deflateSync } from "node:zlib";
import { Image } from "imagescript";
import type { RgbImage } from "../../src/data/image.ts";

const CH: Record<number, number> = { 0: 1, 2: 3, 3: 1, 4: 2, 6: 4 };
const PASSES = [[0, 0, 8, 8], [4, 0, 8, 8], [0, 4, 4, 8], [2, 0, 4, 4], [0, 2, 2, 4], [1, 0, 2, 2], [0, 1, 1, 2]];

function pngChunk(type: string, data: Uint8Array): Uint8Array {
  const out = new Uint8Array(12 + data.length), v = new DataView(out.buffer);
  v.setUint32(0, data.length);
  out.set(new TextEncoder().encode(type), 4);
  out.set(data, 8);
  v.setUint32(8 + data.length, crc32(out.subarray(4, 8 + data.length)) >>> 0);
  return out;
}

function concat(parts: Uint8Array[]): Uint8Array {
  const out = new Uint8Array(parts.reduce((s, p) => s + p.length, 0));
  let o = 0;
  for (const p of parts) out.set(p, o), o += p.length;
  return out;
}

/** Applies PNG filter `f` to one packed row given the previous (unfiltered) row. */
function filterRow(f: number, row: Uint8Array, prev: Uint8Array | null, bpp: number): Uint8Array {
  const out = new Uint8Array(row.length + 1);
  out[0] = f;
  for (let i = 0; i < row.length; i++) {
    const a = i >= bpp ? row[i - bpp] : 0, b = prev ? prev[i] : 0, c = prev && i >= bpp ? prev[i - bpp] : 0;
    let pred = 0;
    if (f === 1) pred = a;
    else if (f === 2) pred = b;
    else if (f === 3) pred = Math.floor((a + b) / 2);
    else if (f === 4) {
      const p = a + b - c, pa = Math.abs(p - a), pb = Math.abs(p - b), pc = Math.abs(p - c);
      pred = pa <= pb && pa <= pc ? a : pb <= pc ? b : c;
    }
    out[i + 1] = (row[i] - pred + 256) % 256;
  }
  return out;
}

/** Writes a PNG from unpacked samples; row r of each pass uses filter (r + pass) mod 5. */
export function craftPng(opts: {
  width: number;
  height: number;
  depth: number;
  colorType: number;
  interlace?: boolean;
  samples: ArrayLike<number>;
  palette?: number[];
  extra?: Uint8Array[];
}): Uint8Array {
  const { width, height, depth, colorType } = opts, ch = CH[colorType], bits = ch * depth;
  const bpp = Math.max(1, bits >> 3), rows: Uint8Array[] = [];
  const passes = opts.interlace ? PASSES : [[0, 0, 1, 1]];
  passes.forEach(([x0, y0, dx, dy], pi) => {
    const pw = Math.ceil((width - x0) / dx), ph = Math.ceil((height - y0) / dy);
    if (pw <= 0 || ph <= 0) return;
    let prev: Uint8Array | null = null;
    for (let py = 0; py < ph; py++) {
      const row = new Uint8Array(Math.ceil((pw * bits) / 8));
      for (let px = 0; px < pw; px++) {
        for (let c = 0; c < ch; c++) {
          const v = opts.samples[((y0 + py * dy) * width + x0 + px * dx) * ch + c], s = px * ch + c;
          if (depth === 16) row[2 * s] = v >> 8, row[2 * s + 1] = v & 255;
          else if (depth === 8) row[s] = v;
          else row[(s * depth) >> 3] |= v << (8 - depth - ((s * depth) & 7));
        }
      }
      rows.push(filterRow((py + pi) % 5, row, prev, bpp));
      prev = row;
    }
  });
  const ihdr = new Uint8Array(13), v = new DataView(ihdr.buffer);
  v.setUint32(0, width), v.setUint32(4, height);
  ihdr[8] = depth, ihdr[9] = colorType, ihdr[12] = opts.interlace ? 1 : 0;
  const sig = new Uint8Array([137, 80, 78, 71, 13, 10, 26, 10]);
  const parts = [sig, pngChunk("IHDR", ihdr)];
  if (opts.palette) parts.push(pngChunk("PLTE", new Uint8Array(opts.palette)));
  for (const e of opts.extra ?? []) parts.push(e);
  const idat = new Uint8Array(deflateSync(concat(rows)));
  // split IDAT in two to exercise multi-chunk data
  const half = idat.length >> 1;
  parts.push(pngChunk("IDAT", idat.subarray(0, half)), pngChunk("IDAT", idat.subarray(half)));
  parts.push(pngChunk("IEND", new Uint8Array(0)));
  return concat(parts);
}

/** A PNG made only of a signature and an IHDR claiming `width`×`height` (a decompression-bomb header). */
export function bombPngHeader(width: number, height: number): Uint8Array {
  const ihdr = new Uint8Array(13), v = new DataView(ihdr.buffer);
  v.setUint32(0, width), v.setUint32(4, height);
  ihdr[8] = 8, ihdr[9] = 2;
  return concat([new Uint8Array([137, 80, 78, 71, 13, 10, 26, 10]), pngChunk("IHDR", ihdr)]);
}

/** A smooth, asymmetric test picture (red top-left corner block, gradients elsewhere). */
export function testPicture(width: number, height: number): RgbImage {
  const data = new Uint8Array(width * height * 3);
  for (let y = 0; y < height; y++) {
    for (let x = 0; x < width; x++) {
      const i = (y * width + x) * 3, corner = x < width / 4 && y < height / 4;
      data[i] = corner ? 230 : 20;
      data[i + 1] = corner ? 20 : Math.round((x / width) * 200);
      data[i + 2] = corner ? 20 : Math.round((y / height) * 200);
    }
  }
  return { width, height, data };
}

/** Encodes an RGB image as JPEG with imagescript. */
export async function jpegOf(img: RgbImage, quality = 92): Promise<Uint8Array> {
  const im = new Image(img.width, img.height);
  for (let i = 0; i < img.width * img.height; i++) {
    im.bitmap[i * 4] = img.data[i * 3], im.bitmap[i * 4 + 1] = img.data[i * 3 + 1];
    im.bitmap[i * 4 + 2] = img.data[i * 3 + 2], im.bitmap[i * 4 + 3] = 255;
  }
  return await im.encodeJPEG(quality as Parameters<Image["encodeJPEG"]>[0]);
}

/** Inserts an APP1 Exif segment (big-endian TIFF, one IFD0 entry: Orientation) right after SOI. */
export function insertExifOrientation(jpeg: Uint8Array, orientation: number): Uint8Array {
  const tiff = [
    0x4d,
    0x4d,
    0,
    42,
    0,
    0,
    0,
    8, // header, IFD0 at 8
    0,
    1, // one entry
    0x01,
    0x12,
    0,
    3,
    0,
    0,
    0,
    1,
    0,
    orientation,
    0,
    0, // Orientation, SHORT, count 1, value
    0,
    0,
    0,
    0, // no next IFD
  ];
  const payload = [...new TextEncoder().encode("Exif\0\0"), ...tiff], len = payload.length + 2;
  const seg = new Uint8Array([0xff, 0xe1, len >> 8, len & 255, ...payload]);
  return concat([jpeg.subarray(0, 2), seg, jpeg.subarray(2)]);
}

/** Writes a folder with good and bad files; returns the expected skip reasons by relative path. */
export async function writeMixedFolder(dir: string): Promise<{ good: string[]; bad: Record<string, RegExp> }> {
  await Deno.mkdir(`${dir}/sub/deeper`, { recursive: true });
  await Deno.mkdir(`${dir}/.hidden`, { recursive: true });
  const jpg = await jpegOf(testPicture(48, 32));
  await Deno.writeFile(`${dir}/a.jpg`, jpg);
  await Deno.writeFile(
    `${dir}/sub/b.PNG`,
    craftPng({
      width: 20,
      height: 30,
      depth: 8,
      colorType: 2,
      samples: Array.from({ length: 20 * 30 * 3 }, (_, i) => (i * 7) % 256),
    }),
  );
  await Deno.writeFile(`${dir}/sub/deeper/c.jpeg`, jpg);
  await Deno.writeFile(`${dir}/.hidden/ignored.jpg`, jpg);
  await Deno.writeFile(`${dir}/broken.jpg`, jpg.subarray(0, Math.floor(jpg.length * 0.6)));
  await Deno.writeTextFile(`${dir}/notes.jpg`, "this is text, not a JPEG\n");
  await Deno.writeFile(`${dir}/empty.png`, new Uint8Array(0));
  await Deno.writeTextFile(`${dir}/readme.txt`, "hello\n");
  return {
    good: ["a.jpg", "sub/b.PNG", "sub/deeper/c.jpeg"],
    bad: {
      "broken.jpg": /truncated JPEG/,
      "notes.jpg": /not a JPEG or PNG/,
      "empty.png": /empty file/,
      "readme.txt": /not a \.jpg\/\.jpeg\/\.png file/,
    },
  };
}
