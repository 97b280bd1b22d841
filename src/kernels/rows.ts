/**
 * Row-wise ops over [rows, cols]: softmax, log-softmax, L2 normalisation, cross-entropy with logits
 * (class-index or soft targets), each forward and backward, with float64 references.
 *
 * @module
 */
import { ROW_KERNELS, rowGrid, type RowKernel, rowSpec, type RowVariant } from "./wgsl/rows.ts";
import type { Gpu } from "../gpu/device.ts";
import { bind, type Dispatch } from "../gpu/kernel.ts";
import type { Tensor } from "../gpu/tensor.ts";

export type { RowVariant };

/** The row variant that suits the adapter: serial rows on CPU adapters, workgroup rows on GPUs. */
export function rowVariantFor(gpu: Gpu): RowVariant {
  return gpu.summary.adapterClass === "cpu" ? "thread" : "workgroup";
}

/** PyTorch's default `eps` of `F.normalize`. */
export const L2_EPS = 1e-12;

function rowsCols(t: Tensor): [number, number] {
  if (t.shape.length < 1) throw new Error(`row op: "${t.name}" must have at least one dimension`);
  const cols = t.shape[t.shape.length - 1];
  return [t.numel / Math.max(cols, 1), cols];
}

/** Binds a row kernel; the first tensor fixes [rows, cols] (last axis = cols). */
export function rowOp(
  gpu: Gpu,
  k: RowKernel,
  tensors: Tensor[],
  scalars: Record<string, number> = {},
  variant: RowVariant = rowVariantFor(gpu),
): Promise<Dispatch> {
  const [rows, cols] = rowsCols(tensors[0]);
  return bind(gpu, rowSpec(k, variant), tensors, { rows, cols, ...scalars }, rowGrid(variant, rows));
}

const K = ROW_KERNELS;
/** `y = softmax(x)` along the last axis. */
export function softmax(gpu: Gpu, x: Tensor, y: Tensor, v?: RowVariant): Promise<Dispatch> {
  return rowOp(gpu, K.softmax, [x, y], {}, v);
}
/** `dx = y ⊙ (dy − ⟨y, dy⟩)`. */
export function softmaxBackward(gpu: Gpu, y: Tensor, dy: Tensor, dx: Tensor, v?: RowVariant): Promise<Dispatch> {
  return rowOp(gpu, K.softmaxBackward, [y, dy, dx], {}, v);
}
/** `y = x − logsumexp(x)`. */
export function logSoftmax(gpu: Gpu, x: Tensor, y: Tensor, v?: RowVariant): Promise<Dispatch> {
  return rowOp(gpu, K.logSoftmax, [x, y], {}, v);
}
/** `dx = dy − exp(y) Σ dy`. */
export function logSoftmaxBackward(gpu: Gpu, y: Tensor, dy: Tensor, dx: Tensor, v?: RowVariant): Promise<Dispatch> {
  return rowOp(gpu, K.logSoftmaxBackward, [y, dy, dx], {}, v);
}
/** `y = x / max(‖x‖, eps)`, also writing `norm[row] = ‖x‖` for the backward. */
export function l2Normalize(
  gpu: Gpu,
  x: Tensor,
  y: Tensor,
  norm: Tensor,
  eps = L2_EPS,
  v?: RowVariant,
): Promise<Dispatch> {
  return rowOp(gpu, K.l2Normalize, [x, y, norm], { eps }, v);
}
/** `dx = (dy − y⟨y, dy⟩) / ‖x‖` (or `dy / eps` below eps, as PyTorch). */
export function l2NormalizeBackward(
  gpu: Gpu,
  y: Tensor,
  norm: Tensor,
  dy: Tensor,
  dx: Tensor,
  eps = L2_EPS,
  v?: RowVariant,
): Promise<Dispatch> {
  return rowOp(gpu, K.l2NormalizeBackward, [y, norm, dy, dx], { eps }, v);
}
/** Per-row `loss = logsumexp(x) − x[target]` (i32 targets), saving `lse` for the backward. */
export function crossEntropy(
  gpu: Gpu,
  x: Tensor,
  target: Tensor,
  loss: Tensor,
  lse: Tensor,
  v?: RowVariant,
): Promise<Dispatch> {
  return rowOp(gpu, K.crossEntropy, [x, target, loss, lse], {}, v);
}
/** `dx = (softmax(x) − onehot(target)) · dloss[row]`. */
export function crossEntropyBackward(
  gpu: Gpu,
  x: Tensor,
  lse: Tensor,
  target: Tensor,
  dloss: Tensor,
  dx: Tensor,
  v?: RowVariant,
): Promise<Dispatch> {
  return rowOp(gpu, K.crossEntropyBackward, [x, lse, target, dloss, dx], {}, v);
}
/** Per-row `loss = −Σ t · log_softmax(x)` for soft targets `t`. */
export function softCrossEntropy(
  gpu: Gpu,
  x: Tensor,
  target: Tensor,
  loss: Tensor,
  lse: Tensor,
  v?: RowVariant,
): Promise<Dispatch> {
  return rowOp(gpu, K.softCrossEntropy, [x, target, loss, lse], {}, v);
}
/** `dx = (softmax(x) Σt − t) · dloss[row]`. */
export function softCrossEntropyBackward(
  gpu: Gpu,
  x: Tensor,
  lse: Tensor,
  target: Tensor,
  dloss: Tensor,
  dx: Tensor,
  v?: RowVariant,
): Promise<Dispatch> {
  return rowOp(gpu, K.softCrossEntropyBackward, [x, lse, target, dloss, dx], {}, v);
}

// ---------------------------------------------------------------------------------------------------------
// float64 references

function eachRow(rows: number, cols: number, f: (r: number, base: number) => void): void {
  for (let r = 0; r < rows; r++) f(r, r * cols);
}

function lseRow(x: ArrayLike<number>, base: number, cols: number): number {
  let m = -Infinity;
  for (let j = 0; j < cols; j++) m = Math.max(m, x[base + j]);
  let s = 0;
  for (let j = 0; j < cols; j++) s += Math.exp(x[base + j] - m);
  return m + Math.log(s);
}

/** Signatures of the float64 references. */
export interface RowsRef {
  /** Softmax of each row. */
  softmax(x: ArrayLike<number>, rows: number, cols: number): Float64Array;
  /** Gradient of the softmax input from the output `y` and its gradient. */
  softmaxBackward(y: ArrayLike<number>, dy: ArrayLike<number>, rows: number, cols: number): Float64Array;
  /** Log-softmax of each row. */
  logSoftmax(x: ArrayLike<number>, rows: number, cols: number): Float64Array;
  /** Gradient of the log-softmax input from the output `y` and its gradient. */
  logSoftmaxBackward(y: ArrayLike<number>, dy: ArrayLike<number>, rows: number, cols: number): Float64Array;
  /** Each row divided by its L2 norm (at least `eps`), with the norms. */
  l2Normalize(x: ArrayLike<number>, rows: number, cols: number, eps?: number): { y: Float64Array; norm: Float64Array };
  /** Gradient of the L2-normalisation input. */
  l2NormalizeBackward(
    y: ArrayLike<number>,
    norm: ArrayLike<number>,
    dy: ArrayLike<number>,
    rows: number,
    cols: number,
    eps?: number,
  ): Float64Array;
  /** Cross-entropy of each row against an integer class `target`, with the log-sum-exp. */
  crossEntropy(
    x: ArrayLike<number>,
    target: ArrayLike<number>,
    rows: number,
    cols: number,
  ): { loss: Float64Array; lse: Float64Array };
  /** Gradient of the cross-entropy input, scaled by `dloss` per row. */
  crossEntropyBackward(
    x: ArrayLike<number>,
    target: ArrayLike<number>,
    dloss: ArrayLike<number>,
    rows: number,
    cols: number,
  ): Float64Array;
  /** Cross-entropy of each row against a target distribution `t`, with the log-sum-exp. */
  softCrossEntropy(
    x: ArrayLike<number>,
    t: ArrayLike<number>,
    rows: number,
    cols: number,
  ): { loss: Float64Array; lse: Float64Array };
  /** Gradient of the soft cross-entropy input, scaled by `dloss` per row. */
  softCrossEntropyBackward(
    x: ArrayLike<number>,
    t: ArrayLike<number>,
    dloss: ArrayLike<number>,
    rows: number,
    cols: number,
  ): Float64Array;
}

/** Float64 references of the row ops (arrays are [rows, cols] row-major). */
export const rowsRef: RowsRef = {
  softmax(x: ArrayLike<number>, rows: number, cols: number): Float64Array {
    const y = new Float64Array(rows * cols);
    eachRow(rows, cols, (_, b) => {
      const l = lseRow(x, b, cols);
      for (let j = 0; j < cols; j++) y[b + j] = Math.exp(x[b + j] - l);
    });
    return y;
  },
  softmaxBackward(y: ArrayLike<number>, dy: ArrayLike<number>, rows: number, cols: number): Float64Array {
    const dx = new Float64Array(rows * cols);
    eachRow(rows, cols, (_, b) => {
      let d = 0;
      for (let j = 0; j < cols; j++) d += y[b + j] * dy[b + j];
      for (let j = 0; j < cols; j++) dx[b + j] = y[b + j] * (dy[b + j] - d);
    });
    return dx;
  },
  logSoftmax(x: ArrayLike<number>, rows: number, cols: number): Float64Array {
    const y = new Float64Array(rows * cols);
    eachRow(rows, cols, (_, b) => {
      const l = lseRow(x, b, cols);
      for (let j = 0; j < cols; j++) y[b + j] = x[b + j] - l;
    });
    return y;
  },
  logSoftmaxBackward(y: ArrayLike<number>, dy: ArrayLike<number>, rows: number, cols: number): Float64Array {
    const dx = new Float64Array(rows * cols);
    eachRow(rows, cols, (_, b) => {
      let g = 0;
      for (let j = 0; j < cols; j++) g += dy[b + j];
      for (let j = 0; j < cols; j++) dx[b + j] = dy[b + j] - Math.exp(y[b + j]) * g;
    });
    return dx;
  },
  l2Normalize(x: ArrayLike<number>, rows: number, cols: number, eps = L2_EPS): { y: Float64Array; norm: Float64Array } {
    const y = new Float64Array(rows * cols), norm = new Float64Array(rows);
    eachRow(rows, cols, (r, b) => {
      let ss = 0;
      for (let j = 0; j < cols; j++) ss += x[b + j] * x[b + j];
      norm[r] = Math.sqrt(ss);
      const inv = 1 / Math.max(norm[r], eps);
      for (let j = 0; j < cols; j++) y[b + j] = x[b + j] * inv;
    });
    return { y, norm };
  },
  l2NormalizeBackward(
    y: ArrayLike<number>,
    norm: ArrayLike<number>,
    dy: ArrayLike<number>,
    rows: number,
    cols: number,
    eps = L2_EPS,
  ): Float64Array {
    const dx = new Float64Array(rows * cols);
    eachRow(rows, cols, (r, b) => {
      let d = 0;
      for (let j = 0; j < cols; j++) d += y[b + j] * dy[b + j];
      const inv = 1 / Math.max(norm[r], eps), proj = norm[r] > eps ? d : 0;
      for (let j = 0; j < cols; j++) dx[b + j] = (dy[b + j] - y[b + j] * proj) * inv;
    });
    return dx;
  },
  crossEntropy(
    x: ArrayLike<number>,
    target: ArrayLike<number>,
    rows: number,
    cols: number,
  ): { loss: Float64Array; lse: Float64Array } {
    const loss = new Float64Array(rows), lse = new Float64Array(rows);
    eachRow(rows, cols, (r, b) => {
      lse[r] = lseRow(x, b, cols);
      loss[r] = lse[r] - x[b + target[r]];
    });
    return { loss, lse };
  },
  crossEntropyBackward(
    x: ArrayLike<number>,
    target: ArrayLike<number>,
    dloss: ArrayLike<number>,
    rows: number,
    cols: number,
  ): Float64Array {
    const dx = new Float64Array(rows * cols);
    eachRow(rows, cols, (r, b) => {
      const l = lseRow(x, b, cols);
      for (let j = 0; j < cols; j++) dx[b + j] = (Math.exp(x[b + j] - l) - (j === target[r] ? 1 : 0)) * dloss[r];
    });
    return dx;
  },
  softCrossEntropy(
    x: ArrayLike<number>,
    t: ArrayLike<number>,
    rows: number,
    cols: number,
  ): { loss: Float64Array; lse: Float64Array } {
    const loss = new Float64Array(rows), lse = new Float64Array(rows);
    eachRow(rows, cols, (r, b) => {
      lse[r] = lseRow(x, b, cols);
      let s = 0;
      for (let j = 0; j < cols; j++) s += t[b + j] * (x[b + j] - lse[r]);
      loss[r] = -s;
    });
    return { loss, lse };
  },
  softCrossEntropyBackward(
    x: ArrayLike<number>,
    t: ArrayLike<number>,
    dloss: ArrayLike<number>,
    rows: number,
    cols: number,
  ): Float64Array {
    const dx = new Float64Array(rows * cols);
    eachRow(rows, cols, (r, b) => {
      const l = lseRow(x, b, cols);
      let ts = 0;
      for (let j = 0; j < cols; j++) ts += t[b + j];
      for (let j = 0; j < cols; j++) dx[b + j] = (Math.exp(x[b + j] - l) * ts - t[b + j]) * dloss[r];
    });
    return dx;
  },
};
