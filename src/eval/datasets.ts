/**
 * Labelled images for the evaluation protocols, from the built-in scenes or from a COCO-format folder,
 * all as R×R images with an instance map, a class map and boxes (classes 1..C in the maps, 0..C−1 in the
 * boxes, as the detector counts them).
 *
 * COCO folders: image `file_name`s are resolved against the folder; every image is stretched to R×R
 * (aspect not kept: the protocols bind one square input size), masks and boxes with it. Categories are
 * renumbered 1..C in file order. Crowd annotations are dropped (pycocotools would make them ignore regions;
 * this evaluation has none). Instances are painted in annotation order, later ones over earlier ones.
 *
 * @module
 */
import { join } from "node:path";
import { annotationMask, type CocoDataset } from "../data/coco.ts";
import { decodeFile } from "../data/decode.ts";
import { type LabelMap, labelMap, type RgbImage, rgbImage } from "../data/image.ts";
import { bilinearResize, resizeArea, resizeNearest } from "../data/resize.ts";
import { sceneClassNames, SceneGenerator } from "../data/scenes.ts";
import type { ClassBox } from "../losses/centernet.ts";

/** One labelled image, usable by every protocol. */
export interface EvalImage {
  /** The image. */
  image: RgbImage;
  /** 0 background, 1..n instance ids. */
  instances: LabelMap;
  /** Class (1..C) of each instance id. */
  classOf: number[];
  /** 0 background, 1..C classes. */
  classes: LabelMap;
  /** Boxes in pixels with classes 0..C−1. */
  boxes: ClassBox[];
}

/** A labelled set: images and the class names (index c names class c + 1). */
export interface EvalSet {
  /** The images. */
  images: EvalImage[];
  /** Names of classes 1..C. */
  classNames: string[];
}

/** Scenes `first`..`first + count − 1` of `gen`. */
export function sceneImages(gen: SceneGenerator, first: number, count: number): EvalImage[] {
  return Array.from({ length: count }, (_, i) => {
    const s = gen.scene(first + i);
    const classOf: number[] = [0];
    for (const inst of s.instances) classOf[inst.id] = inst.classId;
    const boxes = s.instances.filter((inst) => inst.area > 0).map((inst): ClassBox => {
      const [x, y, w, h] = inst.bbox;
      return { box: [x, y, x + w, y + h], classId: inst.classId - 1 };
    });
    return { image: s.image, instances: s.instanceMap, classOf, classes: s.classMap, boxes };
  });
}

/** The built-in scenes as an evaluation set. */
export function sceneSet(seed: number, size: number, classes: number, first: number, count: number): EvalSet {
  const gen = new SceneGenerator(seed, { size, classes });
  return { images: sceneImages(gen, first, count), classNames: sceneClassNames(classes) };
}

/**
 * The held-out built-in scenes every protocol evaluates on: the pre-training scenes' generator with another
 * seed (scenes.seed + 1 000 003), so no evaluation image was seen in pre-training.
 */
export function heldOutScenes(scenes: { seed: number; classes: number }, R: number, count: number): EvalSet {
  return sceneSet(scenes.seed + 1_000_003, R, scenes.classes, 0, count);
}

/** Bilinear RGB resize (align_corners = false); used for upscaling, where area averaging does not apply. */
export function resizeBilinear(img: RgbImage, width: number, height: number): RgbImage {
  const out = rgbImage(width, height), v = bilinearResize(img.data, img.height, img.width, 3, height, width);
  for (let i = 0; i < v.length; i++) out.data[i] = Math.round(v[i]);
  return out;
}

/** Any RGB image to R×R: area averaging where both sides shrink, bilinear otherwise. */
export function toSquare(img: RgbImage, R: number): RgbImage {
  if (img.width === R && img.height === R) return img;
  return img.width >= R && img.height >= R ? resizeArea(img, R, R) : resizeBilinear(img, R, R);
}

/** Images `first`..`first + count − 1` (file order) of a parsed COCO data set rooted at `dir`, at R×R. */
export async function cocoImages(
  dir: string,
  coco: CocoDataset,
  R: number,
  first: number,
  count: number,
): Promise<EvalImage[]> {
  const catIndex = new Map(coco.categories.map((c, i) => [c.id, i + 1]));
  const out: EvalImage[] = [];
  for (const im of coco.images.slice(first, first + count)) {
    const img = await decodeFile(join(dir, im.file_name));
    if (img.width !== im.width || img.height !== im.height) {
      throw new Error(`${im.file_name}: decoded ${img.width}×${img.height}, annotations say ${im.width}×${im.height}`);
    }
    const inst = labelMap(im.width, im.height), classOf: number[] = [0], boxes: ClassBox[] = [];
    const sx = R / im.width, sy = R / im.height;
    for (const a of coco.byImage.get(im.id) ?? []) {
      if (a.iscrowd) continue;
      const id = classOf.length, cls = catIndex.get(a.category_id)!;
      classOf.push(cls);
      const m = annotationMask(a, im.width, im.height);
      for (let p = 0; p < m.length; p++) if (m[p]) inst.data[p] = id;
      const [x, y, w, h] = a.bbox;
      boxes.push({ box: [x * sx, y * sy, (x + w) * sx, (y + h) * sy], classId: cls - 1 });
    }
    const instances = resizeNearest(inst, R, R);
    const classes = labelMap(R, R);
    for (let p = 0; p < R * R; p++) classes.data[p] = classOf[instances.data[p]] ?? 0;
    out.push({ image: toSquare(img, R), instances, classOf, classes, boxes });
  }
  return out;
}
