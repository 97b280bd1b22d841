/**
 * Image decoding for the data pipeline: sniff the format from the bytes (not the extension), read the
 * dimensions from the header (PNG IHDR, JPEG SOFn) and refuse decompression bombs before any pixel is
 * decoded, check the JPEG marker structure so truncated files are refused rather than grey-filled, decode
 * (PNG: {@link decodePng}; JPEG: imagescript's decoder) to 8-bit RGB, and apply the EXIF orientation.
 *
 * @module
 */
import { Image } from "npm:imagescript@^1.3.1";
import type { RgbImage } from "./image.ts";
import { decodePng, isPng, pngHeader, pngToRgb } from "./png.ts";

/** Default pixel limit: PIL's `MAX_IMAGE_PIXELS` (about 89.5 Mpx). */
export const DEFAULT_MAX_PIXELS = 89_478_485;

/** A file that cannot be used as an image; `message` is the skip reason shown in run summaries. */
export class DecodeError extends Error {
  /** `message` is the skip reason. */
  constructor(message: string) {
    super(message);
    this.name = "DecodeError";
  }
}

/** What {@link probeImage} finds in a header. */
export interface ImageInfo {
  /** Container format. */
  format: "png" | "jpeg";
  /** Stored dimensions (before EXIF orientation). */
  width: number;
  /** Stored height. */
  height: number;
  /** EXIF orientation 1..8 (1 = as stored; PNG always 1). */
  orientation: number;
  /** JPEG only: progressive (SOF2/SOF6/SOF10/SOF14). */
  progressive?: boolean;
}

/** The format from magic bytes, or null. */
export function sniffFormat(bytes: Uint8Array): "png" | "jpeg" | null {
  if (isPng(bytes)) return "png";
  if (bytes.length >= 3 && bytes[0] === 0xff && bytes[1] === 0xd8 && bytes[2] === 0xff) return "jpeg";
  return null;
}

const u16 = (b: Uint8Array, p: number) => (b[p] << 8) | b[p + 1];

/**
 * Walks a JPEG's marker structure to the end: SOFn gives the size, APP1/Exif the orientation, and the file
 * must reach EOI (entropy-coded data is skipped marker to marker), so a cut-off file is reported as truncated.
 */
export function jpegInfo(bytes: Uint8Array, maxPixels = Infinity): ImageInfo {
  if (sniffFormat(bytes) !== "jpeg") throw new DecodeError("not a JPEG (bad SOI marker)");
  const n = bytes.length;
  let p = 2, width = 0, height = 0, orientation = 1, progressive = false, sof = false;
  for (;;) {
    if (p >= n) throw new DecodeError("truncated JPEG (no end-of-image marker)");
    if (bytes[p] !== 0xff) throw new DecodeError(`corrupt JPEG (expected a marker at byte ${p})`);
    while (p < n && bytes[p] === 0xff) p++; // fill bytes
    if (p >= n) throw new DecodeError("truncated JPEG (no end-of-image marker)");
    const m = bytes[p++];
    if (m === 0xd9) break; // EOI
    if ((m >= 0xd0 && m <= 0xd7) || m === 0x01) continue; // stand-alone markers
    if (p + 2 > n) throw new DecodeError("truncated JPEG (segment header cut short)");
    const len = u16(bytes, p);
    if (len < 2) throw new DecodeError(`corrupt JPEG (segment length ${len})`);
    if (p + len > n) throw new DecodeError("truncated JPEG (segment cut short)");
    const seg = bytes.subarray(p + 2, p + len);
    if (m >= 0xc0 && m <= 0xcf && m !== 0xc4 && m !== 0xc8 && m !== 0xcc) {
      if (seg.length < 6) throw new DecodeError("corrupt JPEG (short SOF segment)");
      height = u16(seg, 1), width = u16(seg, 3), sof = true;
      progressive = m === 0xc2 || m === 0xc6 || m === 0xca || m === 0xce;
      if (width === 0 || height === 0) throw new DecodeError("unsupported JPEG (zero or deferred (DNL) dimensions)");
      checkPixels({ width, height }, maxPixels); // before reading any further
    } else if (m === 0xe1 && orientation === 1) orientation = exifOrientation(seg);
    p += len;
    if (m === 0xda) { // SOS: skip entropy-coded data up to the next real marker
      if (!sof) throw new DecodeError("corrupt JPEG (scan before frame header)");
      while (p < n) {
        if (bytes[p] === 0xff && p + 1 < n) {
          const nb = bytes[p + 1];
          if (nb === 0x00 || (nb >= 0xd0 && nb <= 0xd7)) p += 2;
          else if (nb === 0xff) p++;
          else break;
        } else p++;
      }
    }
  }
  if (!sof) throw new DecodeError("corrupt JPEG (no frame header)");
  return { format: "jpeg", width, height, orientation, progressive };
}

/** The orientation tag (0x0112) of an APP1 Exif payload, or 1 when absent or unreadable. */
export function exifOrientation(seg: Uint8Array): number {
  if (seg.length < 14 || String.fromCharCode(...seg.subarray(0, 6)) !== "Exif\0\0") return 1;
  const t = seg.subarray(6), le = t[0] === 0x49 && t[1] === 0x49;
  if (!le && !(t[0] === 0x4d && t[1] === 0x4d)) return 1;
  const r16 = (o: number) => (le ? t[o] | (t[o + 1] << 8) : (t[o] << 8) | t[o + 1]);
  const r32 = (o: number) => (le ? r16(o) + r16(o + 2) * 65536 : r16(o) * 65536 + r16(o + 2));
  if (r16(2) !== 42) return 1;
  const ifd = r32(4);
  if (ifd + 2 > t.length) return 1;
  const count = r16(ifd);
  for (let i = 0; i < count; i++) {
    const e = ifd + 2 + i * 12;
    if (e + 12 > t.length) return 1;
    if (r16(e) === 0x0112 && r16(e + 2) === 3) {
      const v = r16(e + 8);
      return v >= 1 && v <= 8 ? v : 1;
    }
  }
  return 1;
}

/**
 * Header facts of a PNG or JPEG without decoding pixels; throws {@link DecodeError} when the header's
 * pixel count exceeds `maxPixels` (checked as soon as the dimensions are known).
 */
export function probeImage(bytes: Uint8Array, maxPixels = Infinity): ImageInfo {
  const f = sniffFormat(bytes);
  if (f === "png") {
    let info: ImageInfo;
    try {
      const h = pngHeader(bytes);
      info = { format: "png", width: h.width, height: h.height, orientation: 1 };
    } catch (e) {
      throw new DecodeError((e as Error).message);
    }
    checkPixels(info, maxPixels);
    return info;
  }
  if (f === "jpeg") return jpegInfo(bytes, maxPixels);
  if (bytes.length === 0) throw new DecodeError("empty file");
  throw new DecodeError("not a JPEG or PNG (unrecognised content)");
}

/** Options of {@link decodeImage}. */
export interface DecodeOptions {
  /** Refuse images with more pixels than this (default {@link DEFAULT_MAX_PIXELS}). */
  maxPixels?: number;
  /** Apply the EXIF orientation (default true). */
  orient?: boolean;
}

/** Throws when the header's pixel count exceeds the limit: checked before any decoding. */
export function checkPixels(info: { width: number; height: number }, maxPixels = DEFAULT_MAX_PIXELS): void {
  const px = info.width * info.height;
  if (px > maxPixels) {
    throw new DecodeError(
      `refused: ${info.width}×${info.height} = ${px} pixels exceeds the limit of ${maxPixels} (possible decompression bomb)`,
    );
  }
}

/** Decodes PNG or JPEG bytes to RGB with the EXIF orientation applied. Throws {@link DecodeError}. */
export async function decodeImage(bytes: Uint8Array, opts: DecodeOptions = {}): Promise<RgbImage> {
  const info = probeImage(bytes, opts.maxPixels ?? DEFAULT_MAX_PIXELS);
  let img: RgbImage;
  if (info.format === "png") {
    try {
      const raw = decodePng(bytes);
      img = { width: raw.width, height: raw.height, data: pngToRgb(raw) };
    } catch (e) {
      throw new DecodeError((e as Error).message);
    }
  } else {
    let dec: Image;
    try {
      dec = await Image.decode(bytes);
    } catch (e) {
      throw new DecodeError(`corrupt JPEG (${(e as Error).message || "decoder failed"})`);
    }
    if (dec.width !== info.width || dec.height !== info.height) {
      throw new DecodeError(
        `corrupt JPEG (decoded ${dec.width}×${dec.height}, header says ${info.width}×${info.height})`,
      );
    }
    const n = dec.width * dec.height, src = dec.bitmap, data = new Uint8Array(n * 3);
    for (let i = 0; i < n; i++) {
      data[i * 3] = src[i * 4], data[i * 3 + 1] = src[i * 4 + 1], data[i * 3 + 2] = src[i * 4 + 2];
    }
    img = { width: dec.width, height: dec.height, data };
  }
  return opts.orient === false ? img : orient(img, info.orientation);
}

/**
 * Applies EXIF orientation `o` (1..8) so the result is upright, with PIL's `exif_transpose` semantics
 * (6: rotate 90° clockwise, 8: 90° counter-clockwise, 2/4: mirror, 5/7: transpose/transverse).
 */
export function orient(img: RgbImage, o: number): RgbImage {
  if (o <= 1 || o > 8) return img;
  const { width: W, height: H } = img, swap = o >= 5;
  const w = swap ? H : W, h = swap ? W : H, out = new Uint8Array(w * h * 3);
  for (let y = 0; y < h; y++) {
    for (let x = 0; x < w; x++) {
      let sx: number, sy: number;
      switch (o) {
        case 2:
          sx = W - 1 - x, sy = y;
          break;
        case 3:
          sx = W - 1 - x, sy = H - 1 - y;
          break;
        case 4:
          sx = x, sy = H - 1 - y;
          break;
        case 5:
          sx = y, sy = x;
          break;
        case 6:
          sx = y, sy = H - 1 - x;
          break;
        case 7:
          sx = W - 1 - y, sy = H - 1 - x;
          break;
        default: // 8
          sx = W - 1 - y, sy = x;
      }
      const s = (sy * W + sx) * 3, d = (y * w + x) * 3;
      out[d] = img.data[s], out[d + 1] = img.data[s + 1], out[d + 2] = img.data[s + 2];
    }
  }
  return { width: w, height: h, data: out };
}

/** Reads and decodes a file; file-system errors become {@link DecodeError}s (a skip, not a crash). */
export async function decodeFile(path: string, opts: DecodeOptions = {}): Promise<RgbImage> {
  let bytes: Uint8Array;
  try {
    bytes = await Deno.readFile(path);
  } catch (e) {
    throw new DecodeError(`unreadable (${(e as Error).name}: ${(e as Error).message})`);
  }
  return decodeImage(bytes, opts);
}
