/**
 * A small, strict PNG codec: decodes every standard variant (bit depths 1/2/4/8/16; grey, RGB, palette,
 * grey+alpha, RGBA; all five filter types; Adam7 interlace) to raw samples, and encodes 8/16-bit grey and
 * 8-bit RGB. Chunk CRCs are checked, so a damaged file is reported rather than half-decoded. Inflate and
 * deflate come from `node:zlib`.
 *
 * @module
 */

import { crc32 } from "../util/crc32.ts";
export { crc32 };
import { deflateSync, inflateSync } from "node:zlib";

/** The PNG signature. */
export const PNG_SIGNATURE: Uint8Array = new Uint8Array([137, 80, 78, 71, 13, 10, 26, 10]);

/** Colour types of the PNG specification. */
export const PNG_COLOR = { gray: 0, rgb: 2, palette: 3, grayAlpha: 4, rgba: 6 } as const;

const CHANNELS: Record<number, number> = { 0: 1, 2: 3, 3: 1, 4: 2, 6: 4 };
const DEPTHS: Record<number, number[]> = { 0: [1, 2, 4, 8, 16], 2: [8, 16], 3: [1, 2, 4, 8], 4: [8, 16], 6: [8, 16] };

/** The IHDR fields. */
export interface PngHeader {
  width: number;
  height: number;
  depth: number;
  colorType: number;
  interlace: number;
}

/** A decoded PNG: one sample per channel per pixel (`samples[(y*width + x)*channels + c]`). */
export interface PngRaw extends PngHeader {
  channels: number;
  /** Unpacked samples: Uint16Array for depth 16, Uint8Array otherwise (palette: indices). */
  samples: Uint8Array | Uint16Array;
  /** RGB triples of the PLTE chunk (palette images). */
  palette?: Uint8Array;
  /** tEXt chunks, keyword → text (latin-1). */
  text: Record<string, string>;
}

/** A PNG that cannot be decoded; the message says why. */
export class PngError extends Error {
  constructor(message: string) {
    super(message);
    this.name = "PngError";
  }
}

/** True when `bytes` starts with the PNG signature. */
export function isPng(bytes: Uint8Array): boolean {
  if (bytes.length < 8) return false;
  for (let i = 0; i < 8; i++) if (bytes[i] !== PNG_SIGNATURE[i]) return false;
  return true;
}

/** Reads and validates IHDR only (the first 33 bytes): used to refuse oversized images before inflating. */
export function pngHeader(bytes: Uint8Array): PngHeader {
  if (!isPng(bytes)) throw new PngError("not a PNG (bad signature)");
  if (bytes.length < 33) throw new PngError("truncated PNG header");
  const v = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  if (v.getUint32(8) !== 13 || String.fromCharCode(...bytes.subarray(12, 16)) !== "IHDR") {
    throw new PngError("PNG does not start with an IHDR chunk");
  }
  const h = {
    width: v.getUint32(16),
    height: v.getUint32(20),
    depth: bytes[24],
    colorType: bytes[25],
    interlace: bytes[28],
  };
  if (h.width === 0 || h.height === 0) throw new PngError("PNG has zero width or height");
  if (!(h.colorType in CHANNELS) || !DEPTHS[h.colorType].includes(h.depth)) {
    throw new PngError(`invalid PNG colour type ${h.colorType} with bit depth ${h.depth}`);
  }
  if (bytes[26] !== 0 || bytes[27] !== 0 || h.interlace > 1) {
    throw new PngError("unknown PNG compression/filter/interlace");
  }
  return h;
}

interface Chunks {
  idat: Uint8Array;
  palette?: Uint8Array;
  text: Record<string, string>;
}

function readChunks(bytes: Uint8Array): Chunks {
  const v = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  const idats: Uint8Array[] = [];
  const text: Record<string, string> = {};
  let palette: Uint8Array | undefined, p = 8, ended = false;
  while (p < bytes.length) {
    if (p + 12 > bytes.length) throw new PngError("truncated PNG (incomplete chunk)");
    const len = v.getUint32(p), type = String.fromCharCode(...bytes.subarray(p + 4, p + 8));
    if (p + 12 + len > bytes.length) throw new PngError(`truncated PNG (chunk ${type} cut short)`);
    const data = bytes.subarray(p + 8, p + 8 + len);
    if (crc32(bytes.subarray(p + 4, p + 8 + len)) !== v.getUint32(p + 8 + len)) {
      throw new PngError(`corrupt PNG (CRC mismatch in chunk ${type})`);
    }
    if (type === "IDAT") idats.push(data);
    else if (type === "PLTE") palette = data.slice();
    else if (type === "tEXt") {
      const z = data.indexOf(0);
      if (z > 0) text[latin1(data.subarray(0, z))] = latin1(data.subarray(z + 1));
    } else if (type === "IEND") {
      ended = true;
      break;
    }
    p += 12 + len;
  }
  if (!ended) throw new PngError("truncated PNG (no IEND chunk)");
  if (idats.length === 0) throw new PngError("PNG has no image data (no IDAT chunk)");
  const total = idats.reduce((s, d) => s + d.length, 0), idat = new Uint8Array(total);
  let o = 0;
  for (const d of idats) idat.set(d, o), o += d.length;
  return { idat, palette, text };
}

function latin1(b: Uint8Array): string {
  let s = "";
  for (let i = 0; i < b.length; i++) s += String.fromCharCode(b[i]);
  return s;
}

/** Undoes the five PNG filters in place over `rows` scanlines of `rowBytes` bytes (+1 filter byte each). */
function unfilter(buf: Uint8Array, off: number, rows: number, rowBytes: number, bpp: number): Uint8Array {
  const out = new Uint8Array(rows * rowBytes);
  for (let y = 0; y < rows; y++) {
    const f = buf[off + y * (rowBytes + 1)], src = off + y * (rowBytes + 1) + 1, dst = y * rowBytes;
    const prev = dst - rowBytes; // valid only for y > 0
    for (let i = 0; i < rowBytes; i++) {
      const x = buf[src + i];
      const a = i >= bpp ? out[dst + i - bpp] : 0;
      const b = y > 0 ? out[prev + i] : 0;
      let r: number;
      switch (f) {
        case 0:
          r = x;
          break;
        case 1:
          r = x + a;
          break;
        case 2:
          r = x + b;
          break;
        case 3:
          r = x + ((a + b) >> 1);
          break;
        case 4: {
          const c = y > 0 && i >= bpp ? out[prev + i - bpp] : 0;
          const pa = Math.abs(b - c), pb = Math.abs(a - c), pc = Math.abs(a + b - 2 * c);
          r = x + (pa <= pb && pa <= pc ? a : pb <= pc ? b : c);
          break;
        }
        default:
          throw new PngError(`corrupt PNG (unknown filter type ${f})`);
      }
      out[dst + i] = r & 0xff;
    }
  }
  return out;
}

const ADAM7 = [
  [0, 0, 8, 8],
  [4, 0, 8, 8],
  [0, 4, 4, 8],
  [2, 0, 4, 4],
  [0, 2, 2, 4],
  [1, 0, 2, 2],
  [0, 1, 1, 2],
]; // x0, y0, dx, dy

/** Decodes a whole PNG to raw samples. Throws {@link PngError} on any malformed, truncated or damaged input. */
export function decodePng(bytes: Uint8Array): PngRaw {
  const h = pngHeader(bytes);
  const { idat, palette, text } = readChunks(bytes);
  if (h.colorType === PNG_COLOR.palette && !palette) throw new PngError("palette PNG without a PLTE chunk");
  let raw: Uint8Array;
  try {
    raw = new Uint8Array(inflateSync(idat));
  } catch (e) {
    throw new PngError(`corrupt PNG image data (${(e as Error).message})`);
  }
  const channels = CHANNELS[h.colorType], bitsPerPixel = channels * h.depth;
  const bpp = Math.max(1, bitsPerPixel >> 3);
  const n = h.width * h.height * channels;
  const samples = h.depth === 16 ? new Uint16Array(n) : new Uint8Array(n);
  const passes = h.interlace ? ADAM7 : [[0, 0, 1, 1]];
  let off = 0;
  for (const [x0, y0, dx, dy] of passes) {
    const pw = Math.ceil((h.width - x0) / dx), ph = Math.ceil((h.height - y0) / dy);
    if (pw <= 0 || ph <= 0) continue;
    const rowBytes = Math.ceil((pw * bitsPerPixel) / 8);
    if (off + ph * (rowBytes + 1) > raw.length) throw new PngError("truncated PNG image data");
    const rows = unfilter(raw, off, ph, rowBytes, bpp);
    off += ph * (rowBytes + 1);
    for (let py = 0; py < ph; py++) {
      const row = py * rowBytes, y = y0 + py * dy;
      for (let px = 0; px < pw; px++) {
        const base = ((y * h.width) + x0 + px * dx) * channels;
        for (let c = 0; c < channels; c++) {
          const s = px * channels + c;
          let val: number;
          if (h.depth === 8) val = rows[row + s];
          else if (h.depth === 16) val = (rows[row + 2 * s] << 8) | rows[row + 2 * s + 1];
          else {
            const bit = s * h.depth; // sub-byte samples are packed MSB first
            val = (rows[row + (bit >> 3)] >> (8 - h.depth - (bit & 7))) & ((1 << h.depth) - 1);
          }
          samples[base + c] = val;
        }
      }
    }
  }
  return { ...h, channels, samples, palette, text };
}

/** Converts decoded samples to 8-bit RGB (alpha is dropped, as PIL's `convert("RGB")` does; 16-bit keeps the high byte). */
export function pngToRgb(p: PngRaw): Uint8Array {
  const n = p.width * p.height, out = new Uint8Array(n * 3), s = p.samples, ch = p.channels;
  const scale = p.depth < 8 && p.colorType !== PNG_COLOR.palette ? 255 / ((1 << p.depth) - 1) : 1;
  const to8 = p.depth === 16 ? (v: number) => v >> 8 : (v: number) => Math.round(v * scale);
  for (let i = 0; i < n; i++) {
    if (p.colorType === PNG_COLOR.palette) {
      const k = s[i] * 3, pal = p.palette!; // indices past the palette read as black
      out[i * 3] = pal[k] ?? 0, out[i * 3 + 1] = pal[k + 1] ?? 0, out[i * 3 + 2] = pal[k + 2] ?? 0;
    } else if (ch <= 2) {
      const g = to8(s[i * ch]);
      out[i * 3] = g, out[i * 3 + 1] = g, out[i * 3 + 2] = g;
    } else {
      for (let c = 0; c < 3; c++) out[i * 3 + c] = to8(s[i * ch + c]);
    }
  }
  return out;
}

function chunk(type: string, data: Uint8Array): Uint8Array {
  const out = new Uint8Array(12 + data.length), v = new DataView(out.buffer);
  v.setUint32(0, data.length);
  for (let i = 0; i < 4; i++) out[4 + i] = type.charCodeAt(i);
  out.set(data, 8);
  v.setUint32(8 + data.length, crc32(out.subarray(4, 8 + data.length)));
  return out;
}

/** What {@link encodePng} writes: grey (1 channel, 8 or 16 bit) or RGB (3 channels, 8 bit). */
export interface PngImage {
  width: number;
  height: number;
  channels: 1 | 3;
  depth: 8 | 16;
  samples: Uint8Array | Uint16Array;
  text?: Record<string, string>;
}

/** Encodes a PNG (filter 0 on every row, zlib level 6). Text values must be latin-1. */
export function encodePng(img: PngImage): Uint8Array {
  const { width, height, channels, depth } = img;
  if (img.samples.length !== width * height * channels) throw new Error("encodePng: sample count mismatch");
  if (channels === 3 && depth !== 8) throw new Error("encodePng: RGB is 8-bit only");
  const rowBytes = width * channels * (depth / 8), raw = new Uint8Array(height * (rowBytes + 1));
  for (let y = 0; y < height; y++) {
    const o = y * (rowBytes + 1) + 1;
    for (let i = 0; i < width * channels; i++) {
      const v = img.samples[y * width * channels + i];
      if (depth === 16) raw[o + 2 * i] = v >> 8, raw[o + 2 * i + 1] = v & 0xff;
      else raw[o + i] = v;
    }
  }
  const ihdr = new Uint8Array(13), v = new DataView(ihdr.buffer);
  v.setUint32(0, width), v.setUint32(4, height);
  ihdr[8] = depth, ihdr[9] = channels === 1 ? PNG_COLOR.gray : PNG_COLOR.rgb;
  const parts = [PNG_SIGNATURE, chunk("IHDR", ihdr)];
  for (const [k, t] of Object.entries(img.text ?? {})) {
    const b = new Uint8Array(k.length + 1 + t.length);
    for (let i = 0; i < k.length; i++) b[i] = k.charCodeAt(i);
    for (let i = 0; i < t.length; i++) b[k.length + 1 + i] = t.charCodeAt(i);
    parts.push(chunk("tEXt", b));
  }
  parts.push(chunk("IDAT", new Uint8Array(deflateSync(raw, { level: 6 }))), chunk("IEND", new Uint8Array(0)));
  const out = new Uint8Array(parts.reduce((s, p) => s + p.length, 0));
  let o = 0;
  for (const p of parts) out.set(p, o), o += p.length;
  return out;
}
