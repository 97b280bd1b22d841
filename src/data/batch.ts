/**
 * From decoded images (and optional region label maps) to PLRC training batches, as the release builds them.
 *
 * Per image: the A0/B0 crop pair (overlap ≥ 0.5, rejection-sampled) and an independent A1 crop; flips
 * (A views flip image and mask together, B0 independently, each p = 0.5); the photometric pipeline on each
 * view; S×S region masks of A0 and A1; common-region points; and the matched A0/B0 position pairs.
 * {@link makeSample} does one image (pure, worker-friendly); {@link collate} packs samples into a
 * {@link PlrcBatch}; {@link makeBatch} does both.
 *
 * Determinism: each image draws from its own generator `Rng.derive(seed, key)`, where `key` identifies the
 * sample in the data stream (e.g. epoch · datasetSize + position), so a batch does not depend on its
 * composition or on how many workers made it.
 *
 * @module
 */
import { Rng } from "../util/rng.ts";
import type { LabelMap, RgbImage } from "./image.ts";
import { type CropBox, cropCoords, type CropRanges, randomResizedCrop, resizedCrop, sampleCropPair } from "./crops.ts";
import { cutMask, type RegionSource } from "./regions.ts";
import { samplePoints } from "./points.ts";
import { matchPairs, rowPointers, transposeIndex } from "./pairs.ts";
import {
  DEFAULT_PHOTOMETRIC,
  IMAGENET_MEAN,
  IMAGENET_STD,
  normalizeInto,
  photometric,
  type PhotometricConfig,
} from "./augment.ts";

/** Data-pipeline configuration. */
export interface DataConfig {
  /** View size R (pixels); default 224. Must be a multiple of 4 unless `maskSize` is given. */
  resolution: number;
  /** Mask/pair grid S; default R/4 (56 at 224). */
  maskSize: number;
  /** G for the default G×G grid regions (used when an image has no label map); default 4. */
  grid: number;
  /** Region slots per image for point contrast; default 4 (1 reproduces the release). */
  regions: number;
  /** Points per region per view; default 16. */
  points: number;
  /** Base seed; default 0. */
  seed: number;
  /** RandomResizedCrop ranges; default scale (0.2, 1), ratio (3/4, 4/3). */
  crop: CropRanges;
  /** A0/B0 overlap threshold (intersection / max area); default 0.5. */
  minOverlap: number;
  /** Crop-pair draws before the last pair is taken as is; default 100. */
  maxPairTries: number;
  /** Horizontal flip probability per view; default 0.5. */
  flipP: number;
  /** A0/B0 match threshold as a fraction of the larger bin diagonal; default 0.5. */
  pairRatio: number;
  /** Photometric augmentation; default MoCo v2 aug+. `false` skips it (geometry only). */
  photometric: PhotometricConfig | false;
  /** Normalisation mean and std per channel; default ImageNet. */
  mean: readonly number[];
  /** Normalisation std per channel. */
  std: readonly number[];
}

/** Defaults: R 224, S 56, G 4, 4 regions × 16 points, MoCo v2 augmentation. */
export const DEFAULT_DATA_CONFIG: DataConfig = {
  resolution: 224,
  maskSize: 56,
  grid: 4,
  regions: 4,
  points: 16,
  seed: 0,
  crop: { scale: [0.2, 1], ratio: [3 / 4, 4 / 3] },
  minOverlap: 0.5,
  maxPairTries: 100,
  flipP: 0.5,
  pairRatio: 0.5,
  photometric: DEFAULT_PHOTOMETRIC,
  mean: IMAGENET_MEAN,
  std: IMAGENET_STD,
};

/** Fills defaults (S follows R unless given) and validates; throws RangeError on a bad value. */
export function dataConfig(partial: Partial<DataConfig> = {}): DataConfig {
  const resolution = partial.resolution ?? DEFAULT_DATA_CONFIG.resolution;
  const cfg: DataConfig = { ...DEFAULT_DATA_CONFIG, maskSize: resolution / 4, ...partial, resolution };
  const posInt = (v: number) => Number.isInteger(v) && v >= 1;
  if (!posInt(cfg.resolution)) throw new RangeError(`resolution must be a positive integer, got ${cfg.resolution}`);
  if (!posInt(cfg.maskSize)) {
    throw new RangeError(`maskSize must be a positive integer (R/4 by default), got ${cfg.maskSize}`);
  }
  for (const k of ["grid", "regions", "points"] as const) {
    if (!posInt(cfg[k])) throw new RangeError(`${k} must be a positive integer, got ${cfg[k]}`);
  }
  const { scale, ratio } = cfg.crop;
  if (!(scale[0] > 0 && scale[0] <= scale[1] && scale[1] <= 1)) throw new RangeError(`bad crop scale ${scale}`);
  if (!(ratio[0] > 0 && ratio[0] <= ratio[1])) throw new RangeError(`bad crop ratio ${ratio}`);
  if (!posInt(cfg.maxPairTries)) throw new RangeError(`maxPairTries must be a positive integer`);
  return cfg;
}

/** One input image, with an optional full-image region label map and its stream key. */
export interface BatchItem {
  /** The image. */
  image: RgbImage;
  /** Region labels for the full image (any size; sampled by nearest neighbour); default the G×G grid. */
  regions?: LabelMap;
  /** Identifies the sample in the data stream; its generator is `Rng.derive(cfg.seed, key)`. */
  key?: number;
}

/** The three views of a sample, in batch order. */
export const VIEWS = ["a0", "a1", "b0"] as const;

/** Everything made for one image. */
export interface PlrcSample {
  /** Normalised views, each [R, R, 3] HWC. */
  a0: Float32Array;
  /** Normalised A1 view [R, R, 3]. */
  a1: Float32Array;
  /** Normalised B0 view [R, R, 3]. */
  b0: Float32Array;
  /** Region masks of A0 and A1, [S, S]. */
  maskA0: Int32Array;
  /** Region mask of A1 [S, S]. */
  maskA1: Int32Array;
  /** Crop coords of A0, A1, B0 (`[x0, y0, x1, y1]`, x0 > x1 when flipped), as a [3, 4] block. */
  coords: Float64Array;
  /** Crop boxes and flips of A0, A1, B0 (for checks and visualisation). */
  boxes: { box: CropBox; flipped: boolean }[];
  /** Region label per slot (−1 invalid) and validity, [regions]. */
  regionLabel: Int32Array;
  /** 1 where the region slot is valid, else 0 [regions]. */
  valid: Uint8Array;
  /** Points [regions · points, 2] (x, y) in S-grid units for A0 and A1. */
  pointsA0: Float32Array;
  /** Points of A1, matching `pointsA0` row by row. */
  pointsA1: Float32Array;
  /** Matched (A0 position, B0 position) pairs sorted by A0 then B0; positions are row · S + col. */
  pairA: Uint32Array;
  /** B0 position of each pair. */
  pairB: Uint32Array;
  /** Crop-pair draws used, and whether the pair met the overlap rule. */
  pairTries: number;
  /** Whether the crop pair met the overlap rule. */
  pairAccepted: boolean;
}

/** Makes one sample from one image with its own generator (pure apart from `rng`). */
export function makeSample(item: BatchItem, cfg: DataConfig, rng: Rng): PlrcSample {
  const { image } = item, W = image.width, H = image.height, R = cfg.resolution, S = cfg.maskSize;
  const source: RegionSource = item.regions ? { kind: "map", map: item.regions } : { kind: "grid", grid: cfg.grid };
  const pair = sampleCropPair(W, H, rng, cfg.crop, cfg.minOverlap, cfg.maxPairTries);
  const a1Box = randomResizedCrop(W, H, rng, cfg.crop);
  const flipA0 = rng.next() < cfg.flipP, flipB0 = rng.next() < cfg.flipP, flipA1 = rng.next() < cfg.flipP;
  const boxes = [
    { box: pair.a, flipped: flipA0 },
    { box: a1Box, flipped: flipA1 },
    { box: pair.b, flipped: flipB0 },
  ];
  const coords = new Float64Array(12);
  const views = boxes.map(({ box, flipped }, v) => {
    coords.set(cropCoords(box, W, H, flipped), v * 4);
    const px = resizedCrop(image, box, R, flipped);
    if (cfg.photometric) photometric(px, R, cfg.photometric, rng);
    const out = new Float32Array(px.length);
    normalizeInto(px, out, 0, cfg.mean, cfg.std);
    return out;
  });
  const maskA0 = cutMask(source, W, H, pair.a, S, flipA0);
  const maskA1 = cutMask(source, W, H, a1Box, S, flipA1);
  const pts = samplePoints(maskA0, maskA1, S, cfg.regions, cfg.points, rng);
  const pairs = matchPairs(coords.subarray(0, 4), coords.subarray(8, 12), S, cfg.pairRatio);
  return {
    a0: views[0],
    a1: views[1],
    b0: views[2],
    maskA0,
    maskA1,
    coords,
    boxes,
    regionLabel: pts.regionLabel,
    valid: pts.valid,
    pointsA0: pts.a0,
    pointsA1: pts.a1,
    pairA: pairs.a,
    pairB: pairs.b,
    pairTries: pair.tries,
    pairAccepted: pair.accepted,
  };
}

/**
 * A batch of N images, every array ready for upload. R = resolution, S = maskSize, P = regions · points.
 *
 * - Views `viewA0`, `viewA1`, `viewB0`: Float32 [N, R, R, 3] NHWC, ImageNet-normalised.
 * - Masks `maskA0`, `maskA1`: Int32 [N, S, S], region labels of the view's cells (flipped with the view).
 * - Crop coords `coordA0`, `coordA1`, `coordB0`: Float32 [N, 4] `[x0, y0, x1, y1]`, x0 > x1 when flipped.
 * - Points `pointsA0`, `pointsA1`: Float32 [N · P, 2] (x = column, y = row) in S-grid units, cell (r, c)
 *   centred at (c + 0.5, r + 0.5); row n·P + s·points + p is image n, region slot s, point p (A0 and A1
 *   rows with the same index are the same region).
 * - `pointLabel`: Int32 [N · P], the (image, region) class n · regions + s, or −1 for an invalid slot;
 *   `pointValid`: Float32 [N · P], 1 or 0 (a ready-made loss weight). `regionLabel`: Int32 [N · regions],
 *   the source label of each slot (−1 invalid).
 * - Pairs: `pairA`, `pairB` Uint32 [M] (A0 position u and B0 position v, each row · S + col within the
 *   image), `pairImage` Uint32 [M]; pairs sorted by (image, u, v); `pairOffsets` Uint32 [N + 1] (image n owns
 *   pairs pairOffsets[n] .. pairOffsets[n+1]−1).
 * - CSR by A0 position: `a0Ptr` Uint32 [N · S² + 1]; global A0 position n·S² + u owns pairs
 *   a0Ptr[·] .. a0Ptr[· + 1]−1 (pairs are already in this order).
 * - CSR by B0 position (the transpose): `b0Ptr` Uint32 [N · S² + 1] and `b0Pairs` Uint32 [M]: global B0
 *   position n·S² + v owns pair ids b0Pairs[b0Ptr[·] .. b0Ptr[· + 1]−1], ascending (so by u).
 */
export interface PlrcBatch {
  /** Images N. */
  n: number;
  /** View side R. */
  resolution: number;
  /** Mask side S. */
  maskSize: number;
  /** Region slots per image. */
  regions: number;
  /** Points per region slot. */
  points: number;
  /** A0 views [N, R, R, 3]. */
  viewA0: Float32Array;
  /** A1 views [N, R, R, 3]. */
  viewA1: Float32Array;
  /** B0 views [N, R, R, 3]. */
  viewB0: Float32Array;
  /** A0 region masks [N, S, S]. */
  maskA0: Int32Array;
  /** A1 region masks [N, S, S]. */
  maskA1: Int32Array;
  /** A0 crop coords [N, 4]. */
  coordA0: Float32Array;
  /** A1 crop coords [N, 4]. */
  coordA1: Float32Array;
  /** B0 crop coords [N, 4]. */
  coordB0: Float32Array;
  /** A0 points [N · P, 2]. */
  pointsA0: Float32Array;
  /** A1 points [N · P, 2]. */
  pointsA1: Float32Array;
  /** (image, region) class of each point, −1 for an invalid slot [N · P]. */
  pointLabel: Int32Array;
  /** 1 for a point of a valid slot, else 0 [N · P]. */
  pointValid: Float32Array;
  /** Source label of each slot, −1 invalid [N · regions]. */
  regionLabel: Int32Array;
  /** A0 position of each pair [M]. */
  pairA: Uint32Array;
  /** B0 position of each pair [M]. */
  pairB: Uint32Array;
  /** Image of each pair [M]. */
  pairImage: Uint32Array;
  /** Pair range of each image [N + 1]. */
  pairOffsets: Uint32Array;
  /** Pair range of each global A0 position [N · S² + 1]. */
  a0Ptr: Uint32Array;
  /** Range in `b0Pairs` of each global B0 position [N · S² + 1]. */
  b0Ptr: Uint32Array;
  /** Pair ids by B0 position [M]. */
  b0Pairs: Uint32Array;
  /** Crop-pair draws per image (diagnostics). */
  pairTries: Uint32Array;
}

/** Packs samples (all made with `cfg`) into one batch. */
export function collate(samples: PlrcSample[], cfg: DataConfig): PlrcBatch {
  const n = samples.length, R = cfg.resolution, S = cfg.maskSize, S2 = S * S;
  const view = R * R * 3, P = cfg.regions * cfg.points;
  const b: PlrcBatch = {
    n,
    resolution: R,
    maskSize: S,
    regions: cfg.regions,
    points: cfg.points,
    viewA0: new Float32Array(n * view),
    viewA1: new Float32Array(n * view),
    viewB0: new Float32Array(n * view),
    maskA0: new Int32Array(n * S2),
    maskA1: new Int32Array(n * S2),
    coordA0: new Float32Array(n * 4),
    coordA1: new Float32Array(n * 4),
    coordB0: new Float32Array(n * 4),
    pointsA0: new Float32Array(n * P * 2),
    pointsA1: new Float32Array(n * P * 2),
    pointLabel: new Int32Array(n * P),
    pointValid: new Float32Array(n * P),
    regionLabel: new Int32Array(n * cfg.regions),
    pairA: new Uint32Array(0),
    pairB: new Uint32Array(0),
    pairImage: new Uint32Array(0),
    pairOffsets: new Uint32Array(n + 1),
    a0Ptr: new Uint32Array(0),
    b0Ptr: new Uint32Array(0),
    b0Pairs: new Uint32Array(0),
    pairTries: new Uint32Array(n),
  };
  samples.forEach((s, i) => {
    b.viewA0.set(s.a0, i * view);
    b.viewA1.set(s.a1, i * view);
    b.viewB0.set(s.b0, i * view);
    b.maskA0.set(s.maskA0, i * S2);
    b.maskA1.set(s.maskA1, i * S2);
    b.coordA0.set(s.coords.subarray(0, 4), i * 4);
    b.coordA1.set(s.coords.subarray(4, 8), i * 4);
    b.coordB0.set(s.coords.subarray(8, 12), i * 4);
    b.pointsA0.set(s.pointsA0, i * P * 2);
    b.pointsA1.set(s.pointsA1, i * P * 2);
    b.regionLabel.set(s.regionLabel, i * cfg.regions);
    for (let r = 0; r < cfg.regions; r++) {
      const ok = s.valid[r] === 1;
      b.pointLabel.fill(ok ? i * cfg.regions + r : -1, i * P + r * cfg.points, i * P + (r + 1) * cfg.points);
      b.pointValid.fill(ok ? 1 : 0, i * P + r * cfg.points, i * P + (r + 1) * cfg.points);
    }
    b.pairOffsets[i + 1] = b.pairOffsets[i] + s.pairA.length;
    b.pairTries[i] = s.pairTries;
  });
  const M = b.pairOffsets[n];
  b.pairA = new Uint32Array(M);
  b.pairB = new Uint32Array(M);
  b.pairImage = new Uint32Array(M);
  const aKeys = new Uint32Array(M), bKeys = new Uint32Array(M);
  samples.forEach((s, i) => {
    const o = b.pairOffsets[i];
    b.pairA.set(s.pairA, o);
    b.pairB.set(s.pairB, o);
    b.pairImage.fill(i, o, o + s.pairA.length);
    for (let m = 0; m < s.pairA.length; m++) {
      aKeys[o + m] = i * S2 + s.pairA[m];
      bKeys[o + m] = i * S2 + s.pairB[m];
    }
  });
  b.a0Ptr = rowPointers(aKeys, n * S2);
  const t = transposeIndex(bKeys, n * S2);
  b.b0Ptr = t.ptr;
  b.b0Pairs = t.entries;
  return b;
}

/**
 * Splits a batch into `parts` batches of consecutive images, each equal to {@link collate} of its images'
 * samples (labels, pair images and the pair indices re-based). Gradient accumulation runs these one after
 * another within a step.
 */
export function splitBatch(b: PlrcBatch, parts: number): PlrcBatch[] {
  if (!Number.isInteger(parts) || parts < 1 || b.n % parts) {
    throw new Error(`splitBatch: a batch of ${b.n} images does not split into ${parts} equal parts`);
  }
  if (parts === 1) return [b];
  const n = b.n / parts, R = b.resolution, S2 = b.maskSize * b.maskSize, view = R * R * 3;
  const P = b.regions * b.points;
  return Array.from({ length: parts }, (_, k) => {
    const i0 = k * n;
    // views, not copies: a step splits every batch, and the paper preset's views are ~460 MB
    const per = <T extends Float32Array | Int32Array | Uint32Array>(a: T, size: number) =>
      a.subarray(i0 * size, (i0 + n) * size) as T;
    const p0 = b.pairOffsets[i0], p1 = b.pairOffsets[i0 + n];
    const pairImage = b.pairImage.subarray(p0, p1).map((i) => i - i0);
    const pairA = b.pairA.subarray(p0, p1), pairB = b.pairB.subarray(p0, p1);
    const aKeys = pairA.map((a, m) => pairImage[m] * S2 + a), bKeys = pairB.map((v, m) => pairImage[m] * S2 + v);
    const t = transposeIndex(bKeys, n * S2);
    return {
      n,
      resolution: R,
      maskSize: b.maskSize,
      regions: b.regions,
      points: b.points,
      viewA0: per(b.viewA0, view),
      viewA1: per(b.viewA1, view),
      viewB0: per(b.viewB0, view),
      maskA0: per(b.maskA0, S2),
      maskA1: per(b.maskA1, S2),
      coordA0: per(b.coordA0, 4),
      coordA1: per(b.coordA1, 4),
      coordB0: per(b.coordB0, 4),
      pointsA0: per(b.pointsA0, P * 2),
      pointsA1: per(b.pointsA1, P * 2),
      pointLabel: per(b.pointLabel, P).map((l) => (l < 0 ? l : l - i0 * b.regions)),
      pointValid: per(b.pointValid, P),
      regionLabel: per(b.regionLabel, b.regions),
      pairA,
      pairB,
      pairImage,
      pairOffsets: b.pairOffsets.slice(i0, i0 + n + 1).map((o) => o - p0),
      a0Ptr: rowPointers(aKeys, n * S2),
      b0Ptr: t.ptr,
      b0Pairs: t.entries,
      pairTries: per(b.pairTries, 1),
    };
  });
}

/**
 * Makes a batch. Image n uses `Rng.derive(cfg.seed, items[n].key)`; items without a key get a generator
 * seeded from one draw of `rng` (so batches made that way depend on the order of calls).
 */
export function makeBatch(items: BatchItem[], cfg: DataConfig, rng?: Rng): PlrcBatch {
  const samples = items.map((item) => {
    if (item.key !== undefined) return makeKeyedSample(item as BatchItem & { key: number }, cfg);
    if (!rng) throw new Error("makeBatch: items without a key need an rng");
    return makeSample(item, cfg, new Rng(Math.floor(rng.next() * 4294967296)));
  });
  return collate(samples, cfg);
}

/** The sample of an item with a stream key, from `Rng.derive(cfg.seed, key)` (as {@link makeBatch} makes it). */
export function makeKeyedSample(item: BatchItem & { key: number }, cfg: DataConfig): PlrcSample {
  return makeSample(item, cfg, Rng.derive(cfg.seed, item.key));
}

/** The distinct buffers of a sample's arrays, to transfer it between threads without copying. */
export function sampleBuffers(s: PlrcSample): ArrayBuffer[] {
  const arrays = [s.a0, s.a1, s.b0, s.maskA0, s.maskA1, s.coords, s.regionLabel, s.valid, s.pointsA0, s.pointsA1];
  return [...new Set([...arrays, s.pairA, s.pairB].map((a) => a.buffer as ArrayBuffer))];
}
