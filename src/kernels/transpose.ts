/**
 * Batched transpose [B, R, C] → [B, C, R]; its backward is the transpose back.
 *
 * @module
 */
import { transposeGrid, transposeSpec, type TransposeVariant } from "./wgsl/transpose.ts";
import type { Gpu } from "../gpu/device.ts";
import { bind, type Dispatch } from "../gpu/kernel.ts";
import type { Tensor } from "../gpu/tensor.ts";

export type { TransposeVariant };

/** Tiled through workgroup memory on GPUs, direct on CPU adapters. */
export function transposeVariantFor(gpu: Gpu): TransposeVariant {
  return gpu.summary.adapterClass === "cpu" ? "naive" : "tiled";
}

/** `y[b, c, r] = x[b, r, c]`, where x is [..., R, C] (leading axes are the batch). */
export function transpose(
  gpu: Gpu,
  x: Tensor,
  y: Tensor,
  variant: TransposeVariant = transposeVariantFor(gpu),
): Promise<Dispatch> {
  if (x.shape.length < 2) throw new Error(`transpose: "${x.name}" needs at least 2 dimensions`);
  const rows = x.shape[x.shape.length - 2], cols = x.shape[x.shape.length - 1];
  const batch = x.numel / Math.max(rows * cols, 1);
  if (y.numel !== x.numel) throw new Error(`transpose: output "${y.name}" must have ${x.numel} elements`);
  return bind(gpu, transposeSpec(variant), [x, y], { rows, cols }, transposeGrid(rows, cols, batch));
}

/** Float64 reference of {@link transpose}. */
export function transposeRef(x: ArrayLike<number>, batch: number, rows: number, cols: number): Float64Array {
  const y = new Float64Array(batch * rows * cols);
  for (let b = 0; b < batch; b++) {
    for (let r = 0; r < rows; r++) {
      for (let c = 0; c < cols; c++) y[b * rows * cols + c * rows + r] = x[b * rows * cols + r * cols + c];
    }
  }
  return y;
}
