/**
 * The `detect` transfer protocol: a small CenterNet-style dense detector on the backbone's stride-8 map
 * C3 (the network cut after its second stage), trained end to end (backbone fine-tuned) on a limited
 * labelled set and scored by COCO-style AP on held-out images.
 *
 * Head: conv 3×3 (C3 → `headWidth`, bias) → ReLU → conv 1×1 (→ K + 4, bias): K class heat-map logits, log
 * box size and centre offset per cell (see `losses/centernet.ts`). The heat-map bias starts at −log(99) so
 * every cell first predicts p = 0.01 (the focal-loss prior; CenterNet uses p ≈ 0.1).
 *
 * Training: one GPU submission per step (upload, forward, loss and its gradient, head and backbone
 * backward, SGD with momentum over backbone and head together), losses read back through a lagging ring.
 * The backbone's BN runs in training mode (batch statistics, running statistics updated), as MoCo's and
 * PLRC's detection transfer fine-tunes with synchronised BN; a frozen BN would leave a randomly
 * initialised backbone (running statistics 0/1) unnormalised. Evaluation runs in eval mode on the
 * running statistics. Augmentation: a random horizontal flip.
 *
 * With `freezeBackbone` only the head trains: the backbone runs in eval mode (running statistics, as the
 * frozen-feature protocols and detectron2's FrozenBN) in training and evaluation, and neither its backward
 * pass nor an SGD step over its parameters is bound, so a step costs the forward and the head's backward.
 * The features then decide the score alone, as in a linear probe, so C3 is normalised before the head by
 * fixed statistics measured over the training images (one eval-mode pass before training, float64 on the
 * host): each channel is centred on its mean and every channel is divided by one scale, the RMS of the
 * channels' standard deviations, with no gradient to either. Without it one head learning rate cannot
 * suit all backbones: a random init's BN (running statistics 0/1) passes large activations, a pre-trained
 * one small ones, and the head learns at a pace set by that scale rather than by what the features tell
 * apart. The scale is one number, not one per channel: after a ReLU many channels fire in a few cells
 * only, and dividing each by its own small std turns those cells into values in the hundreds (a ResNet-50
 * ×0.5's 256 C3 channels made the head's loss diverge that way in most runs). So the protocol is
 * invariant to a scale of C3, and a channel keeps its size relative to the others.
 * The fine-tuned protocol keeps raw C3 (its BN in training mode normalises).
 *
 * Every epoch visits each training image once: ⌈N/B⌉ batches, the last one filled up from the start of
 * the epoch's order, so that `--train N` means N images even when B does not divide N.
 *
 * Decoding: a cell is a peak when its score is the maximum of its 3×3 neighbourhood (CenterNet's max-pool
 * NMS); the top 100 peaks of an image over all classes become boxes.
 *
 * @module
 */
import { TensorArena } from "../gpu/bound.ts";
import { EVAL_MEMORY_HINT, type Gpu, withMemoryCheck } from "../gpu/device.ts";
import { Recorder, sync } from "../gpu/recorder.ts";
import type { Dispatch } from "../gpu/kernel.ts";
import { Tensor } from "../gpu/tensor.ts";
import type { RgbImage } from "../data/image.ts";
import { bnForwardEval } from "../kernels/batchnorm.ts";
import { reluBackward } from "../kernels/elementwise.ts";
import { convDgrad, convForward, type ConvGeom, convWgrad } from "../kernels/gemm.ts";
import { sgdStep } from "../kernels/optim.ts";
import { reduceAxis } from "../kernels/reduce.ts";
import { buildCenterNetLoss, centerNetTargets, type ClassBox } from "../losses/centernet.ts";
import { buildResNet, type ResNetConfig, type ResNetGraph, resnetSpecs, resnetWidths } from "../models/resnet.ts";
import { isTrainable, type ParamSpec, ParamStore } from "../nn/params.ts";
import { MetricsRing } from "../train/metrics_ring.ts";
import { cosineLr } from "../train/schedule.ts";
import { Rng } from "../util/rng.ts";
import { type Detection, evaluateDetections, type GtBox } from "./ap.ts";
import { apBootstrapSE } from "./bootstrap.ts";

/** Stride of C3. */
export const DETECT_STRIDE = 8;

/** A labelled image: R×R pixels and its objects' boxes (pixels) with classes 0..K−1. */
export interface DetImage {
  /** The image, R×R. */
  image: RgbImage;
  /** Its objects' boxes. */
  boxes: ClassBox[];
}

/** Protocol settings. */
export interface DetectOptions {
  /** Number of classes K. */
  classes: number;
  /** Normalisation mean per channel. */
  mean: readonly number[];
  /** Normalisation std per channel. */
  std: readonly number[];
  /** Training epochs; 0 scores the untrained head (the chance level of the protocol). */
  epochs?: number;
  /** Images per training step. */
  batch?: number;
  /** Learning rate. */
  lr?: number;
  /** SGD momentum. */
  momentum?: number;
  /** L2 weight decay. */
  weightDecay?: number;
  /** Channels of the head's hidden layer. */
  headWidth?: number;
  /** Peaks kept per image. */
  maxDetections?: number;
  /** Seed of the head's initial weights and the training order. */
  seed?: number;
  /** Train the head only, on the backbone in eval mode (see the module's notes). */
  freezeBackbone?: boolean;
  /**
   * Times training starts again from the same initial weights with the learning rate ÷ 4 when it
   * diverged ({@link detectDiverged}): one learning rate does not suit every backbone's features, and a
   * diverged head's AP ranks nothing. The result says which learning rate was used.
   */
  divergenceRetries?: number;
  /** Called after each epoch with the mean training loss read back so far in it. */
  onEpoch?: (epoch: number, loss: number) => void;
}

/** Defaults of {@link DetectOptions}. */
export const DETECT_DEFAULTS = {
  epochs: 12,
  batch: 8,
  lr: 0.02,
  momentum: 0.9,
  weightDecay: 1e-4,
  headWidth: 64,
  maxDetections: 100,
  seed: 0,
  freezeBackbone: false,
  divergenceRetries: 2,
} as const;

/** Names of the backbone's parameters up to C3 (stem, layer1, layer2). */
export function c3Specs(cfg: ResNetConfig, prefix = ""): ParamSpec[] {
  return resnetSpecs(cfg).filter((s) => /^(conv1|bn1|layer1|layer2)\./.test(s.name)).map((s) => ({
    ...s,
    name: prefix + s.name,
  }));
}

/** Channels of C3. */
export function c3Channels(cfg: ResNetConfig): number {
  const w = resnetWidths(cfg);
  return w.planes[1] * w.expansion;
}

/** The head's parameters (convolutions in PyTorch's OIHW shapes). */
export function detectHeadSpecs(c3: number, width: number, K: number, prefix = "head."): ParamSpec[] {
  return [
    { name: `${prefix}conv.weight`, shape: [width, c3, 3, 3], kind: "conv" },
    { name: `${prefix}conv.bias`, shape: [width], kind: "bias" },
    { name: `${prefix}out.weight`, shape: [K + 4, width, 1, 1], kind: "conv" },
    { name: `${prefix}out.bias`, shape: [K + 4], kind: "bias" },
  ];
}

/**
 * Head initialisation: the 3×3 convolution Kaiming-normal (fan_in, ReLU gain), the output 1×1 N(0, 0.01²)
 * (small, so the prior bias decides the first predictions), biases 0 except the heat-map prior.
 */
export function initDetectHead(store: ParamStore, c3: number, width: number, K: number, seed: number): void {
  const rng = new Rng(seed ^ 0x0de7ec7);
  const normal = (n: number, std: number) => Float32Array.from({ length: n }, () => rng.normal() * std);
  store.set("head.conv.weight", normal(width * c3 * 9, Math.sqrt(2 / (c3 * 9))));
  store.set("head.conv.bias", new Float32Array(width));
  store.set("head.out.weight", normal((K + 4) * width, 0.01));
  store.set("head.out.bias", Float32Array.from({ length: K + 4 }, (_, k) => (k < K ? -Math.log(99) : 0)));
}

/** Per-channel statistics of C3 over a set of images (float64), what the frozen protocol normalises by. */
export interface C3Stats {
  /** Mean per channel. */
  mean: Float64Array;
  /** Standard deviation per channel. */
  std: Float64Array;
  /** Rows (image cells) they were measured over. */
  count: number;
}

/** The one scale C3 is divided by: the RMS of the channels' standard deviations (1 if all are 0). */
export function c3Scale(s: C3Stats): number {
  const rms = Math.sqrt(s.std.reduce((a, v) => a + v * v, 0) / s.std.length);
  return rms > 0 ? rms : 1;
}

/** A bound detector: the backbone up to C3 plus the head (and, for training, loss, backward and SGD). */
export interface DetectorGraph {
  /** The backbone up to C3. */
  net: ResNetGraph;
  /** What the head reads: C3, or with `normalise` C3 centred per channel and scaled ([B·g·g, C3]). */
  features: Tensor;
  /**
   * Sets the normalisation's statistics (`normalise` graphs only; identity until set): the head then
   * sees (C3 − mean) / {@link c3Scale}: each channel centred, all divided by one scale.
   */
  setC3Stats(s: C3Stats): void;
  /** Head output rows [B·g·g, K + 4]. */
  out: Tensor;
  /** Grid side g = R / 8 (rounded as the convolutions round). */
  grid: number;
  /** Backbone and head forward. */
  forward: Dispatch[];
  /** Loss + gradient + backward + SGD (training graphs only). */
  train: Dispatch[];
  /** The CenterNet loss (training graphs only). */
  loss: Awaited<ReturnType<typeof buildCenterNetLoss>> | null;
  /** The SGD update (training graphs only). */
  sgd: Dispatch | null;
  /** Frees the graph's tensors. */
  dispose(): void;
}

/** Binds the detector on `store` (backbone names prefixed "backbone.", head "head."). */
export async function buildDetector(
  gpu: Gpu,
  store: ParamStore,
  cfg: ResNetConfig,
  o: {
    batch: number;
    resolution: number;
    K: number;
    headWidth: number;
    train: boolean;
    sgd?: SgdSettings;
    /** Bind the head's training only: the backbone in eval mode, no backward through it, SGD on the head. */
    freezeBackbone?: boolean;
    /**
     * Centre C3 per channel and divide it by one scale before the head, by fixed statistics (see `setC3Stats`; the frozen
     * protocol's, as nothing flows back into the backbone: no gradient to C3 is bound).
     */
    normalise?: boolean;
  },
): Promise<DetectorGraph> {
  const B = o.batch, K = o.K, W = o.headWidth, frozen = o.freezeBackbone ?? false;
  const normaliseC3 = o.normalise ?? false;
  if (normaliseC3 && o.train && !frozen) throw new Error("detector: normalised C3 goes with a frozen backbone");
  const net = await buildResNet(
    gpu,
    store,
    cfg,
    { batch: B, resolution: o.resolution, train: o.train && !frozen, backward: o.train && !frozen, stages: 2 },
    "backbone.",
  );
  const [, g, gw, C3] = net.c5Shape;
  if (g !== gw) throw new Error("detector: square inputs only");
  const N = B * g * g;
  const arena = new TensorArena(gpu);
  const mk = (shape: number[], name: string) => arena.alloc(shape, name);
  const g3: ConvGeom = { nb: B, ih: g, iw: g, cin: C3, cout: W, kh: 3, kw: 3, stride: 1, pad: 1 };
  const g1: ConvGeom = { nb: B, ih: g, iw: g, cin: W, cout: K + 4, kh: 1, kw: 1, stride: 1, pad: 0 };
  const P = (n: string) => store.value(`head.${n}`), G = (n: string) => store.grad(`head.${n}`);
  const hidden = mk([N, W], "detect head hidden"), out = mk([N, K + 4], "detect head out");
  // the normalisation as an eval-mode BN with running mean = mean, running var = scale² in every
  // channel, ε = 0, β = 0 and γ = 1
  let features = net.c5, stats: { mean: Tensor; variance: Tensor } | null = null;
  const normalise: Dispatch[] = [];
  if (normaliseC3) {
    stats = { mean: mk([C3], "C3 mean"), variance: mk([C3], "C3 scale squared") };
    const ones = mk([C3], "C3 normalise gamma"), zeros = mk([C3], "C3 normalise beta");
    stats.mean.fill(0), stats.variance.fill(1), ones.fill(1), zeros.fill(0);
    features = mk([N, C3], "C3 normalised");
    const bn = arena.adopt(
      await bnForwardEval(gpu, net.c5, features, ones, zeros, stats.mean, stats.variance, {
        rows: N,
        c: C3,
        groups: 1,
        eps: 0,
      }),
    );
    normalise.push(...bn.dispatches);
  }
  const forward = [
    ...net.forward,
    ...normalise,
    await convForward(gpu, features, P("conv.weight"), hidden, g3, { bias: P("conv.bias"), relu: true }),
    await convForward(gpu, hidden, P("out.weight"), out, g1, { bias: P("out.bias") }),
  ];
  const train: Dispatch[] = [];
  let loss: DetectorGraph["loss"] = null, sgd: Dispatch | null = null;
  if (o.train) {
    loss = arena.adopt(await buildCenterNetLoss(gpu, out, N, K));
    const dOut = loss.grad, dHidden = mk([N, W], "grad detect head hidden"), dPre = mk([N, W], "grad head pre-ReLU");
    const wgrad = async (x: Tensor, dy: Tensor, dw: Tensor, geom: ConvGeom) => {
      return arena.adopt(await convWgrad(gpu, x, dy, dw, geom)).dispatches;
    };
    const bias = async (dy: Tensor, db: Tensor) => {
      return arena.adopt(await reduceAxis(gpu, dy, 0, "sum", db)).dispatches;
    };
    train.push(
      ...loss.dispatches,
      ...await wgrad(hidden, dOut, G("out.weight"), g1),
      ...await bias(dOut, G("out.bias")),
      await convDgrad(gpu, dOut, P("out.weight"), dHidden, g1),
      // the hidden map is post-ReLU, positive exactly where the pre-activation was
      await reluBackward(gpu, hidden, dHidden, dPre),
      ...await wgrad(features, dPre, G("conv.weight"), g3),
      ...await bias(dPre, G("conv.bias")),
    );
    if (!frozen) train.push(await convDgrad(gpu, dPre, P("conv.weight"), net.dC5!, g3), ...net.backward);
    const f = frozen ? headRange(store) : store.flat();
    const s = o.sgd ?? { lr: 0, momentum: 0, weightDecay: 0 };
    sgd = await sgdStep(gpu, f.params, f.grads, f.momentum, f.wdMask, s);
    train.push(sgd);
  }
  return {
    net,
    features,
    setC3Stats(s: C3Stats) {
      if (!stats) throw new Error("detector: bound without the normalisation");
      stats.mean.upload(Float32Array.from(s.mean));
      stats.variance.upload(new Float32Array(s.std.length).fill(c3Scale(s) ** 2));
    },
    out,
    grid: g,
    forward,
    train,
    loss,
    sgd,
    dispose() {
      net.dispose();
      arena.dispose();
    },
  };
}

/**
 * The head's part of the store's flat trainable buffers: the head's specs come after the backbone's, so
 * its entries fill the buffers from its first offset to the end.
 */
function headRange(store: ParamStore) {
  const heads = [...store.entries.entries()].filter(([n, e]) => n.startsWith("head.") && isTrainable(e.spec.kind));
  const first = Math.min(...heads.map(([, e]) => e.offset));
  const after = [...store.entries.values()].filter((e) => isTrainable(e.spec.kind) && e.offset >= first);
  if (after.some((e) => !heads.some(([, h]) => h === e))) throw new Error("detector: head entries are not last");
  const f = store.flat(), n = store.trainableSize - first;
  const sub = (t: Tensor) => Tensor.view(t.gpu, t.buffer, first * 4, [n], "f32", `head ${t.name}`);
  return { params: sub(f.params), grads: sub(f.grads), momentum: sub(f.momentum), wdMask: sub(f.wdMask) };
}

/** SGD settings of the detector. */
export interface SgdSettings {
  /** Learning rate. */
  lr: number;
  /** Momentum. */
  momentum: number;
  /** L2 weight decay. */
  weightDecay: number;
}

/** A store holding the backbone up to C3 (copied from `backbone`, names without prefix) and a fresh head. */
export async function detectorStore(
  gpu: Gpu,
  backbone: ParamStore,
  cfg: ResNetConfig,
  K: number,
  headWidth: number,
  seed: number,
): Promise<ParamStore> {
  const specs = c3Specs(cfg);
  const store = new ParamStore([...c3Specs(cfg, "backbone."), ...detectHeadSpecs(c3Channels(cfg), headWidth, K)])
    .allocate(gpu);
  for (const s of specs) store.set(`backbone.${s.name}`, await backbone.get(s.name));
  initDetectHead(store, c3Channels(cfg), headWidth, K, seed);
  return store;
}

/** Normalised NHWC input of a batch, images optionally mirrored. */
function batchInput(images: RgbImage[], flip: boolean[], R: number, mean: readonly number[], std: readonly number[]) {
  const x = new Float32Array(images.length * R * R * 3);
  images.forEach((im, i) => {
    if (im.width !== R || im.height !== R) throw new Error(`detect: every image must be ${R}×${R}`);
    for (let y = 0; y < R; y++) {
      for (let xx = 0; xx < R; xx++) {
        const s = (y * R + (flip[i] ? R - 1 - xx : xx)) * 3, d = ((i * R + y) * R + xx) * 3;
        for (let c = 0; c < 3; c++) x[d + c] = (im.data[s + c] / 255 - mean[c]) / std[c];
      }
    }
  });
  return x;
}

const mirror = (b: ClassBox, R: number): ClassBox => ({
  classId: b.classId,
  box: [R - b.box[2], b.box[1], R - b.box[0], b.box[3]],
});

/**
 * Peaks of one image's head output (g×g rows of K + 4): 3×3 local maxima of the sigmoid heat-maps, the
 * top `max` of them over all classes, as boxes in pixels clipped to the R×R image.
 */
export function decodeDetections(
  rows: ArrayLike<number>,
  g: number,
  K: number,
  R: number,
  max: number,
  image = 0,
): Detection[] {
  const C = K + 4, s = R / g;
  const peaks: { score: number; cell: number; k: number }[] = [];
  for (let y = 0; y < g; y++) {
    for (let x = 0; x < g; x++) {
      for (let k = 0; k < K; k++) {
        const v = rows[(y * g + x) * C + k];
        let peak = true;
        for (let dy = -1; dy <= 1 && peak; dy++) {
          for (let dx = -1; dx <= 1; dx++) {
            const yy = y + dy, xx = x + dx;
            if (yy < 0 || yy >= g || xx < 0 || xx >= g || (dx === 0 && dy === 0)) continue;
            if (rows[(yy * g + xx) * C + k] > v) {
              peak = false;
              break;
            }
          }
        }
        if (peak) peaks.push({ score: 1 / (1 + Math.exp(-v)), cell: y * g + x, k });
      }
    }
  }
  peaks.sort((a, b) => b.score - a.score);
  return peaks.slice(0, max).map(({ score, cell, k }) => {
    const r = cell * C, x = cell % g, y = Math.floor(cell / g);
    const w = Math.exp(Math.min(rows[r + K], 10)) * s, h = Math.exp(Math.min(rows[r + K + 1], 10)) * s;
    const cx = (x + rows[r + K + 2]) * s, cy = (y + rows[r + K + 3]) * s;
    const clip = (v: number) => Math.min(Math.max(v, 0), R);
    return {
      image,
      classId: k,
      score,
      box: [clip(cx - w / 2), clip(cy - h / 2), clip(cx + w / 2), clip(cy + h / 2)] as [number, number, number, number],
    };
  });
}

/** The result of the protocol. */
export interface DetectResult {
  /** Which protocol made the result. */
  protocol: "detect";
  /** COCO-style AP@[.5:.95] over the test images. */
  ap: number;
  /** AP at IoU 0.5. */
  ap50: number;
  /** AP at IoU 0.75. */
  ap75: number;
  /** Bootstrap standard errors of `ap` and `ap50` over the test images. */
  ap_se: number;
  /** Bootstrap standard error of `ap50`. */
  ap50_se: number;
  /** Per class (0..K−1): AP@[.5:.95] and AP50, null where the held-out images have no object of it. */
  perClass: { ap: number | null; ap50: number | null }[];
  /** Training images given. */
  trainImages: number;
  /** Test images given. */
  testImages: number;
  /** Distinct training images the detector was trained on, and test images scored. */
  train_images: number;
  /** Test images scored. */
  test_images: number;
  /** Objects in the test images. */
  testObjects: number;
  /** Grid side g of the head. */
  grid: number;
  /** Training steps taken. */
  steps: number;
  /** The training's losses (as read back; see {@link detectDiverged}). */
  loss: DetectLoss;
  /**
   * The last epoch's mean training loss is above the first's, or not finite: the head did not learn, so
   * its AP ranks nothing (see {@link detectDiverged}).
   */
  diverged: boolean;
  /** The learning rate of the training reported: `settings.lr`, or less after retries. */
  lrUsed: number;
  /** Trainings that diverged and were started again with a smaller learning rate. */
  retries: number;
  /** The settings used, defaults filled in. */
  settings: Required<Omit<DetectOptions, "onEpoch" | "mean" | "std">>;
}

/** What training left: steps taken, each epoch's losses as read back, the training images used. */
export interface DetectTraining {
  steps: number;
  losses: number[][];
  /** Indices into the training set of the images that went into some batch. */
  used: Set<number>;
  /** With `freezeBackbone`: the C3 statistics the head's input was normalised by. */
  c3Stats: C3Stats | null;
}

/**
 * Per-channel mean and (population) std of C3 over `images` (unflipped) through `det`'s backbone, in
 * batches of the graph's size (the last one padded, the padding not counted), merged in float64
 * (Chan et al.'s pairwise update, so a large mean costs no precision).
 */
export async function measureC3Stats(
  gpu: Gpu,
  det: DetectorGraph,
  images: RgbImage[],
  mean: readonly number[],
  std: readonly number[],
): Promise<C3Stats> {
  const [B, g, , C] = det.net.c5Shape, R = images[0].width, per = g * g;
  const m = new Float64Array(C), m2 = new Float64Array(C);
  let n = 0;
  for (let s = 0; s < images.length; s += B) {
    const chunk = images.slice(s, s + B);
    const imgs = Array.from({ length: B }, (_, i) => chunk[i] ?? chunk[0]);
    det.net.input.upload(batchInput(imgs, imgs.map(() => false), R, mean, std));
    new Recorder(gpu).runAll(det.net.forward).submit();
    await sync(gpu);
    const x = (await det.net.c5.read()) as Float32Array, nb = chunk.length * per;
    const bm = new Float64Array(C), bm2 = new Float64Array(C);
    for (let r = 0; r < nb; r++) for (let c = 0; c < C; c++) bm[c] += x[r * C + c];
    for (let c = 0; c < C; c++) bm[c] /= nb;
    for (let r = 0; r < nb; r++) for (let c = 0; c < C; c++) bm2[c] += (x[r * C + c] - bm[c]) ** 2;
    for (let c = 0; c < C; c++) {
      const d = bm[c] - m[c], t = n + nb;
      m[c] += d * nb / t;
      m2[c] += bm2[c] + d * d * n * nb / t;
    }
    n += nb;
  }
  return { mean: m, std: Float64Array.from(m2, (v) => Math.sqrt(v / n)), count: n };
}

/**
 * Trains the detector of `store` (see {@link detectorStore}) on `train` (R×R images); with
 * `freezeBackbone` only the head's parameters change. Every epoch covers every image (see the module).
 */
export async function trainDetector(
  gpu: Gpu,
  store: ParamStore,
  cfg: ResNetConfig,
  train: DetImage[],
  opts: DetectOptions,
): Promise<DetectTraining> {
  const o = { ...DETECT_DEFAULTS, ...opts };
  const K = o.classes, R = train[0].image.width, B = o.batch, N = train.length;
  if (N === 0) throw new Error("detect: no training images");
  const sgd = { lr: o.lr, momentum: o.momentum, weightDecay: o.weightDecay };
  const det = await withMemoryCheck(gpu, "building the detector", () =>
    buildDetector(gpu, store, cfg, {
      batch: B,
      resolution: R,
      K,
      headWidth: o.headWidth,
      train: true,
      sgd,
      freezeBackbone: o.freezeBackbone,
      normalise: o.freezeBackbone,
    }), EVAL_MEMORY_HINT);
  const g = det.grid, loss = det.loss!;
  const c3Stats = o.freezeBackbone ? await measureC3Stats(gpu, det, train.map((d) => d.image), o.mean, o.std) : null;
  if (c3Stats) det.setC3Stats(c3Stats);
  const perEpoch = Math.ceil(N / B), total = perEpoch * o.epochs;
  const ring = new MetricsRing(gpu, [loss.loss]);
  const losses: number[][] = Array.from({ length: o.epochs }, () => []);
  const collect = (s: { step: number; values: Float32Array } | null) => {
    if (s) losses[Math.floor(s.step / perEpoch)].push(s.values[0]);
  };
  const rng = new Rng(o.seed ^ 0x5ca1ab1e), used = new Set<number>();
  let step = 0;
  for (let e = 0; e < o.epochs; e++) {
    const order = rng.shuffle(Array.from({ length: N }, (_, i) => i));
    for (let s = 0; s < perEpoch; s++, step++) {
      // the last batch of an epoch wraps round to the start of its order
      const picked = Array.from({ length: B }, (_, j) => order[(s * B + j) % N]);
      for (const i of picked) used.add(i);
      const items = picked.map((i) => train[i]);
      const flip = items.map(() => rng.next() < 0.5);
      det.net.input.upload(batchInput(items.map((d) => d.image), flip, R, o.mean, o.std));
      loss.upload(
        centerNetTargets(items.map((d, i) => flip[i] ? d.boxes.map((b) => mirror(b, R)) : d.boxes), g, g, 8, K),
      );
      det.sgd!.setParams({ lr: cosineLr(o.lr, step, total, Math.min(50, Math.floor(total / 10))) });
      const rec = new Recorder(gpu);
      collect(await ring.begin(rec));
      rec.runAll(det.forward).runAll(det.train);
      ring.end(rec, step);
      rec.submit();
      ring.afterSubmit();
    }
    o.onEpoch?.(e, mean(losses[e]));
  }
  // drain: go once round the ring with empty steps (step −1 is never collected)
  for (let i = 0; i < ring.depth; i++) {
    const rec = new Recorder(gpu);
    collect(await ring.begin(rec));
    ring.end(rec, -1);
    rec.submit();
    ring.afterSubmit();
  }
  ring.destroy();
  det.dispose();
  return { steps: total, losses, used, c3Stats };
}

/**
 * Fine-tunes a detector from `backbone` (a store of the ResNet's parameters, names without prefix) on
 * `train` (or trains its head alone on the frozen backbone), then scores `test`. Images are R×R; boxes in
 * pixels; classes 0..K−1.
 */
export async function detectEval(
  gpu: Gpu,
  backbone: ParamStore,
  cfg: ResNetConfig,
  train: DetImage[],
  test: DetImage[],
  opts: DetectOptions,
): Promise<DetectResult> {
  const o = { ...DETECT_DEFAULTS, ...opts };
  const K = o.classes, R = train[0].image.width, B = o.batch;
  let lr = o.lr, retries = 0;
  let store = await detectorStore(gpu, backbone, cfg, K, o.headWidth, o.seed);
  let trained = await trainDetector(gpu, store, cfg, train, o);
  while (o.epochs > 0 && detectDiverged(epochLoss(trained, o.epochs)) && retries < o.divergenceRetries) {
    retries++, lr /= 4;
    store = await detectorStore(gpu, backbone, cfg, K, o.headWidth, o.seed);
    trained = await trainDetector(gpu, store, cfg, train, { ...o, lr });
  }
  // held-out images through the eval-mode graph
  const ev = await withMemoryCheck(
    gpu,
    "building the detector",
    () =>
      buildDetector(gpu, store, cfg, {
        batch: B,
        resolution: R,
        K,
        headWidth: o.headWidth,
        train: false,
        normalise: o.freezeBackbone,
      }),
    EVAL_MEMORY_HINT,
  );
  if (trained.c3Stats) ev.setC3Stats(trained.c3Stats);
  const g = ev.grid;
  const dets: Detection[][] = [], gts: GtBox[][] = [];
  for (let s = 0; s < test.length; s += B) {
    const chunk = test.slice(s, s + B);
    const imgs = Array.from({ length: B }, (_, i) => (chunk[i] ?? chunk[0]).image);
    ev.net.input.upload(batchInput(imgs, imgs.map(() => false), R, o.mean, o.std));
    new Recorder(gpu).runAll(ev.forward).submit();
    await sync(gpu);
    const rows = (await ev.out.read()) as Float32Array, per = g * g * (K + 4);
    chunk.forEach((d, i) => {
      dets.push(decodeDetections(rows.subarray(i * per, (i + 1) * per), g, K, R, o.maxDetections, s + i));
      gts.push(d.boxes.map((b) => ({ image: s + i, classId: b.classId, box: b.box })));
    });
  }
  ev.dispose();
  const ap = evaluateDetections(dets.flat(), gts.flat(), K);
  const se = apBootstrapSE(dets, gts, K);
  const { onEpoch: _, mean: _m, std: _s, ...settings } = o;
  const loss = epochLoss(trained, o.epochs);
  return {
    protocol: "detect",
    ap: ap.ap,
    ap50: ap.ap50,
    ap75: ap.ap75,
    ap_se: se.ap,
    ap50_se: se.ap50,
    perClass: ap.perClass.map((c) => ({
      ap: Number.isNaN(c.ap) ? null : c.ap,
      ap50: Number.isNaN(c.ap50) ? null : c.ap50,
    })),
    trainImages: train.length,
    testImages: test.length,
    train_images: trained.used.size,
    test_images: dets.length,
    testObjects: gts.reduce((a, v) => a + v.length, 0),
    grid: g,
    steps: trained.steps,
    loss,
    diverged: o.epochs > 0 && detectDiverged(loss),
    lrUsed: lr,
    retries,
    settings,
  };
}

/** A detection training's losses: see {@link DetectResult}'s `loss`. */
export interface DetectLoss {
  /** Mean training loss of the first and the last epoch (NaN with no epochs). */
  first: number;
  /** Mean training loss of the last epoch. */
  last: number;
  /** The first step's loss, the untrained head's (absent from records written before it was kept). */
  initial?: number;
  /** The largest epoch mean. */
  peak?: number;
}

function epochLoss(t: DetectTraining, epochs: number): DetectLoss {
  const means = t.losses.slice(0, epochs).map(mean);
  return {
    first: means[0] ?? NaN,
    last: means[epochs - 1] ?? NaN,
    initial: t.losses[0]?.[0] ?? NaN,
    peak: Math.max(...means),
  };
}

/**
 * Whether a detection head's training diverged: its last epoch's mean loss not finite or above where it
 * began (the untrained head's loss, else the first epoch's mean), or some epoch's mean above twice the
 * untrained head's loss, a blow-up it may have half recovered from (its AP then is as bad).
 */
export function detectDiverged(loss: DetectLoss): boolean {
  const start = Number.isFinite(loss.initial) ? loss.initial! : loss.first;
  return !Number.isFinite(loss.last) || loss.last > start ||
    (Number.isFinite(loss.initial) && loss.peak !== undefined && !(loss.peak <= 2 * loss.initial!));
}

const mean = (v: number[]) => v.length ? v.reduce((a, b) => a + b, 0) / v.length : NaN;
