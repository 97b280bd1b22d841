/**
 * The `knn` transfer protocol: region features from a frozen backbone (C4, or several levels concatenated,
 * averaged over each object's mask, cell by cell with the mask's area fraction as weight), classified by cosine k-nearest neighbours
 * against a bank of labelled regions from other images. A quick signal of whether features separate
 * object classes, usable during pre-training; `random` weights give the baseline.
 *
 * @module
 */
import type { Gpu } from "../gpu/device.ts";
import type { LabelMap, RgbImage } from "../data/image.ts";
import type { ResNetConfig } from "../models/resnet.ts";
import { concatLevels, frozenBackbone } from "./features.ts";
import { binomialSE } from "./bootstrap.ts";
import type { ParamStore } from "../nn/params.ts";

/** A labelled region of one image: its mask (instance id in a label map) and class. */
export interface LabelledImage {
  /** The image. */
  image: RgbImage;
  /** Instance id of each pixel, 0 background. */
  instances: LabelMap;
  /** class of each instance id (index = id); 0 = background / unused */
  classOf: number[];
}

/** Region features of one image's feature map [h·w, C] (NHWC rows): one L2-normalised vector per instance. */
export function regionFeatures(
  c5: ArrayLike<number>,
  h: number,
  w: number,
  C: number,
  instances: LabelMap,
  minCells = 0.25,
): { feature: Float64Array; instance: number }[] {
  const H = instances.height, W = instances.width;
  const weights = new Map<number, Float64Array>();
  for (let y = 0; y < H; y++) {
    for (let x = 0; x < W; x++) {
      const id = instances.data[y * W + x];
      if (id <= 0) continue;
      let wv = weights.get(id);
      if (!wv) weights.set(id, wv = new Float64Array(h * w));
      wv[Math.floor((y * h) / H) * w + Math.floor((x * w) / W)] += (h * w) / (H * W); // area fraction of a cell
    }
  }
  const out: { feature: Float64Array; instance: number }[] = [];
  for (const [id, wv] of [...weights].sort((a, b) => a[0] - b[0])) {
    let total = 0;
    const f = new Float64Array(C);
    for (let c = 0; c < h * w; c++) {
      if (!wv[c]) continue;
      total += wv[c];
      for (let k = 0; k < C; k++) f[k] += wv[c] * c5[c * C + k];
    }
    if (total < minCells) continue; // objects smaller than a quarter of a C5 cell carry no signal
    let n = 0;
    for (let k = 0; k < C; k++) n += f[k] * f[k];
    n = Math.sqrt(n) || 1;
    for (let k = 0; k < C; k++) f[k] /= n;
    out.push({ feature: f, instance: id });
  }
  return out;
}

/** Cosine k-NN with similarity-weighted votes; returns the predicted class of each query. */
export function knnClassify(bank: Float64Array[], bankLabels: number[], queries: Float64Array[], k: number): number[] {
  return queries.map((q) => {
    const sims = bank.map((b, i) => {
      let s = 0;
      for (let d = 0; d < q.length; d++) s += q[d] * b[d];
      return [s, i] as [number, number];
    }).sort((a, b) => b[0] - a[0] || a[1] - b[1]).slice(0, k);
    const votes = new Map<number, number>();
    for (const [s, i] of sims) votes.set(bankLabels[i], (votes.get(bankLabels[i]) ?? 0) + Math.exp(s / 0.07));
    return [...votes].sort((a, b) => b[1] - a[1] || a[0] - b[0])[0][0];
  });
}

/** The result of the protocol. */
export interface KnnResult {
  /** Which protocol made the result. */
  protocol: "knn";
  /** Feature levels, '+'-joined. */
  level: string;
  /** Neighbours voted over. */
  k: number;
  /** Bank images given. */
  trainImages: number;
  /** Query images given. */
  testImages: number;
  /** Regions in the bank. */
  trainRegions: number;
  /** Regions classified. */
  testRegions: number;
  /** Fraction of the query regions classified correctly. */
  accuracy: number;
  /** Binomial standard error of `accuracy` over the test regions. */
  accuracy_se: number;
  /** Images used: the bank's and the queries'. */
  train_images: number;
  /** Query images scored. */
  test_images: number;
  /** Accuracy of always answering the bank's most frequent class. */
  majority: number;
}

/**
 * Runs the frozen backbone (eval-mode BN) over `train` and `test` images (R×R, already the backbone's
 * resolution), builds the region bank from `train` and classifies the regions of `test`.
 */
export async function knnEval(
  gpu: Gpu,
  store: ParamStore,
  cfg: ResNetConfig,
  train: LabelledImage[],
  test: LabelledImage[],
  o: {
    k?: number;
    batch?: number;
    prefix?: string;
    mean: readonly number[];
    std: readonly number[];
    /**
     * Feature levels ("c4", "c3+c4", …; default C4): several are upsampled to the finest one's grid and
     * concatenated per cell before the region averages.
     */
    level?: string;
  },
): Promise<KnnResult> {
  const k = o.k ?? 5;
  const fb = await frozenBackbone(gpu, store, cfg, train[0].image.width, o);
  const { C, level } = fb, h = fb.levels[0].h, w = fb.levels[0].w;
  const features = async (imgs: LabelledImage[]) => {
    const out: { feature: Float64Array; label: number }[] = [];
    await fb.each(imgs.map((im) => im.image), (i, maps) => {
      const rows = maps.length === 1 ? maps[0] : concatLevels(maps, fb.levels, h);
      for (const r of regionFeatures(rows, h, w, C, imgs[i].instances)) {
        const label = imgs[i].classOf[r.instance] ?? 0;
        if (label > 0) out.push({ feature: r.feature, label });
      }
    });
    return out;
  };
  const bank = await features(train), queries = await features(test);
  fb.dispose();
  if (!bank.length || !queries.length) throw new Error("knn: no labelled regions large enough to use");
  const pred = knnClassify(bank.map((b) => b.feature), bank.map((b) => b.label), queries.map((q) => q.feature), k);
  const counts = new Map<number, number>();
  for (const b of bank) counts.set(b.label, (counts.get(b.label) ?? 0) + 1);
  const top = [...counts].sort((a, b) => b[1] - a[1])[0][0];
  const accuracy = pred.filter((p, i) => p === queries[i].label).length / queries.length;
  return {
    protocol: "knn",
    level,
    k,
    trainImages: train.length,
    testImages: test.length,
    trainRegions: bank.length,
    testRegions: queries.length,
    accuracy,
    accuracy_se: binomialSE(accuracy, queries.length),
    train_images: train.length,
    test_images: test.length,
    majority: queries.filter((q) => q.label === top).length / queries.length,
  };
}
