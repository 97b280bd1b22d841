/**
 * COCO-style average precision for box detections, following pycocotools' `COCOeval` for one area range
 * ("all") and no crowd regions: per class and IoU threshold, detections of all images are ranked by score
 * (stable, so ties keep image order), each is greedily matched to the unmatched ground-truth box of its
 * image with the highest IoU at or above the threshold, and precision is made monotone and sampled at the
 * 101 recall points 0, 0.01, ..., 1 (0 where the recall is never reached). AP@[.5:.95] averages the ten
 * thresholds .5, .55, ..., .95; both it and AP50 are averaged over the classes that have ground truth.
 *
 * @module
 */

/** A box [x0, y0, x1, y1] in pixels (x1 ≥ x0, y1 ≥ y0). */
export type Box = [number, number, number, number];

/** A ground-truth object. */
export interface GtBox {
  /** Index of the image the object is in. */
  image: number;
  /** Class 0..K−1. */
  classId: number;
  /** Corners [x0, y0, x1, y1] in pixels. */
  box: Box;
}

/** A scored detection. */
export interface Detection extends GtBox {
  /** Confidence; detections are ranked by it. */
  score: number;
}

/** pycocotools' IoU thresholds .5:.05:.95, bit for bit as `np.linspace(.5, .95, 10)` computes them. */
export const IOU_THRESHOLDS: readonly number[] = Array.from(
  { length: 10 },
  (_, i) => i < 9 ? i * ((0.95 - 0.5) / 9) + 0.5 : 0.95,
);

/** Intersection over union of two boxes (0 when both are empty). */
export function iou(a: Box, b: Box): number {
  const iw = Math.min(a[2], b[2]) - Math.max(a[0], b[0]), ih = Math.min(a[3], b[3]) - Math.max(a[1], b[1]);
  if (iw <= 0 || ih <= 0) return 0;
  const inter = iw * ih;
  const union = (a[2] - a[0]) * (a[3] - a[1]) + (b[2] - b[0]) * (b[3] - b[1]) - inter;
  return union > 0 ? inter / union : 0;
}

/**
 * AP of one class at one IoU threshold: `dets` and `gts` of that class only. Returns NaN when there is
 * no ground truth (the class does not count).
 */
export function averagePrecision(dets: Detection[], gts: GtBox[], threshold: number): number {
  if (gts.length === 0) return NaN;
  const byImage = new Map<number, { box: Box; matched: boolean }[]>();
  for (const g of gts) {
    const list = byImage.get(g.image) ?? [];
    list.push({ box: g.box, matched: false });
    byImage.set(g.image, list);
  }
  // Array.prototype.sort is stable, as pycocotools' mergesort
  const order = dets.map((_, i) => i).sort((a, b) => dets[b].score - dets[a].score);
  const t = Math.min(threshold, 1 - 1e-10);
  const tp = new Uint8Array(order.length);
  order.forEach((di, rank) => {
    const d = dets[di];
    let best = t, m: { matched: boolean } | null = null;
    for (const g of byImage.get(d.image) ?? []) {
      if (g.matched) continue;
      const v = iou(d.box, g.box);
      if (v < best) continue;
      best = v, m = g;
    }
    if (m) m.matched = true, tp[rank] = 1;
  });
  const n = order.length, precision = new Float64Array(n), recall = new Float64Array(n);
  let ctp = 0;
  for (let i = 0; i < n; i++) {
    ctp += tp[i];
    precision[i] = ctp / (i + 1);
    recall[i] = ctp / gts.length;
  }
  for (let i = n - 2; i >= 0; i--) precision[i] = Math.max(precision[i], precision[i + 1]);
  let sum = 0, i = 0;
  for (let r = 0; r <= 100; r++) {
    const rt = r / 100;
    while (i < n && recall[i] < rt) i++; // first rank reaching recall rt (searchsorted, left)
    if (i < n) sum += precision[i];
  }
  return sum / 101;
}

/** AP per class (NaN for classes without ground truth) and the class means. */
export interface ApResult {
  /** AP@[.5:.95] averaged over classes with ground truth. */
  ap: number;
  /** AP at IoU .5, averaged likewise. */
  ap50: number;
  /** AP at IoU .75. */
  ap75: number;
  /** Per class id (index = class id): AP@[.5:.95] and AP50; NaN where the class has no ground truth. */
  perClass: { ap: number; ap50: number }[];
}

/** COCO-style AP over classes 0..classes−1 (ids outside are ignored). */
export function evaluateDetections(dets: Detection[], gts: GtBox[], classes: number): ApResult {
  const perClass: { ap: number; ap50: number }[] = [];
  let ap = 0, ap50 = 0, ap75 = 0, counted = 0;
  for (let c = 0; c < classes; c++) {
    const g = gts.filter((x) => x.classId === c), d = dets.filter((x) => x.classId === c);
    if (g.length === 0) {
      perClass.push({ ap: NaN, ap50: NaN });
      continue;
    }
    const at = IOU_THRESHOLDS.map((t) => averagePrecision(d, g, t));
    const a = at.reduce((s, v) => s + v, 0) / at.length;
    perClass.push({ ap: a, ap50: at[0] });
    ap += a, ap50 += at[0], ap75 += at[5], counted++;
  }
  const k = Math.max(counted, 1);
  return { ap: ap / k, ap50: ap50 / k, ap75: ap75 / k, perClass };
}
