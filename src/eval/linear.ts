/**
 * The `linear` transfer protocol: a frozen backbone, a per-pixel linear classifier (softmax regression) on
 * its C4 (or C5) features bilinearly upsampled to a T×T grid, trained on labelled images' class maps and
 * scored by mean IoU on held-out images. The classifier is small (C features × K classes), so it is
 * trained on the host in float64 by full-batch gradient descent on standardised features.
 *
 * @module
 */
import type { Gpu } from "../gpu/device.ts";
import type { LabelMap, RgbImage } from "../data/image.ts";
import type { ResNetConfig } from "../models/resnet.ts";
import { frozenBackbone } from "./features.ts";
import type { ParamStore } from "../nn/params.ts";

/** An image with its per-pixel class map (0 = background). */
export interface SegImage {
  image: RgbImage;
  classes: LabelMap;
}

/** Bilinear upsampling (align_corners = false) of one h×w×C map (NHWC rows) to T×T. */
export function upsampleBilinear(f: ArrayLike<number>, h: number, w: number, C: number, T: number): Float64Array {
  const out = new Float64Array(T * T * C);
  for (let y = 0; y < T; y++) {
    const sy = Math.min(Math.max((y + 0.5) * h / T - 0.5, 0), h - 1);
    const y0 = Math.floor(sy), y1 = Math.min(y0 + 1, h - 1), fy = sy - y0;
    for (let x = 0; x < T; x++) {
      const sx = Math.min(Math.max((x + 0.5) * w / T - 0.5, 0), w - 1);
      const x0 = Math.floor(sx), x1 = Math.min(x0 + 1, w - 1), fx = sx - x0;
      for (let c = 0; c < C; c++) {
        const v = (1 - fy) * ((1 - fx) * f[(y0 * w + x0) * C + c] + fx * f[(y0 * w + x1) * C + c]) +
          fy * ((1 - fx) * f[(y1 * w + x0) * C + c] + fx * f[(y1 * w + x1) * C + c]);
        out[(y * T + x) * C + c] = v;
      }
    }
  }
  return out;
}

/** Class of each T×T cell: the class map sampled at the cell centre. */
export function downsampleLabels(m: LabelMap, T: number): Int32Array {
  const out = new Int32Array(T * T);
  for (let y = 0; y < T; y++) {
    for (let x = 0; x < T; x++) {
      out[y * T + x] = m.data[Math.floor((y + 0.5) * m.height / T) * m.width + Math.floor((x + 0.5) * m.width / T)];
    }
  }
  return out;
}

/** Mean IoU over the classes present in the labels or the predictions (0..K−1). */
export function meanIoU(pred: ArrayLike<number>, label: ArrayLike<number>, K: number): { miou: number; iou: number[] } {
  const inter = new Float64Array(K), uni = new Float64Array(K);
  for (let i = 0; i < label.length; i++) {
    const p = pred[i], l = label[i];
    if (p === l) inter[l]++, uni[l]++;
    else uni[p]++, uni[l]++;
  }
  const iou: number[] = [];
  for (let k = 0; k < K; k++) if (uni[k] > 0) iou.push(inter[k] / uni[k]);
  return { miou: iou.reduce((a, b) => a + b, 0) / Math.max(iou.length, 1), iou };
}

/**
 * Softmax regression on standardised features by full-batch gradient descent (plain cross-entropy, as a
 * linear probe; `balanced` weighs each present class equally instead); returns a predictor.
 */
export function trainLinear(
  x: Float64Array,
  y: Int32Array,
  C: number,
  K: number,
  o: { iterations?: number; lr?: number; l2?: number; balanced?: boolean } = {},
): (f: Float64Array) => Int32Array {
  const N = y.length, iters = o.iterations ?? 300, lr = o.lr ?? 0.5, l2 = o.l2 ?? 1e-4;
  const mean = new Float64Array(C), std = new Float64Array(C);
  for (let i = 0; i < N; i++) for (let c = 0; c < C; c++) mean[c] += x[i * C + c] / N;
  for (let i = 0; i < N; i++) for (let c = 0; c < C; c++) std[c] += (x[i * C + c] - mean[c]) ** 2 / N;
  for (let c = 0; c < C; c++) std[c] = Math.sqrt(std[c]) || 1;
  const z = Float64Array.from(x, (v, i) => (v - mean[i % C]) / std[i % C]);
  const counts = new Float64Array(K);
  for (let i = 0; i < N; i++) counts[y[i]]++;
  const present = counts.filter((c) => c > 0).length;
  const cw = Float64Array.from(counts, (c) => (!o.balanced ? 1 : c > 0 ? N / (present * c) : 0));
  const W = new Float64Array((C + 1) * K); // last row: bias
  const logits = new Float64Array(K), grad = new Float64Array((C + 1) * K);
  for (let it = 0; it < iters; it++) {
    grad.fill(0);
    for (let i = 0; i < N; i++) {
      let m = -Infinity;
      for (let k = 0; k < K; k++) {
        let s = W[C * K + k];
        for (let c = 0; c < C; c++) s += z[i * C + c] * W[c * K + k];
        logits[k] = s, m = Math.max(m, s);
      }
      let sum = 0;
      for (let k = 0; k < K; k++) sum += logits[k] = Math.exp(logits[k] - m);
      for (let k = 0; k < K; k++) {
        const g = (cw[y[i]] * (logits[k] / sum - (k === y[i] ? 1 : 0))) / N;
        if (g === 0) continue;
        for (let c = 0; c < C; c++) grad[c * K + k] += g * z[i * C + c];
        grad[C * K + k] += g;
      }
    }
    for (let j = 0; j < W.length; j++) W[j] -= lr * (grad[j] + (j < C * K ? l2 * W[j] : 0));
  }
  return (f: Float64Array) => {
    const n = f.length / C, out = new Int32Array(n);
    for (let i = 0; i < n; i++) {
      let best = -Infinity;
      for (let k = 0; k < K; k++) {
        let s = W[C * K + k];
        for (let c = 0; c < C; c++) s += ((f[i * C + c] - mean[c]) / std[c]) * W[c * K + k];
        if (s > best) best = s, out[i] = k;
      }
    }
    return out;
  };
}

/** Every ⌈N / max⌉-th pixel (features and label), so that at most `max` remain; all when N ≤ max. */
export function subsamplePixels(
  feats: Float64Array,
  labels: Int32Array,
  C: number,
  max: number,
): { feats: Float64Array; labels: Int32Array } {
  const N = labels.length, step = Math.max(1, Math.ceil(N / max));
  if (step === 1) return { feats, labels };
  const n = Math.ceil(N / step), f = new Float64Array(n * C), l = new Int32Array(n);
  for (let j = 0; j < n; j++) {
    f.set(feats.subarray(j * step * C, (j * step + 1) * C), j * C);
    l[j] = labels[j * step];
  }
  return { feats: f, labels: l };
}

/** The result of the protocol. */
export interface LinearResult {
  protocol: "linear";
  level: "c4" | "c5";
  grid: number;
  trainImages: number;
  testImages: number;
  miou: number;
  pixelAccuracy: number;
  /** mIoU of predicting the most frequent training class everywhere. */
  majorityMiou: number;
}

/** Runs the frozen backbone over the images, trains the probe on `train`, scores `test`. */
export async function linearEval(
  gpu: Gpu,
  store: ParamStore,
  cfg: ResNetConfig,
  train: SegImage[],
  test: SegImage[],
  o: {
    classes: number;
    mean: readonly number[];
    std: readonly number[];
    level?: "c4" | "c5";
    batch?: number;
    balanced?: boolean;
    /** Training pixels kept (an even stride over all of them), which bounds the host regression's cost. */
    maxTrainPixels?: number;
  },
): Promise<LinearResult> {
  const R = train[0].image.width, K = o.classes + 1;
  const fb = await frozenBackbone(gpu, store, cfg, R, o);
  const { h, w, C, level } = fb;
  const T = Math.min(R, 4 * h);
  const collect = async (imgs: SegImage[]) => {
    const feats = new Float64Array(imgs.length * T * T * C), labels = new Int32Array(imgs.length * T * T);
    await fb.each(imgs.map((im) => im.image), (i, rows) => {
      feats.set(upsampleBilinear(rows, h, w, C, T), i * T * T * C);
      labels.set(downsampleLabels(imgs[i].classes, T), i * T * T);
    });
    return { feats, labels };
  };
  const tr = await collect(train), te = await collect(test);
  fb.dispose();
  const sub = subsamplePixels(tr.feats, tr.labels, C, o.maxTrainPixels ?? 32768);
  const predict = trainLinear(sub.feats, sub.labels, C, K, { balanced: o.balanced ?? false });
  const pred = predict(te.feats);
  const counts = new Float64Array(K);
  for (const l of tr.labels) counts[l]++;
  const top = counts.indexOf(Math.max(...counts));
  return {
    protocol: "linear",
    level,
    grid: T,
    trainImages: train.length,
    testImages: test.length,
    miou: meanIoU(pred, te.labels, K).miou,
    pixelAccuracy: pred.filter((p, i) => p === te.labels[i]).length / pred.length,
    majorityMiou: meanIoU(new Int32Array(te.labels.length).fill(top), te.labels, K).miou,
  };
}
