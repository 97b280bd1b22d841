/**
 * Image-level InfoNCE against a queue (MoCo's form: target = the positive at index 0), forward
 * and backward on the GPU, the ring-buffer queue update, and the float64 reference.
 *
 * q = n(mean over hw of y1(A0)) [B, D] (gradient), k = n(mean over hw of y1(A1)) (no gradient);
 * logits [pos | neg] = [q·k, q·Queueᵀ] / T; L = mean over B of cross-entropy with target 0.
 *
 * Memory: the negatives [B, Q] are the one large buffer (one GEMM against the queue writes them; the positive
 * is a row dot, so no [B, 1 + Q] copy exists) and the backward overwrites them with their gradient in place.
 * Hence the order within a step: `forward`, `backward`, then `enqueue` (which must follow the backward,
 * since the backward reads the queue the forward used).
 *
 * @module
 */
import {
  enqueueSpec,
  IC_WG,
  INFO_NCE,
  INFO_NCE_BACKWARD,
  infoNcePosGradSpec,
  rowDotSpec,
} from "../kernels/wgsl/image_contrast.ts";
import { type OwnsTensors, TensorArena } from "../gpu/bound.ts";
import type { Gpu } from "../gpu/device.ts";
import { bind, type Dispatch, grid1d } from "../gpu/kernel.ts";
import { Tensor } from "../gpu/tensor.ts";
import { matmul } from "../kernels/gemm.ts";
import { reduceAxis, reduceAxisBackward } from "../kernels/reduce.ts";
import { L2_EPS, l2Normalize, l2NormalizeBackward, rowOp, rowsRef, type RowVariant } from "../kernels/rows.ts";
import { Rng } from "../util/rng.ts";

/** The release's InfoNCE temperature. */
export const IMAGE_TEMPERATURE = 0.2;

/** Options of {@link buildImageContrast}. */
export interface ImageContrastOptions {
  /** Head output of A0, [B·hw, D] (NHWC rows); receives the gradient. */
  y1A0: Tensor;
  /** Head output of A1 from the momentum encoder; no gradient. */
  y1A1: Tensor;
  /** Images B. */
  batch: number;
  /** Grid positions per image (h·w). */
  hw: number;
  /** Feature width D. */
  dim: number;
  /** Queue rows Q (≥ batch). */
  queueSize: number;
  /** T (default 0.2). */
  temperature?: number;
  /** Seed of the queue's initial values ({@link initQueue}). */
  seed: number;
  /**
   * Keys that `enqueue` writes instead of this batch's own: [rows, D], e.g. every micro-batch's keys of an
   * accumulated step, enqueued once after the last (the caller fills it).
   */
  stepKeys?: Tensor;
  /** Row-kernel variant (default: by adapter). */
  variant?: RowVariant;
  /** Where to write d y1(A0) (e.g. a view into a larger gradient); default: a tensor owned by the op. */
  dY1?: Tensor;
}

/** The bound loss. */
export interface ImageContrast extends OwnsTensors {
  /** [1]: the loss after `forward`. */
  loss: Tensor;
  /** [B·hw, D]: dL/d y1(A0) after `backward` (written, not accumulated; dL = 1). */
  dY1: Tensor;
  /** Computes `loss`. */
  forward: Dispatch[];
  /** Overwrites the negatives with their gradient: record after `forward`, before the next `forward`. */
  backward: Dispatch[];
  /** Writes the step's keys into the queue at the pointer; record after `backward`. */
  enqueue: Dispatch[];
  /** [Q, D] ring buffer of keys. */
  queue: Tensor;
  /** [B, D] normalised keys of the step (what `enqueue` writes). */
  keys: Tensor;
  /** Sets the ring pointer used by the next submitted `enqueue` (taken mod Q). */
  setPointer(ptr: number): void;
}

/** Initial queue: uniform in [−s, s] with s = 1/√(D/3) (expected row norm ≈ 1), from `seed`. */
export function initQueue(queueSize: number, dim: number, seed: number): Float32Array {
  const rng = new Rng(seed), s = 1 / Math.sqrt(dim / 3);
  return Float32Array.from({ length: queueSize * dim }, () => rng.uniform(-s, s));
}

/** Binds the InfoNCE forward, backward and queue update for fixed sizes; uploads the initial queue. */
export async function buildImageContrast(gpu: Gpu, o: ImageContrastOptions): Promise<ImageContrast> {
  const { batch: B, hw, dim: D, queueSize: Q } = o;
  const invT = 1 / (o.temperature ?? IMAGE_TEMPERATURE), v = o.variant;
  if (Q < B) throw new Error(`image contrast: queue of ${Q} rows cannot take ${B} keys per step`);
  for (const t of [o.y1A0, o.y1A1]) {
    if (t.numel !== B * hw * D) throw new Error(`image contrast: "${t.name}" must have ${B}·${hw}·${D} elements`);
  }
  const arena = new TensorArena(gpu);
  const T = (shape: number[], name: string) => arena.alloc(shape, `image contrast ${name}`);
  const queue = T([Q, D], "queue");
  queue.upload(initQueue(Q, D, o.seed));
  const qraw = T([B, D], "query mean"), q = T([B, D], "query"), qnorm = T([B], "query norm");
  const kraw = T([B, D], "key mean"), k = T([B, D], "keys"), knorm = T([B], "key norm");
  const pos = T([B], "positive"), neg = T([B, Q], "negatives"), rowLoss = T([B], "row loss"), lse = T([B], "lse");
  const loss = T([1], "loss"), r = T([B, D], "positive grad"), dq = T([B, D], "query grad");
  if (o.dY1 && o.dY1.numel !== B * hw * D) throw new Error(`image contrast: dY1 must have ${B}·${hw}·${D} elements`);
  const dqraw = T([B, D], "query mean grad"), dY1 = o.dY1 ?? T([B * hw, D], "dY1");
  const asMaps = (t: Tensor) => Tensor.view(gpu, t.buffer, t.byteOffset, [B, hw, D], "f32", `${t.name} as maps`);

  const poolQ = await reduceAxis(gpu, asMaps(o.y1A0), 1, "mean", qraw);
  const poolK = await reduceAxis(gpu, asMaps(o.y1A1), 1, "mean", kraw);
  const lossMean = await reduceAxis(gpu, rowLoss, 0, "mean", loss);
  for (const red of [poolQ, poolK, lossMean]) arena.adopt(red);
  const forward = [
    ...poolQ.dispatches,
    ...poolK.dispatches,
    await l2Normalize(gpu, qraw, q, qnorm, L2_EPS, v),
    await l2Normalize(gpu, kraw, k, knorm, L2_EPS, v),
    await bind(gpu, rowDotSpec(), [q, k, pos], { rows: B, dim: D }, grid1d(B, IC_WG)),
    await matmul(gpu, q, queue, neg, B, D, Q, { transB: true }),
    await rowOp(gpu, INFO_NCE, [neg, pos, rowLoss, lse], { inv_t: invT }, v),
    ...lossMean.dispatches,
  ];
  const gscale = invT / B;
  const backward = [
    await rowOp(gpu, INFO_NCE_BACKWARD, [neg, lse], { inv_t: invT, gscale }, v),
    await bind(
      gpu,
      infoNcePosGradSpec(),
      [pos, lse, k, r],
      { rows: B, dim: D, inv_t: invT, gscale },
      grid1d(B * D, IC_WG),
    ),
    await matmul(gpu, neg, queue, dq, B, Q, D, { residual: r }),
    await l2NormalizeBackward(gpu, q, qnorm, dq, dqraw, L2_EPS, v),
    await reduceAxisBackward(gpu, dqraw, [B, hw, D], 1, "mean", dY1),
  ];
  const written = o.stepKeys ?? k, rows = written.numel / D;
  if (!Number.isInteger(rows) || rows > Q) {
    throw new Error(`image contrast: "${written.name}" must be [rows ≤ ${Q}, ${D}] to enqueue`);
  }
  const enq = await bind(
    gpu,
    enqueueSpec(),
    [written, queue],
    { rows, dim: D, qsize: Q, ptr: 0 },
    grid1d(rows * D, IC_WG),
  );
  const setPointer = (ptr: number): void => {
    if (!Number.isInteger(ptr) || ptr < 0) throw new Error(`image contrast: bad queue pointer ${ptr}`);
    enq.setParams({ ptr: ptr % Q });
  };
  return { loss, dY1, forward, backward, enqueue: [enq], queue, keys: k, setPointer, owned: arena.owned };
}

// ---------------------------------------------------------------------------------------------------------
// float64 reference

/** Inputs of {@link imageContrastRef}: maps [B·hw, D], queue [Q, D]. */
export interface ImageContrastRefInput {
  /** A0 head output [B·hw, D]. */
  y1A0: ArrayLike<number>;
  /** A1 head output [B·hw, D]. */
  y1A1: ArrayLike<number>;
  /** Queue of negatives [Q, D]. */
  queue: ArrayLike<number>;
  /** Images B. */
  batch: number;
  /** Grid positions per image. */
  hw: number;
  /** Feature width D. */
  dim: number;
  /** T (default 0.2). */
  temperature?: number;
}

/** Float64 loss, d y1(A0) and the normalised keys k [B, D] of the InfoNCE (target 0). */
export function imageContrastRef(x: ImageContrastRefInput): { loss: number; dY1: Float64Array; keys: Float64Array } {
  const { batch: B, hw, dim: D } = x;
  const invT = 1 / (x.temperature ?? IMAGE_TEMPERATURE), Q = x.queue.length / D;
  const mean = (y: ArrayLike<number>) => {
    const m = new Float64Array(B * D);
    for (let b = 0; b < B; b++) {
      for (let p = 0; p < hw; p++) for (let d = 0; d < D; d++) m[b * D + d] += y[(b * hw + p) * D + d] / hw;
    }
    return m;
  };
  const qn = rowsRef.l2Normalize(mean(x.y1A0), B, D), kn = rowsRef.l2Normalize(mean(x.y1A1), B, D);
  const q = qn.y, k = kn.y;
  let loss = 0;
  const dq = new Float64Array(B * D);
  const logits = new Float64Array(1 + Q);
  for (let i = 0; i < B; i++) {
    for (let j = 0; j <= Q; j++) {
      let s = 0;
      for (let d = 0; d < D; d++) s += q[i * D + d] * (j === 0 ? k[i * D + d] : x.queue[(j - 1) * D + d]);
      logits[j] = s * invT;
    }
    let m = -Infinity;
    for (const l of logits) m = Math.max(m, l);
    let z = 0;
    for (const l of logits) z += Math.exp(l - m);
    const lse = m + Math.log(z);
    loss += (lse - logits[0]) / B;
    for (let j = 0; j <= Q; j++) {
      const g = ((Math.exp(logits[j] - lse) - (j === 0 ? 1 : 0)) * invT) / B;
      for (let d = 0; d < D; d++) dq[i * D + d] += g * (j === 0 ? k[i * D + d] : x.queue[(j - 1) * D + d]);
    }
  }
  const dqraw = rowsRef.l2NormalizeBackward(q, qn.norm, dq, B, D);
  const dY1 = new Float64Array(B * hw * D);
  for (let b = 0; b < B; b++) {
    for (let p = 0; p < hw; p++) for (let d = 0; d < D; d++) dY1[(b * hw + p) * D + d] = dqraw[b * D + d] / hw;
  }
  return { loss, dY1, keys: k };
}
