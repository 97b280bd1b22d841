/**
 * The test set's own error, so that a difference between two backbones can be held against it: the
 * binomial standard error of an accuracy over n independent test items, and the bootstrap standard error
 * of a metric that does not decompose into independent items (mIoU, AP): resample the test images with
 * replacement, recompute the metric, take the standard deviation over the resamples.
 *
 * @module
 */
import { Rng } from "../util/rng.ts";
import { type Detection, evaluateDetections, type GtBox } from "./ap.ts";

/** Resamples drawn by default, and their seed (fixed: the same test set gives the same error). */
export const BOOTSTRAP_RESAMPLES = 200;
export const BOOTSTRAP_SEED = 0x5eed;

/** Binomial standard error sqrt(p(1 − p)/n) of a proportion p over n items (0 for n = 0). */
export function binomialSE(p: number, n: number): number {
  return n > 0 ? Math.sqrt((p * (1 - p)) / n) : 0;
}

/** `resamples` index lists of n items each, drawn uniformly with replacement from 0..n−1. */
export function resampleIndices(n: number, resamples = BOOTSTRAP_RESAMPLES, seed = BOOTSTRAP_SEED): Int32Array[] {
  const rng = new Rng(seed);
  return Array.from({ length: resamples }, () => Int32Array.from({ length: n }, () => rng.int(n)));
}

/** Sample standard deviation (n − 1 in the denominator) of the metric over the resamples of n items. */
export function bootstrapSE(
  n: number,
  metric: (indices: Int32Array) => number,
  o: { resamples?: number; seed?: number } = {},
): number {
  return sd(resampleIndices(n, o.resamples, o.seed).map(metric));
}

/** One image's per-class pixel counts: predicted ∧ true, predicted, true (classes 0..K−1). */
export interface ImageCounts {
  inter: Float64Array;
  pred: Float64Array;
  label: Float64Array;
}

/** The counts of one image's predicted and true classes. */
export function imageCounts(pred: ArrayLike<number>, label: ArrayLike<number>, K: number): ImageCounts {
  const c = { inter: new Float64Array(K), pred: new Float64Array(K), label: new Float64Array(K) };
  for (let i = 0; i < label.length; i++) {
    c.pred[pred[i]]++, c.label[label[i]]++;
    if (pred[i] === label[i]) c.inter[label[i]]++;
  }
  return c;
}

/**
 * Mean IoU of the images `indices` (repeats count again) from their counts: IoU_k = Σ∩ / (Σpred + Σtrue − Σ∩)
 * over the classes present in the predictions or the labels, as `meanIoU` of their pixels together.
 */
export function miouOfImages(counts: ImageCounts[], indices: ArrayLike<number>): number {
  const K = counts[0]?.inter.length ?? 0, inter = new Float64Array(K), uni = new Float64Array(K);
  for (let j = 0; j < indices.length; j++) {
    const c = counts[indices[j]];
    for (let k = 0; k < K; k++) inter[k] += c.inter[k], uni[k] += c.pred[k] + c.label[k] - c.inter[k];
  }
  let sum = 0, n = 0;
  for (let k = 0; k < K; k++) if (uni[k] > 0) sum += inter[k] / uni[k], n++;
  return sum / Math.max(n, 1);
}

/** Bootstrap standard errors of AP@[.5:.95] and AP50 over images, from each image's detections and ground truth. */
export function apBootstrapSE(
  dets: Detection[][],
  gts: GtBox[][],
  classes: number,
  o: { resamples?: number; seed?: number } = {},
): { ap: number; ap50: number } {
  const metric = (idx: ArrayLike<number>) => {
    // a resampled image is a new image (its own id), so that a repeat is matched on its own
    const d: Detection[] = [], g: GtBox[] = [];
    for (let j = 0; j < idx.length; j++) {
      for (const x of dets[idx[j]]) d.push({ ...x, image: j });
      for (const x of gts[idx[j]]) g.push({ ...x, image: j });
    }
    return evaluateDetections(d, g, classes);
  };
  const ap: number[] = [], ap50: number[] = [];
  for (const idx of resampleIndices(dets.length, o.resamples, o.seed)) {
    const r = metric(idx);
    ap.push(r.ap), ap50.push(r.ap50);
  }
  return { ap: sd(ap), ap50: sd(ap50) };
}

/** Sample standard deviation (0 for fewer than two values). */
export function sd(values: number[]): number {
  if (values.length < 2) return 0;
  // shifted by the first value, so that equal values give exactly 0
  const d = values.map((v) => v - values[0]), m = d.reduce((a, v) => a + v, 0) / d.length;
  return Math.sqrt(d.reduce((a, v) => a + (v - m) ** 2, 0) / (d.length - 1));
}
