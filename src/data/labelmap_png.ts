/**
 * Label maps as PNG files.
 *
 * Written: 16-bit greyscale, pixel value = region id (0 = none), when every id fits in 0..65535; RGB
 * (8-bit) otherwise, with id = R + 256·G + 65536·B (the COCO panoptic convention). An optional `plrc` tEXt
 * chunk carries JSON metadata (how the map was made, which source it belongs to).
 *
 * Read (user-supplied maps too): greyscale of any depth (value = id), palette (index = id, as in VOC
 * segmentation PNGs), grey+alpha (grey = id), 8-bit RGB/RGBA (R + 256·G + 65536·B). 16-bit colour is refused.
 *
 * @module
 */
import { writeAtomic } from "./cache.ts";
import type { LabelMap } from "./image.ts";
import { decodePng, encodePng, PNG_COLOR, PngError } from "./png.ts";

/** Encodes a label map (ids must be ≥ 0); `meta` becomes the `plrc` tEXt chunk as JSON. */
export function encodeLabelMapPng(map: LabelMap, meta?: unknown): Uint8Array {
  let max = 0;
  for (const v of map.data) {
    if (v < 0) throw new Error(`label maps hold ids ≥ 0, found ${v}`);
    if (v > max) max = v;
  }
  if (max > 0xffffff) throw new Error(`label id ${max} does not fit in 24 bits`);
  const text = meta === undefined ? undefined : { plrc: latin1Safe(JSON.stringify(meta)) };
  const { width, height } = map;
  if (max <= 0xffff) {
    return encodePng({ width, height, channels: 1, depth: 16, samples: Uint16Array.from(map.data), text });
  }
  const s = new Uint8Array(width * height * 3);
  for (let i = 0; i < map.data.length; i++) {
    const v = map.data[i];
    s[i * 3] = v & 255, s[i * 3 + 1] = (v >> 8) & 255, s[i * 3 + 2] = v >> 16;
  }
  return encodePng({ width, height, channels: 3, depth: 8, samples: s, text });
}

/** tEXt is latin-1: escape anything else as \uXXXX (still valid JSON). */
function latin1Safe(s: string): string {
  return s.replace(/[^\x20-\x7e]/g, (c) => `\\u${c.charCodeAt(0).toString(16).padStart(4, "0")}`);
}

/** Decodes a label-map PNG; `meta` is the parsed `plrc` chunk when present. Throws {@link PngError}. */
export function decodeLabelMapPng(bytes: Uint8Array): { map: LabelMap; meta?: unknown } {
  const p = decodePng(bytes), n = p.width * p.height, ch = p.channels, s = p.samples;
  const data = new Int32Array(n);
  if (p.colorType === PNG_COLOR.rgb || p.colorType === PNG_COLOR.rgba) {
    if (p.depth !== 8) throw new PngError("16-bit colour label maps are not supported (use 16-bit grey)");
    for (let i = 0; i < n; i++) data[i] = s[i * ch] + 256 * s[i * ch + 1] + 65536 * s[i * ch + 2];
  } else {
    for (let i = 0; i < n; i++) data[i] = s[i * ch]; // grey, grey+alpha, palette index
  }
  let meta: unknown;
  if (p.text.plrc !== undefined) {
    try {
      meta = JSON.parse(p.text.plrc);
    } catch {
      meta = undefined;
    }
  }
  return { map: { width: p.width, height: p.height, data }, meta };
}

/** Writes a label-map PNG atomically. */
export async function writeLabelMapPng(path: string, map: LabelMap, meta?: unknown): Promise<void> {
  await writeAtomic(path, encodeLabelMapPng(map, meta));
}

/** Reads a label-map PNG (user-supplied or written by {@link writeLabelMapPng}). */
export async function readLabelMapPng(path: string): Promise<{ map: LabelMap; meta?: unknown }> {
  return decodeLabelMapPng(await Deno.readFile(path));
}
