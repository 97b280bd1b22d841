/**
 * Built-in procedural scenes: the default data set of `pretrain`, and a labelled benchmark. A seeded,
 * deterministic generator of R×R images with textured, cluttered backgrounds and several objects of C
 * classes, with ground truth (per-pixel class map, instance map, boxes, labels).
 *
 * What makes it non-trivial: a class is defined by its **shape** (disc, square, triangle, ...); its colour
 * is only a weak cue (hues of neighbouring classes overlap: class c's hue is c/C plus N(0, 0.08)), each
 * class has a texture family whose period, orientation and contrast vary per instance, objects are
 * rotated, scaled (radius 7–20% of R), stretched, cut by the frame and occluded by later objects (up to
 * 60% hidden), and the background has low-frequency colour noise, its own stripes, distractor blobs of
 * any colour and per-pixel noise.
 *
 * Determinism: scene i draws only from `Rng.derive(seed, i)`, in a fixed order, with integer and IEEE
 * float arithmetic, so the same (seed, options, i) gives byte-identical images and labels in any
 * generator instance and in any call order.
 *
 * @module
 */
import { join } from "node:path";
import { writeAtomic } from "./cache.ts";
import { type CocoAnnotation, rleEncode, rleToString } from "./coco.ts";
import { type LabelMap, labelMap, type RgbImage, rgbImage } from "./image.ts";
import { writeLabelMapPng } from "./labelmap_png.ts";
import { encodePng } from "./png.ts";
import { Rng } from "../util/rng.ts";

/** Shapes, one per class (class c uses SHAPES[c]). */
export const SHAPES = [
  "disc",
  "square",
  "triangle",
  "diamond",
  "star",
  "ring",
  "cross",
  "hexagon",
  "crescent",
  "bar",
] as const;

/** Texture families (class c uses TEXTURES[c mod 4]). */
export const TEXTURES = ["stripes", "checker", "dots", "speckle"] as const;

/** Generator options. */
export interface SceneOptions {
  /** Image side R in pixels (default 128, at least 32). */
  size?: number;
  /** Number of classes C (default 6, 1..10). */
  classes?: number;
  /** Objects per image (defaults 2 and 5). */
  minObjects?: number;
  /** Largest object count (default 5). */
  maxObjects?: number;
}

/** One object as it is visible in the image. */
export interface SceneInstance {
  /** Instance id in `instanceMap` (1-based, in painting order). */
  id: number;
  /** Class id 1..C (0 is background in `classMap`). */
  classId: number;
  /** Visible extent [x, y, width, height] in pixels (COCO convention). */
  bbox: [number, number, number, number];
  /** Visible pixel count. */
  area: number;
}

/** A generated scene with its ground truth. */
export interface Scene {
  /** Index of the scene in its generator's stream. */
  index: number;
  /** The RGB image. */
  image: RgbImage;
  /** 0 background, 1..C object classes (visible pixels). */
  classMap: LabelMap;
  /** 0 background, 1..n instance ids. */
  instanceMap: LabelMap;
  /** The visible objects. */
  instances: SceneInstance[];
}

/** Class names: "<shape>" for each class. */
export function sceneClassNames(classes = 6): string[] {
  return SHAPES.slice(0, classes).map(String);
}

interface Placed {
  classId: number;
  cx: number;
  cy: number;
  r: number;
  aspect: number;
  angle: number;
}

/** Unit-shape membership at local coordinates (u, v), shape scaled to about the unit disc. */
export function insideShape(shape: (typeof SHAPES)[number], u: number, v: number): boolean {
  const au = Math.abs(u), av = Math.abs(v), rr = u * u + v * v;
  switch (shape) {
    case "disc":
      return rr <= 1;
    case "square":
      return au <= 0.8 && av <= 0.8;
    case "triangle": // upward, vertices at (0, -1), (±0.95, 0.7)
      return v <= 0.7 && 1.7 * au <= 0.95 * (v + 1);
    case "diamond":
      return au + av <= 1;
    case "star": {
      const a = Math.atan2(v, u), rad = 0.5 + 0.5 * Math.abs(Math.cos(2.5 * a));
      return rr <= rad * rad;
    }
    case "ring":
      return rr <= 1 && rr >= 0.36;
    case "cross":
      return (au <= 0.3 && av <= 1) || (av <= 0.3 && au <= 1);
    case "hexagon":
      return av <= 0.87 && 0.87 * au + 0.5 * av <= 0.87;
    case "crescent":
      return rr <= 1 && (u - 0.5) * (u - 0.5) + v * v > 0.64;
    case "bar":
      return au <= 1 && av <= 0.32;
  }
}

function hsv(h: number, s: number, v: number): [number, number, number] {
  h = ((h % 1) + 1) % 1;
  const i = Math.floor(h * 6), f = h * 6 - i, p = v * (1 - s), q = v * (1 - f * s), t = v * (1 - (1 - f) * s);
  const rgb = [[v, t, p], [q, v, p], [p, v, t], [p, q, v], [t, p, v], [v, p, q]][i % 6];
  return [rgb[0] * 255, rgb[1] * 255, rgb[2] * 255];
}

const clamp8 = (x: number) => (x <= 0 ? 0 : x >= 255 ? 255 : Math.round(x));

/** A texture field in [-1, 1]: stripes, checker, dots or speckle with instance-specific parameters. */
function texture(kind: (typeof TEXTURES)[number], rng: Rng): (x: number, y: number) => number {
  const period = rng.uniform(3, 9), ang = rng.uniform(0, Math.PI), c = Math.cos(ang), s = Math.sin(ang);
  const phase = rng.uniform(0, 2 * Math.PI), seed = rng.int(0x7fffffff);
  switch (kind) {
    case "stripes":
      return (x, y) => Math.sin((2 * Math.PI * (c * x + s * y)) / period + phase);
    case "checker":
      return (x, y) => {
        const a = Math.floor((c * x + s * y) / period), b = Math.floor((-s * x + c * y) / period);
        return (a + b) & 1 ? 1 : -1;
      };
    case "dots":
      return (x, y) => {
        const a = (c * x + s * y) / period, b = (-s * x + c * y) / period;
        const da = a - Math.round(a), db = b - Math.round(b);
        return da * da + db * db < 0.09 ? 1 : -0.35;
      };
    case "speckle":
      return (x, y) => {
        let h = Math.imul((x | 0) * 73856093 ^ (y | 0) * 19349663 ^ seed, 0x27d4eb2d);
        h ^= h >>> 15;
        return ((h >>> 0) / 4294967296) * 2 - 1;
      };
  }
}

/** The deterministic scene generator. */
export class SceneGenerator {
  /** Seed of the scene stream. */
  readonly seed: number;
  /** Image side in pixels. */
  readonly size: number;
  /** Number of object classes. */
  readonly classes: number;
  /** Fewest objects per scene. */
  readonly minObjects: number;
  /** Most objects per scene. */
  readonly maxObjects: number;

  /** A generator of scenes of `opts.size` pixels with `opts.classes` classes, scene i a function of (`seed`, i). */
  constructor(seed: number, opts: SceneOptions = {}) {
    this.seed = seed >>> 0;
    this.size = opts.size ?? 128;
    this.classes = opts.classes ?? 6;
    this.minObjects = opts.minObjects ?? 2;
    this.maxObjects = opts.maxObjects ?? 5;
    if (!(Number.isInteger(this.size) && this.size >= 32 && this.size <= 4096)) {
      throw new Error(`scene size must be an integer in 32..4096, got ${this.size}`);
    }
    if (!(Number.isInteger(this.classes) && this.classes >= 1 && this.classes <= SHAPES.length)) {
      throw new Error(`scene classes must be an integer in 1..${SHAPES.length}, got ${this.classes}`);
    }
    if (!(Number.isInteger(this.minObjects) && this.minObjects >= 1 && this.maxObjects >= this.minObjects)) {
      throw new Error(`scene objects must satisfy 1 ≤ min ≤ max, got ${this.minObjects}..${this.maxObjects}`);
    }
  }

  /** Scene number `index` (any order, any instance: same bytes). */
  scene(index: number): Scene {
    const R = this.size, n = R * R, rng = Rng.derive(this.seed, index);
    const image = rgbImage(R, R), classMap = labelMap(R, R), instanceMap = labelMap(R, R);
    this.#background(image, rng);
    // place objects; a candidate is rejected if it would hide over 60% of an earlier object
    const count = this.minObjects + rng.int(this.maxObjects - this.minObjects + 1);
    const placed: Placed[] = [], masks: Uint8Array[] = [], full: number[] = [];
    const owner = new Int32Array(n).fill(-1);
    for (let k = 0; k < count; k++) {
      for (let attempt = 0; attempt < 12; attempt++) {
        const p: Placed = {
          classId: 1 + rng.int(this.classes),
          r: rng.uniform(0.07, 0.2) * R,
          cx: 0,
          cy: 0,
          aspect: Math.exp(rng.uniform(-0.25, 0.25)),
          angle: rng.uniform(0, 2 * Math.PI),
        };
        p.cx = rng.uniform(0.3 * p.r, R - 0.3 * p.r);
        p.cy = rng.uniform(0.3 * p.r, R - 0.3 * p.r);
        const m = this.#mask(p);
        let area = 0;
        for (let i = 0; i < n; i++) area += m[i];
        if (area < 30) continue;
        const hidden = new Int32Array(placed.length);
        for (let i = 0; i < n; i++) if (m[i] && owner[i] >= 0) hidden[owner[i]]++;
        let ok = true;
        for (let j = 0; j < placed.length && ok; j++) {
          let visible = 0;
          for (let i = 0; i < n; i++) visible += owner[i] === j ? 1 : 0;
          if (visible - hidden[j] < 0.4 * full[j]) ok = false;
        }
        if (!ok) continue;
        for (let i = 0; i < n; i++) if (m[i]) owner[i] = placed.length;
        placed.push(p), masks.push(m), full.push(area);
        break;
      }
    }
    // paint in order (later objects occlude earlier ones)
    placed.forEach((p, j) => this.#paint(image, masks[j], p, rng));
    for (let i = 0; i < n; i++) {
      if (owner[i] >= 0) instanceMap.data[i] = owner[i] + 1, classMap.data[i] = placed[owner[i]].classId;
    }
    // per-pixel sensor noise over everything
    for (let i = 0; i < n * 3; i++) image.data[i] = clamp8(image.data[i] + 5 * rng.normal());
    const instances = placed.map((p, j): SceneInstance => {
      let x0 = R, y0 = R, x1 = -1, y1 = -1, area = 0;
      for (let y = 0; y < R; y++) {
        for (let x = 0; x < R; x++) {
          if (owner[y * R + x] !== j) continue;
          area++, x0 = Math.min(x0, x), x1 = Math.max(x1, x), y0 = Math.min(y0, y), y1 = Math.max(y1, y);
        }
      }
      return { id: j + 1, classId: p.classId, bbox: [x0, y0, x1 - x0 + 1, y1 - y0 + 1], area };
    });
    return { index, image, classMap, instanceMap, instances };
  }

  /** The binary mask of instance `id` of a scene. */
  static instanceMask(scene: Scene, id: number): Uint8Array {
    return Uint8Array.from(scene.instanceMap.data, (v) => (v === id ? 1 : 0));
  }

  #mask(p: Placed): Uint8Array {
    const R = this.size, m = new Uint8Array(R * R), shape = SHAPES[p.classId - 1];
    const c = Math.cos(p.angle), s = Math.sin(p.angle), ru = p.r * p.aspect, rv = p.r / p.aspect;
    const ext = Math.ceil(p.r * 1.3) + 1;
    for (let y = Math.max(0, Math.floor(p.cy - ext)); y < Math.min(R, Math.ceil(p.cy + ext)); y++) {
      for (let x = Math.max(0, Math.floor(p.cx - ext)); x < Math.min(R, Math.ceil(p.cx + ext)); x++) {
        const dx = x + 0.5 - p.cx, dy = y + 0.5 - p.cy;
        if (insideShape(shape, (c * dx + s * dy) / ru, (-s * dx + c * dy) / rv)) m[y * R + x] = 1;
      }
    }
    return m;
  }

  #paint(img: RgbImage, m: Uint8Array, p: Placed, rng: Rng): void {
    const base = hsv(
      (p.classId - 1) / this.classes + 0.08 * rng.normal(),
      rng.uniform(0.45, 0.95),
      rng.uniform(0.45, 0.95),
    );
    const tex = texture(TEXTURES[(p.classId - 1) % TEXTURES.length], rng), contrast = rng.uniform(0.12, 0.35);
    for (let i = 0; i < m.length; i++) {
      if (!m[i]) continue;
      const t = 1 + contrast * tex(i % this.size, Math.floor(i / this.size));
      for (let c = 0; c < 3; c++) img.data[i * 3 + c] = clamp8(base[c] * t);
    }
  }

  #background(img: RgbImage, rng: Rng): void {
    const R = this.size, g = 3 + rng.int(5); // value-noise grid of g+1 × g+1 colour nodes
    const base = hsv(rng.next(), rng.uniform(0, 0.5), rng.uniform(0.25, 0.85));
    const nodes = Array.from({ length: (g + 1) * (g + 1) }, () => [0, 1, 2].map((c) => base[c] + 45 * rng.normal()));
    const tex = texture(TEXTURES[rng.int(3)], rng), contrast = rng.uniform(0.03, 0.15);
    for (let y = 0; y < R; y++) {
      for (let x = 0; x < R; x++) {
        const fx = (x / R) * g, fy = (y / R) * g, ix = Math.floor(fx), iy = Math.floor(fy), ax = fx - ix, ay = fy - iy;
        const t = 1 + contrast * tex(x, y), o = (y * R + x) * 3;
        for (let c = 0; c < 3; c++) {
          const v = (1 - ay) * ((1 - ax) * nodes[iy * (g + 1) + ix][c] + ax * nodes[iy * (g + 1) + ix + 1][c]) +
            ay * ((1 - ax) * nodes[(iy + 1) * (g + 1) + ix][c] + ax * nodes[(iy + 1) * (g + 1) + ix + 1][c]);
          img.data[o + c] = clamp8(v * t);
        }
      }
    }
    // distractors: textured blobs of 2–3 overlapping ellipses in any colour (background, not objects)
    const blobs = rng.int(4);
    for (let b = 0; b < blobs; b++) {
      const col = hsv(rng.next(), rng.uniform(0.2, 0.9), rng.uniform(0.3, 0.9)), parts = 2 + rng.int(2);
      const btex = texture(TEXTURES[rng.int(TEXTURES.length)], rng), bc = rng.uniform(0, 0.3); // textured like objects
      const cx = rng.uniform(0, R), cy = rng.uniform(0, R);
      for (let k = 0; k < parts; k++) {
        const ex = cx + rng.uniform(-0.06, 0.06) * R, ey = cy + rng.uniform(-0.06, 0.06) * R;
        const rx = rng.uniform(0.03, 0.1) * R, ry = rng.uniform(0.03, 0.1) * R;
        for (let y = Math.max(0, Math.floor(ey - ry)); y < Math.min(R, Math.ceil(ey + ry)); y++) {
          for (let x = Math.max(0, Math.floor(ex - rx)); x < Math.min(R, Math.ceil(ex + rx)); x++) {
            const u = (x + 0.5 - ex) / rx, v = (y + 0.5 - ey) / ry;
            if (u * u + v * v > 1) continue;
            const t = 1 + bc * btex(x, y);
            for (let c = 0; c < 3; c++) img.data[(y * R + x) * 3 + c] = clamp8(col[c] * t);
          }
        }
      }
    }
  }
}

/** What {@link exportScenes} wrote. */
export interface SceneExport {
  /** Images written. */
  images: number;
  /** Object instances annotated. */
  instances: number;
  /** Path of the annotation file. */
  annotations: string;
}

/**
 * Writes scenes 0..count-1 as `images/NNNNNN.png`, class maps as 16-bit label-map PNGs
 * `classmaps/NNNNNN.png`, and `annotations.json` (COCO instances: boxes, compressed-RLE masks, categories
 * 1..C named after their shapes), so other tools can read the benchmark.
 */
export async function exportScenes(dir: string, gen: SceneGenerator, count: number): Promise<SceneExport> {
  const images = [], annotations: CocoAnnotation[] = [];
  for (let i = 0; i < count; i++) {
    const sc = gen.scene(i), name = `${String(i).padStart(6, "0")}.png`, R = gen.size;
    const png = encodePng({ width: R, height: R, channels: 3, depth: 8, samples: sc.image.data });
    await writeAtomic(join(dir, "images", name), png);
    await writeLabelMapPng(join(dir, "classmaps", name), sc.classMap, {
      kind: "scene-classes",
      seed: gen.seed,
      index: i,
    });
    images.push({ id: i + 1, file_name: `images/${name}`, width: R, height: R });
    for (const inst of sc.instances) {
      const counts = rleEncode(SceneGenerator.instanceMask(sc, inst.id), R, R);
      annotations.push({
        id: annotations.length + 1,
        image_id: i + 1,
        category_id: inst.classId,
        bbox: inst.bbox,
        area: inst.area,
        iscrowd: 0,
        segmentation: { size: [R, R], counts: rleToString(counts) },
      });
    }
  }
  const categories = sceneClassNames(gen.classes).map((name, c) => ({ id: c + 1, name, supercategory: "shape" }));
  const info = { description: "plrc procedural scenes", seed: gen.seed, size: gen.size, classes: gen.classes };
  const json = JSON.stringify({ info, images, annotations, categories });
  const annPath = join(dir, "annotations.json");
  await writeAtomic(annPath, new TextEncoder().encode(json));
  return { images: count, instances: annotations.length, annotations: annPath };
}
