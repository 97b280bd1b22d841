/**
 * COCO-style instance annotations: a validating reader (images, categories, annotations with boxes and
 * polygon or RLE masks: uncompressed `counts` arrays and COCO's compressed string form), polygon
 * rasterisation, and RLE encoding both ways (the scene exporter writes compressed RLE).
 *
 * Masks are row-major `Uint8Array`s (`mask[y*width + x]`, 1 = object); COCO's RLE runs are column-major
 * (down each column, then the next), starting with a run of zeros, as in pycocotools.
 *
 * @module
 */

/** An image entry. */
export interface CocoImage {
  /** Image id. */
  id: number;
  /** Path relative to the image folder. */
  file_name: string;
  /** Width in pixels. */
  width: number;
  /** Height in pixels. */
  height: number;
}

/** A category entry. */
export interface CocoCategory {
  /** Category id. */
  id: number;
  /** Category name. */
  name: string;
  /** Parent category name. */
  supercategory?: string;
}

/** RLE as stored in JSON: counts as numbers (uncompressed) or COCO's compressed string. */
export interface CocoRle {
  /** [height, width] of the mask. */
  size: [number, number];
  /** Run lengths, starting with a background run, in column-major order. */
  counts: number[] | string;
}

/** An annotation. */
export interface CocoAnnotation {
  /** Annotation id. */
  id: number;
  /** Id of the annotated image. */
  image_id: number;
  /** Id of its category. */
  category_id: number;
  /** [x, y, width, height]. */
  bbox: [number, number, number, number];
  /** Pixel area of the segmentation. */
  area?: number;
  /** 1 for a crowd region (a group of objects). */
  iscrowd: 0 | 1;
  /** Polygons (each [x0, y0, x1, y1, ...]) or RLE; absent: box only. */
  segmentation?: number[][] | CocoRle;
}

/** A parsed, validated data set. */
export interface CocoDataset {
  /** Image entries. */
  images: CocoImage[];
  /** Category entries. */
  categories: CocoCategory[];
  /** Annotation entries. */
  annotations: CocoAnnotation[];
  /** Annotations per image id (in file order). */
  byImage: Map<number, CocoAnnotation[]>;
}

/** A malformed annotation file; the message names the file and the JSON path of the problem. */
export class CocoError extends Error {
  /** `message` names the file and the JSON path. */
  constructor(message: string) {
    super(message);
    this.name = "CocoError";
  }
}

type Json = Record<string, unknown>;
const isObj = (v: unknown): v is Json => typeof v === "object" && v !== null && !Array.isArray(v);
const isNum = (v: unknown): v is number => typeof v === "number" && Number.isFinite(v);

/** Validates parsed JSON (`what` names the source in errors). */
export function parseCoco(data: unknown, what = "annotations"): CocoDataset {
  const fail = (path: string, msg: string): never => {
    throw new CocoError(`${what}: ${path} ${msg}`);
  };
  if (!isObj(data)) fail("(top level)", "must be an object with images, annotations and categories");
  const d = data as Json;
  for (const k of ["images", "annotations", "categories"]) if (!Array.isArray(d[k])) fail(k, "must be an array");
  const images = (d.images as unknown[]).map((im, i): CocoImage => {
    const p = `images[${i}]`;
    if (!isObj(im)) return fail(p, "must be an object");
    if (!Number.isInteger(im.id)) fail(`${p}.id`, "must be an integer");
    if (typeof im.file_name !== "string") fail(`${p}.file_name`, "must be a string");
    for (const k of ["width", "height"]) {
      if (!(Number.isInteger(im[k]) && (im[k] as number) > 0)) fail(`${p}.${k}`, "must be a positive integer");
    }
    return {
      id: im.id as number,
      file_name: im.file_name as string,
      width: im.width as number,
      height: im.height as number,
    };
  });
  const imageIds = new Map(images.map((im) => [im.id, im]));
  if (imageIds.size !== images.length) fail("images", "has duplicate ids");
  const categories = (d.categories as unknown[]).map((c, i): CocoCategory => {
    const p = `categories[${i}]`;
    if (!isObj(c)) return fail(p, "must be an object");
    if (!Number.isInteger(c.id)) fail(`${p}.id`, "must be an integer");
    if (typeof c.name !== "string") fail(`${p}.name`, "must be a string");
    const out: CocoCategory = { id: c.id as number, name: c.name as string };
    if (typeof c.supercategory === "string") out.supercategory = c.supercategory;
    return out;
  });
  const catIds = new Set(categories.map((c) => c.id));
  if (catIds.size !== categories.length) fail("categories", "has duplicate ids");
  const byImage = new Map<number, CocoAnnotation[]>(images.map((im) => [im.id, []]));
  const annotations = (d.annotations as unknown[]).map((a, i): CocoAnnotation => {
    const p = `annotations[${i}]`;
    if (!isObj(a)) return fail(p, "must be an object");
    if (!Number.isInteger(a.id)) fail(`${p}.id`, "must be an integer");
    if (!imageIds.has(a.image_id as number)) fail(`${p}.image_id`, `(${JSON.stringify(a.image_id)}) names no image`);
    if (!catIds.has(a.category_id as number)) {
      fail(`${p}.category_id`, `(${JSON.stringify(a.category_id)}) names no category`);
    }
    const bbox = a.bbox;
    if (!(Array.isArray(bbox) && bbox.length === 4 && bbox.every(isNum) && bbox[2] >= 0 && bbox[3] >= 0)) {
      fail(`${p}.bbox`, "must be [x, y, width, height] with width, height ≥ 0");
    }
    const iscrowd = a.iscrowd ?? 0;
    if (iscrowd !== 0 && iscrowd !== 1) fail(`${p}.iscrowd`, "must be 0 or 1");
    const out: CocoAnnotation = {
      id: a.id as number,
      image_id: a.image_id as number,
      category_id: a.category_id as number,
      bbox: bbox as [number, number, number, number],
      iscrowd: iscrowd as 0 | 1,
    };
    if (a.area !== undefined) {
      if (!isNum(a.area)) fail(`${p}.area`, "must be a number");
      out.area = a.area as number;
    }
    const im = imageIds.get(out.image_id)!, seg = a.segmentation;
    if (Array.isArray(seg)) {
      seg.forEach((poly, j) => {
        if (!(Array.isArray(poly) && poly.length >= 6 && poly.length % 2 === 0 && poly.every(isNum))) {
          fail(`${p}.segmentation[${j}]`, "must be a polygon [x0, y0, x1, y1, ...] with at least 3 points");
        }
      });
      out.segmentation = seg as number[][];
    } else if (isObj(seg)) {
      const size = seg.size;
      if (!(Array.isArray(size) && size.length === 2 && size[0] === im.height && size[1] === im.width)) {
        fail(`${p}.segmentation.size`, `must be [height, width] of its image ([${im.height}, ${im.width}])`);
      }
      const c = seg.counts;
      if (typeof c === "string") {
        if (!/^[\x30-\x6f]*$/.test(c)) fail(`${p}.segmentation.counts`, "is not a valid compressed RLE string");
      } else if (!(Array.isArray(c) && c.every((v) => Number.isInteger(v) && v >= 0))) {
        fail(`${p}.segmentation.counts`, "must be an array of non-negative integers or a compressed RLE string");
      }
      const counts = typeof c === "string" ? rleFromString(c) : (c as number[]);
      const total = counts.reduce((s, v) => s + v, 0);
      if (total !== im.width * im.height) {
        fail(`${p}.segmentation.counts`, `covers ${total} pixels, its image has ${im.width * im.height}`);
      }
      out.segmentation = { size: [im.height, im.width], counts: c as number[] | string };
    } else if (seg !== undefined) fail(`${p}.segmentation`, "must be a list of polygons or an RLE object");
    byImage.get(out.image_id)!.push(out);
    return out;
  });
  return { images, categories, annotations, byImage };
}

/** Reads and validates a COCO JSON file; malformed JSON is a {@link CocoError} naming the file. */
export async function readCoco(path: string): Promise<CocoDataset> {
  let text: string;
  try {
    text = await Deno.readTextFile(path);
  } catch (e) {
    throw new CocoError(`${path}: cannot read (${(e as Error).message})`);
  }
  let data: unknown;
  try {
    data = JSON.parse(text);
  } catch (e) {
    throw new CocoError(`${path}: malformed JSON (${(e as Error).message})`);
  }
  return parseCoco(data, path);
}

/** Decodes COCO's compressed RLE string to counts (pycocotools `rleFrString`). */
export function rleFromString(s: string): number[] {
  const counts: number[] = [];
  let p = 0;
  while (p < s.length) {
    let x = 0, k = 0, more = true;
    while (more) {
      if (p >= s.length) throw new CocoError("compressed RLE string ends inside a number");
      const c = s.charCodeAt(p) - 48;
      x |= (c & 0x1f) << (5 * k);
      more = (c & 0x20) !== 0;
      p++, k++;
      if (!more && c & 0x10) x |= -1 << (5 * k); // sign-extend
    }
    if (counts.length > 2) x += counts[counts.length - 2]; // runs after the second are deltas
    counts.push(x);
  }
  return counts;
}

/** Encodes counts as COCO's compressed RLE string (pycocotools `rleToString`). */
export function rleToString(counts: number[]): string {
  let s = "";
  for (let i = 0; i < counts.length; i++) {
    let x = counts[i];
    if (i > 2) x -= counts[i - 2];
    let more = true;
    while (more) {
      let c = x & 0x1f;
      x >>= 5;
      more = c & 0x10 ? x !== -1 : x !== 0;
      if (more) c |= 0x20;
      s += String.fromCharCode(c + 48);
    }
  }
  return s;
}

/** Row-major mask → column-major RLE counts (first run counts zeros). */
export function rleEncode(mask: Uint8Array, width: number, height: number): number[] {
  const counts: number[] = [];
  let cur = 0, run = 0;
  for (let x = 0; x < width; x++) {
    for (let y = 0; y < height; y++) {
      const v = mask[y * width + x] ? 1 : 0;
      if (v !== cur) counts.push(run), run = 0, cur = v;
      run++;
    }
  }
  counts.push(run);
  return counts;
}

/** Column-major RLE counts → row-major mask. */
export function rleDecode(counts: number[], width: number, height: number): Uint8Array {
  const mask = new Uint8Array(width * height);
  let k = 0, v = 0;
  for (const c of counts) {
    if (k + c > width * height) throw new CocoError("RLE counts exceed the mask size");
    if (v) { for (let i = k; i < k + c; i++) mask[(i % height) * width + Math.floor(i / height)] = 1; }
    k += c, v ^= 1;
  }
  return mask;
}

/**
 * Rasterises polygons (even–odd rule, union over polygons): pixel (x, y) is inside when its centre
 * (x + 0.5, y + 0.5) is. (pycocotools traces edges at 5× resolution instead, so borders may differ by a pixel.)
 */
export function rasterizePolygons(polys: number[][], width: number, height: number): Uint8Array {
  const mask = new Uint8Array(width * height);
  for (const poly of polys) {
    const n = poly.length / 2, xs: number[] = [];
    for (let y = 0; y < height; y++) {
      const cy = y + 0.5;
      xs.length = 0;
      for (let i = 0; i < n; i++) {
        const x0 = poly[2 * i], y0 = poly[2 * i + 1], j = (i + 1) % n, x1 = poly[2 * j], y1 = poly[2 * j + 1];
        if ((y0 <= cy && y1 > cy) || (y1 <= cy && y0 > cy)) xs.push(x0 + ((cy - y0) / (y1 - y0)) * (x1 - x0));
      }
      xs.sort((a, b) => a - b);
      for (let k = 0; k + 1 < xs.length; k += 2) {
        // centres x + 0.5 in [xs[k], xs[k+1])
        const from = Math.max(0, Math.ceil(xs[k] - 0.5)), to = Math.min(width - 1, Math.ceil(xs[k + 1] - 0.5) - 1);
        for (let x = from; x <= to; x++) mask[y * width + x] = 1;
      }
    }
  }
  return mask;
}

/** The mask of an annotation (polygons or RLE), or a filled box when it has no segmentation. */
export function annotationMask(ann: CocoAnnotation, width: number, height: number): Uint8Array {
  const seg = ann.segmentation;
  if (Array.isArray(seg)) return rasterizePolygons(seg, width, height);
  if (seg) return rleDecode(typeof seg.counts === "string" ? rleFromString(seg.counts) : seg.counts, width, height);
  const [bx, by, bw, bh] = ann.bbox;
  return rasterizePolygons([[bx, by, bx + bw, by, bx + bw, by + bh, bx, by + bh]], width, height);
}
