/**
 * The decode cache: each source image is decoded once, downscaled so its short side is at most
 * `maxShort`, and stored as raw RGB, so later epochs read bytes instead of decoding JPEGs. Files that
 * failed to decode are cached as failures too (with their reason), so they are not retried every epoch.
 *
 * Layout (see `src/data/README.md`): `<dir>/s<maxShort>/<2 hex>/<14 hex>.rgb`, named by a hash of the
 * source's relative path. Each entry is `"PLRCIMG1"`, a u32 (little-endian) header length, a UTF-8 JSON
 * header `{path, size, mtimeMs, width, height, error?}` and `width·height·3` RGB bytes. An entry is valid
 * only while the source's size and mtime equal the header's (and the stored path matches, which also
 * guards against hash collisions). Writes go to a temporary file that is renamed into place, so a reader
 * (or a crash) never sees half an entry.
 *
 * @module
 */
import { join } from "node:path";
import { DecodeError, decodeFile, DEFAULT_MAX_PIXELS } from "./decode.ts";
import type { RgbImage } from "./image.ts";
import { downscaleShortSide } from "./resize.ts";

const MAGIC = "PLRCIMG1";

/** Default short-side limit of cached images. */
export const DEFAULT_MAX_SHORT = 256;

/** The header stored with each entry. */
export interface CacheHeader {
  path: string;
  size: number;
  mtimeMs: number;
  width: number;
  height: number;
  /** Set when the source could not be decoded. */
  error?: string;
}

/** 56-bit string hash (two 32-bit FNV-1a lanes with different offsets), as 14 hex digits. */
export function pathHash(s: string): string {
  let a = 0x811c9dc5, b = 0x050c5d1f;
  for (let i = 0; i < s.length; i++) {
    const c = s.charCodeAt(i);
    a = Math.imul(a ^ c, 0x01000193) >>> 0;
    b = Math.imul(b ^ c, 0x01000193) >>> 0;
    b = (b ^ (b >>> 13)) >>> 0;
  }
  return a.toString(16).padStart(8, "0") + (b & 0xffffff).toString(16).padStart(6, "0");
}

/** Where the entry for source `rel` at `maxShort` lives. */
export function cacheEntryPath(dir: string, rel: string, maxShort: number): string {
  const h = pathHash(rel);
  return join(dir, `s${maxShort}`, h.slice(0, 2), `${h.slice(2)}.rgb`);
}

/** Serialises an entry. */
export function encodeEntry(header: CacheHeader, rgb: Uint8Array): Uint8Array {
  const json = new TextEncoder().encode(JSON.stringify(header));
  const out = new Uint8Array(12 + json.length + rgb.length);
  out.set(new TextEncoder().encode(MAGIC), 0);
  new DataView(out.buffer).setUint32(8, json.length, true);
  out.set(json, 12);
  out.set(rgb, 12 + json.length);
  return out;
}

/** Parses an entry; null when it is not a well-formed entry (treated as a miss). */
export function decodeEntry(bytes: Uint8Array): { header: CacheHeader; rgb: Uint8Array } | null {
  if (bytes.length < 12 || new TextDecoder().decode(bytes.subarray(0, 8)) !== MAGIC) return null;
  const len = new DataView(bytes.buffer, bytes.byteOffset).getUint32(8, true);
  if (12 + len > bytes.length) return null;
  let header: CacheHeader;
  try {
    header = JSON.parse(new TextDecoder().decode(bytes.subarray(12, 12 + len)));
  } catch {
    return null;
  }
  const rgb = bytes.subarray(12 + len);
  if (!header.error && rgb.length !== header.width * header.height * 3) return null;
  return { header, rgb };
}

/** Writes `bytes` to `path` atomically (temporary file in the same folder, then rename). */
export async function writeAtomic(path: string, bytes: Uint8Array): Promise<void> {
  await Deno.mkdir(join(path, ".."), { recursive: true });
  const tmp = `${path}.${Deno.pid}.${Math.random().toString(36).slice(2)}.tmp`;
  try {
    await Deno.writeFile(tmp, bytes);
    await Deno.rename(tmp, path);
  } catch (e) {
    await Deno.remove(tmp).catch(() => {});
    throw e;
  }
}

/** Options of {@link loadImage}. */
export interface LoadOptions {
  /** Short-side limit (default {@link DEFAULT_MAX_SHORT}). */
  maxShort?: number;
  /** Pixel guard (default {@link DEFAULT_MAX_PIXELS}). */
  maxPixels?: number;
  /** Cache folder; omitted: no cache. */
  cacheDir?: string;
}

/** An image ready for cropping, or the reason it was skipped. */
export type LoadResult =
  | { ok: true; image: RgbImage; fromCache: boolean }
  | { ok: false; reason: string; fromCache: boolean };

/**
 * Loads `root/rel` decoded, oriented and downscaled, through the cache when one is given. Never throws
 * for a bad source file: it returns `{ ok: false, reason }`.
 */
export async function loadImage(root: string, rel: string, opts: LoadOptions = {}): Promise<LoadResult> {
  const maxShort = opts.maxShort ?? DEFAULT_MAX_SHORT, src = join(root, rel);
  let st: Deno.FileInfo;
  try {
    st = await Deno.stat(src);
  } catch (e) {
    return { ok: false, reason: `unreadable (${(e as Error).message})`, fromCache: false };
  }
  const size = st.size, mtimeMs = st.mtime?.getTime() ?? 0;
  const entry = opts.cacheDir ? cacheEntryPath(opts.cacheDir, rel, maxShort) : "";
  if (entry) {
    const hit = await Deno.readFile(entry).then(decodeEntry, () => null);
    if (hit && hit.header.path === rel && hit.header.size === size && hit.header.mtimeMs === mtimeMs) {
      if (hit.header.error) return { ok: false, reason: hit.header.error, fromCache: true };
      return {
        ok: true,
        image: { width: hit.header.width, height: hit.header.height, data: hit.rgb },
        fromCache: true,
      };
    }
  }
  let image: RgbImage | undefined, error: string | undefined;
  try {
    image = downscaleShortSide(await decodeFile(src, { maxPixels: opts.maxPixels ?? DEFAULT_MAX_PIXELS }), maxShort);
  } catch (e) {
    // anything a decoder throws on hostile bytes is a skip, never a crash; non-DecodeErrors are labelled
    error = e instanceof DecodeError ? e.message : `decoder failed (${(e as Error).message})`;
  }
  if (entry) {
    const header: CacheHeader = { path: rel, size, mtimeMs, width: image?.width ?? 0, height: image?.height ?? 0 };
    if (error) header.error = error;
    await writeAtomic(entry, encodeEntry(header, image?.data ?? new Uint8Array(0)));
  }
  return image ? { ok: true, image, fromCache: false } : { ok: false, reason: error!, fromCache: false };
}
