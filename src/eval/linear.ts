/**
 * The `linear` transfer protocol: a frozen backbone, a per-pixel linear classifier (softmax regression) on
 * its C4 features (or C3, C5, or several levels concatenated, such as C3+C4) bilinearly upsampled to a T×T grid, trained on labelled images' class maps and
 * scored by mean IoU on held-out images. The classifier (C features × K classes) is fitted by full-batch
 * gradient descent on standardised features, on the GPU (`fitSoftmax`) beside its float64 reference.
 *
 * @module
 */
import type { Gpu } from "../gpu/device.ts";
import type { LabelMap, RgbImage } from "../data/image.ts";
import type { ResNetConfig } from "../models/resnet.ts";
import { concatLevels, frozenBackbone } from "./features.ts";
import { bootstrapSE, type ImageCounts, imageCounts, miouOfImages } from "./bootstrap.ts";
import type { ParamStore } from "../nn/params.ts";
import { Recorder } from "../gpu/recorder.ts";
import { Tensor } from "../gpu/tensor.ts";
import { matmul, matmulTA } from "../kernels/gemm.ts";
import { crossEntropy, crossEntropyBackward } from "../kernels/rows.ts";
import { sgdStep } from "../kernels/optim.ts";

/** An image with its per-pixel class map (0 = background). */
export interface SegImage {
  /** The image. */
  image: RgbImage;
  /** Class of each pixel, 0 background. */
  classes: LabelMap;
}

export { upsampleBilinear } from "./features.ts";

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

/** Options of the probe's optimisation (full-batch gradient descent on standardised features). */
export interface ProbeOptions {
  /** A fixed number of iterations; by default the GPU fit runs until converged (see `tolerance`). */
  iterations?: number;
  /** Most iterations of a fit run until converged (default 4096). */
  maxIterations?: number;
  /**
   * Converged when the objective fell by less than this fraction of itself over the last
   * {@link PROBE_CHECK} iterations (default 1e-4).
   */
  tolerance?: number;
  /** Called after every convergence check of the GPU fit with the weights then (diagnostics). */
  onCheck?: (iterations: number, objective: number, W: Float32Array) => void;
  /** Step size; by default 1/L from the data (see {@link probeStepSize}). */
  lr?: number;
  /** Nesterov momentum (PyTorch semantics; default 0.9). */
  momentum?: number;
  /** L2 weight decay of the probe. */
  l2?: number;
  /** Weigh each present class equally instead of each pixel (plain cross-entropy). */
  balanced?: boolean;
  /** Starting weights ((C+1)×K, bias row last); zero by default. */
  init?: ArrayLike<number>;
}

/** Iterations between the GPU fit's convergence checks (one command buffer each). */
export const PROBE_CHECK = 64;

/** The options with their defaults, and each row's loss weight (which the default step size needs too). */
function probeDefaults(o: ProbeOptions, z: ArrayLike<number>, y: Int32Array, C: number, K: number) {
  const l2 = o.l2 ?? 1e-4, rw = rowWeights(y, K, o.balanced ?? false);
  return {
    iterations: o.iterations ?? 300,
    lr: o.lr ?? probeStepSize(z, rw, C, l2),
    momentum: o.momentum ?? 0.9,
    l2,
    rw,
  };
}

/**
 * The probe's step size 1/L, L = ½·λmax([z 1]ᵀ·diag(w)·[z 1]) + l2 a bound on the curvature of its
 * objective (softmax cross-entropy's Hessian per row is at most ½ in norm), λmax by power iteration.
 * A fixed step does not fit every backbone: measured on a random ResNet-50 ×0.5's C4 (512 features)
 * λmax was 82, and the old fixed 0.5 (10× past 2/L) made the loss rise again after 150 iterations;
 * at ResNet-18 ×0.125's 32 features λmax was 10.
 */
export function probeStepSize(z: ArrayLike<number>, w: Float64Array, C: number, l2: number, iterations = 30): number {
  const N = w.length, C1 = C + 1;
  let v = new Float64Array(C1).fill(1 / Math.sqrt(C1)), lambda = 0;
  for (let it = 0; it < iterations; it++) {
    const u = new Float64Array(C1);
    for (let i = 0; i < N; i++) {
      let d = v[C];
      for (let c = 0; c < C; c++) d += z[i * C + c] * v[c];
      d *= w[i];
      for (let c = 0; c < C; c++) u[c] += d * z[i * C + c];
      u[C] += d;
    }
    lambda = Math.hypot(...u);
    if (!(lambda > 0)) return 1;
    v = u.map((x) => x / lambda);
  }
  // power iteration approaches λmax from below: a 10% margin keeps the step on the safe side
  return 1 / (0.5 * 1.1 * lambda + l2);
}

/** Per-feature mean and standard deviation of N×C rows, and the rows standardised by them. */
export function standardise(
  x: ArrayLike<number>,
  C: number,
): { z: Float64Array; mean: Float64Array; std: Float64Array } {
  const N = x.length / C, mean = new Float64Array(C), std = new Float64Array(C);
  for (let i = 0; i < N; i++) for (let c = 0; c < C; c++) mean[c] += x[i * C + c] / N;
  for (let i = 0; i < N; i++) for (let c = 0; c < C; c++) std[c] += (x[i * C + c] - mean[c]) ** 2 / N;
  for (let c = 0; c < C; c++) std[c] = Math.sqrt(std[c]) || 1;
  return { z: Float64Array.from(x, (v, i) => (v - mean[i % C]) / std[i % C]), mean, std };
}

/** Each row's loss weight: 1/N, or for `balanced` N/(present·count[class])/N. */
function rowWeights(y: Int32Array, K: number, balanced: boolean): Float64Array {
  const N = y.length, counts = new Float64Array(K);
  for (let i = 0; i < N; i++) counts[y[i]]++;
  const present = counts.filter((c) => c > 0).length;
  return Float64Array.from(y, (k) => (balanced ? N / (present * counts[k]) : 1) / N);
}

/**
 * The probe's float64 reference: softmax regression of standardised rows `z` (N×C) on classes `y` by
 * full-batch gradient descent with Nesterov momentum from zero. Returns W as (C+1)×K rows, the last one
 * the bias (not decayed), and the weighted cross-entropy at the start of the last iteration.
 */
export function fitSoftmaxRef(
  z: Float64Array,
  y: Int32Array,
  C: number,
  K: number,
  o: ProbeOptions = {},
): { W: Float64Array; loss: number } {
  const { iterations, lr, momentum, l2, rw } = probeDefaults(o, z, y, C, K);
  const N = y.length;
  const W = o.init ? Float64Array.from(o.init) : new Float64Array((C + 1) * K);
  const logits = new Float64Array(K), grad = new Float64Array((C + 1) * K), buf = new Float64Array(W.length);
  let loss = NaN;
  for (let it = 0; it < iterations; it++) {
    grad.fill(0);
    loss = 0;
    for (let i = 0; i < N; i++) {
      let m = -Infinity;
      for (let k = 0; k < K; k++) {
        let s = W[C * K + k];
        for (let c = 0; c < C; c++) s += z[i * C + c] * W[c * K + k];
        logits[k] = s, m = Math.max(m, s);
      }
      let sum = 0;
      const target = logits[y[i]];
      for (let k = 0; k < K; k++) sum += logits[k] = Math.exp(logits[k] - m);
      loss += rw[i] * (Math.log(sum) + m - target);
      for (let k = 0; k < K; k++) {
        const g = rw[i] * (logits[k] / sum - (k === y[i] ? 1 : 0));
        for (let c = 0; c < C; c++) grad[c * K + k] += g * z[i * C + c];
        grad[C * K + k] += g;
      }
    }
    // SGD with Nesterov momentum, as sgdRef (weight decay off the bias row)
    for (let j = 0; j < W.length; j++) {
      const g = grad[j] + (j < C * K ? l2 * W[j] : 0);
      buf[j] = momentum * buf[j] + g;
      W[j] -= lr * (g + momentum * buf[j]);
    }
  }
  return { W, loss };
}

/** A fitted probe and how its optimisation ended. */
export interface ProbeFit {
  /** Weights of the fitted probe. */
  W: Float64Array;
  /** Weighted cross-entropy at the start of the last iteration. */
  loss: number;
  /** Iterations run. */
  iterations: number;
  /** Whether the objective's relative change over the last check fell below the tolerance. */
  converged: boolean;
  /** Norm of the objective's gradient (weight decay included) at the start of the last iteration. */
  gradNorm: number;
  /** Relative fall of the objective over the last {@link PROBE_CHECK} iterations (null after one check). */
  change: number | null;
}

/**
 * The same optimisation on the GPU: every iteration is logits = [z 1]·W, the cross-entropy gradient, Wᵀ's
 * gradient [z 1]ᵀ·G and an SGD step (weight decay masked off the bias row), all recorded into one command
 * buffer with a single read at the end. On the host the probe cost N·C·K per iteration in float64 (two
 * minutes for a ResNet-50 ×0.5's C4 on 32768 pixels); here it is a few GPU milliseconds.
 */
export async function fitSoftmax(
  gpu: Gpu,
  z: ArrayLike<number>,
  y: Int32Array,
  C: number,
  K: number,
  o: ProbeOptions = {},
): Promise<ProbeFit> {
  const { lr, momentum, l2, rw } = probeDefaults(o, z, y, C, K);
  const fixed = o.iterations !== undefined, max = o.iterations ?? o.maxIterations ?? 4096;
  const tolerance = o.tolerance ?? 1e-4;
  const N = y.length, C1 = C + 1;
  const zb = new Float32Array(N * C1);
  for (let i = 0; i < N; i++) {
    for (let c = 0; c < C; c++) zb[i * C1 + c] = z[i * C + c];
    zb[i * C1 + C] = 1;
  }
  const t = {
    z: Tensor.from(gpu, [N, C1], zb, "f32", "probe features"),
    y: Tensor.from(gpu, [N], y, "i32", "probe classes"),
    rw: Tensor.from(gpu, [N], rw, "f32", "probe row weights"),
    W: Tensor.from(gpu, [C1, K], o.init ?? new Float32Array(C1 * K), "f32", "probe weights"),
    grad: Tensor.empty(gpu, [C1, K], "f32", "probe weight grad"),
    buf: Tensor.from(gpu, [C1, K], new Float32Array(C1 * K), "f32", "probe momentum"),
    mask: Tensor.from(gpu, [C1, K], Float32Array.from({ length: C1 * K }, (_, j) => j < C * K ? 1 : 0), "f32", "wd"),
    logits: Tensor.empty(gpu, [N, K], "f32", "probe logits"),
    loss: Tensor.empty(gpu, [N], "f32", "probe loss"),
    lse: Tensor.empty(gpu, [N], "f32", "probe lse"),
    dlogits: Tensor.empty(gpu, [N, K], "f32", "probe dlogits"),
  };
  const scratch: Tensor[] = [];
  try {
    const forward = await matmul(gpu, t.z, t.W, t.logits, N, C1, K);
    const ce = await crossEntropy(gpu, t.logits, t.y, t.loss, t.lse);
    const ceBack = await crossEntropyBackward(gpu, t.logits, t.lse, t.y, t.rw, t.dlogits);
    const wgrad = await matmulTA(gpu, t.z, t.dlogits, t.grad, N, C1, K);
    scratch.push(...wgrad.owned);
    const step = await sgdStep(gpu, t.W, t.grad, t.buf, t.mask, { lr, momentum, weightDecay: l2, nesterov: true });
    const iteration = [forward, ce, ceBack, ...wgrad.dispatches, step];
    // The objective (weighted cross-entropy + l2/2·‖W‖² at the start of a chunk's last iteration) is read
    // after every chunk: a fixed count cannot suit every backbone (the curvature, hence the step, differs
    // by 10× between widths), so the fit runs until the objective stops moving.
    const objective = async () => {
      const rowLoss = await t.loss.read(), W = await t.W.read();
      let ce = 0, reg = 0;
      for (let i = 0; i < N; i++) ce += rw[i] * rowLoss[i];
      for (let j = 0; j < C * K; j++) reg += W[j] * W[j];
      o.onCheck?.(it, ce + (l2 / 2) * reg, W as Float32Array);
      return { ce, objective: ce + (l2 / 2) * reg };
    };
    let it = 0, prev = NaN, cur = { ce: NaN, objective: NaN }, change = NaN;
    while (it < max) {
      // a few hundred dispatches per submit keep any one command buffer small
      const n = Math.min(PROBE_CHECK, max - it), rec = new Recorder(gpu);
      for (let j = 0; j < n; j++) rec.runAll(iteration);
      rec.submit();
      it += n;
      cur = await objective();
      // per PROBE_CHECK iterations, also over a shorter last chunk
      change = ((prev - cur.objective) / Math.abs(cur.objective)) * (PROBE_CHECK / n);
      prev = cur.objective;
      if (!fixed && Math.abs(change) < tolerance) break;
    }
    // the gradient norm at the start of the last iteration (the cross-entropy part is in t.grad)
    const W = Float64Array.from(await t.W.read()), G = await t.grad.read();
    let g2 = 0;
    for (let j = 0; j < W.length; j++) g2 += (G[j] + (j < C * K ? l2 * W[j] : 0)) ** 2;
    return {
      W,
      loss: cur.ce,
      iterations: it,
      converged: Math.abs(change) < tolerance,
      gradNorm: Math.sqrt(g2),
      change: Number.isFinite(change) ? change : null,
    };
  } finally {
    for (const x of [...Object.values(t), ...scratch]) x.dispose();
  }
}

/** Classifies rows of raw features with a fitted W and the training rows' standardisation. */
export function probePredictor(
  W: Float64Array,
  mean: Float64Array,
  std: Float64Array,
  C: number,
  K: number,
): (f: ArrayLike<number>) => Int32Array {
  // fold the standardisation into W: s_k = b_k − Σ_c mean_c/std_c·W_ck + Σ_c f_c·(W_ck/std_c)
  const Wf = new Float64Array(C * K), b = W.slice(C * K);
  for (let c = 0; c < C; c++) {
    for (let k = 0; k < K; k++) Wf[c * K + k] = W[c * K + k] / std[c], b[k] -= mean[c] * Wf[c * K + k];
  }
  return (f) => {
    const n = f.length / C, out = new Int32Array(n), s = new Float64Array(K);
    for (let i = 0; i < n; i++) {
      s.set(b);
      for (let c = 0; c < C; c++) {
        const v = f[i * C + c];
        for (let k = 0; k < K; k++) s[k] += v * Wf[c * K + k];
      }
      let best = 0;
      for (let k = 1; k < K; k++) if (s[k] > s[best]) best = k;
      out[i] = best;
    }
    return out;
  };
}

/** The whole probe on the host in float64 (reference): standardise, fit, return a predictor. */
export function trainLinear(
  x: Float64Array,
  y: Int32Array,
  C: number,
  K: number,
  o: ProbeOptions = {},
): (f: ArrayLike<number>) => Int32Array {
  const { z, mean, std } = standardise(x, C);
  return probePredictor(fitSoftmaxRef(z, y, C, K, o).W, mean, std, C, K);
}

/** The stride of an even subsample of `total` pixels that keeps at most `max`: ⌈total / max⌉ (1: all). */
export function pixelStride(total: number, max: number): number {
  return Math.max(1, Math.ceil(total / max));
}

/** The result of the protocol. */
export interface LinearResult {
  /** Which protocol made the result. */
  protocol: "linear";
  /** Feature levels, '+'-joined ("c4", "c3+c4"). */
  level: string;
  /** Features per pixel (all levels together). */
  features: number;
  /** Grid side the probe predicts on. */
  grid: number;
  /** Training images given. */
  trainImages: number;
  /** Test images given. */
  testImages: number;
  /** Images the probe was fitted on and scored on. */
  train_images: number;
  /** Test images scored. */
  test_images: number;
  /** Mean IoU over the classes on the test images. */
  miou: number;
  /** Bootstrap standard error of `miou` over the test images. */
  miou_se: number;
  /** Fraction of test pixels classified correctly. */
  pixelAccuracy: number;
  /** mIoU of predicting the most frequent training class everywhere. */
  majorityMiou: number;
  /** The probe's training cross-entropy at its last iteration (log K at the start). */
  trainLoss: number;
  /** How the probe's fit ended (see {@link ProbeFit}). */
  converged: boolean;
  /** Iterations of the fit. */
  iterations: number;
  /** Gradient norm at the end of the fit. */
  gradNorm: number;
  /** Relative fall of the objective over the last check (null after one check). */
  lossChange: number | null;
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
    /** Feature levels: "c4" (default), "c5", "c3", or several '+'-joined, such as "c3+c4". */
    level?: string;
    batch?: number;
    balanced?: boolean;
    /** Training pixels kept (an even stride over all of them), which bounds the probe's cost. */
    maxTrainPixels?: number;
    /** Options of the probe's fit (iterations, tolerance). */
    probe?: ProbeOptions;
  },
): Promise<LinearResult> {
  const R = train[0].image.width, K = o.classes + 1;
  const fb = await frozenBackbone(gpu, store, cfg, R, o);
  const { C, level, levels } = fb;
  // the grid follows the coarsest level, so that C4 and C3+C4 are scored on the same pixels
  const T = Math.min(R, 4 * levels[levels.length - 1].h);
  // training pixels: an even stride over all of them, gathered as each image's map arrives (holding every
  // upsampled pixel of 400 images of C 512 would take 1.7 GB); test pixels are classified as they arrive
  const maxTrain = o.maxTrainPixels ?? 32768, perImage = T * T;
  const stride = pixelStride(train.length * perImage, maxTrain);
  const kept = Math.ceil((train.length * perImage) / stride);
  const x = new Float64Array(kept * C), y = new Int32Array(kept), counts = new Float64Array(K);
  await fb.each(train.map((im) => im.image), (i, maps) => {
    const up = concatLevels(maps, levels, T), labels = downsampleLabels(train[i].classes, T);
    for (let p = 0; p < perImage; p++) {
      counts[labels[p]]++;
      const g = i * perImage + p;
      if (g % stride) continue;
      x.set(up.subarray(p * C, (p + 1) * C), (g / stride) * C), y[g / stride] = labels[p];
    }
  });
  const { z, mean, std } = standardise(x, C);
  const fit = await fitSoftmax(gpu, z, y, C, K, { balanced: o.balanced, ...o.probe });
  const predict = probePredictor(fit.W, mean, std, C, K);
  const pred = new Int32Array(test.length * perImage), truth = new Int32Array(test.length * perImage);
  const perTest: ImageCounts[] = [];
  await fb.each(test.map((im) => im.image), (i, maps) => {
    const p = predict(concatLevels(maps, levels, T)), t = downsampleLabels(test[i].classes, T);
    pred.set(p, i * perImage), truth.set(t, i * perImage);
    perTest.push(imageCounts(p, t, K));
  });
  fb.dispose();
  const top = counts.indexOf(Math.max(...counts));
  return {
    protocol: "linear",
    level,
    features: C,
    grid: T,
    trainImages: train.length,
    testImages: test.length,
    train_images: train.length,
    test_images: perTest.length,
    miou: meanIoU(pred, truth, K).miou,
    miou_se: bootstrapSE(perTest.length, (idx) => miouOfImages(perTest, idx)),
    trainLoss: fit.loss,
    pixelAccuracy: pred.filter((p, i) => p === truth[i]).length / pred.length,
    majorityMiou: meanIoU(new Int32Array(truth.length).fill(top), truth, K).miou,
    converged: fit.converged,
    iterations: fit.iterations,
    gradNorm: fit.gradNorm,
    lossChange: fit.change,
  };
}
