/**
 * Elementwise ops (add, mul, scale, axpy, ReLU and its backward): GPU builders and float64 references.
 *
 * Backward passes that are themselves elementwise reuse these ops: d(a+b) is `dy` for both inputs,
 * d(a·b) is `mul(dy, b)` and `mul(dy, a)`, d(αa) is `scale(dy, α)`.
 *
 * @module
 */
import { ELEMENTWISE, ELEMENTWISE_WG, type ElementwiseOp, elementwiseSpec } from "./wgsl/elementwise.ts";
import type { Gpu } from "../gpu/device.ts";
import { bind, type Dispatch, grid1d } from "../gpu/kernel.ts";
import type { Tensor } from "../gpu/tensor.ts";

/** Binds `op` over `inputs` into `out`; uses vec4 loads when the element count allows. */
export function elementwise(
  gpu: Gpu,
  op: ElementwiseOp,
  inputs: Tensor[],
  out: Tensor,
  scalars: Record<string, number> = {},
  vec4 = out.numel % 4 === 0,
): Promise<Dispatch> {
  for (const t of inputs) {
    if (t.numel !== out.numel) {
      throw new Error(`${op.name}: input "${t.name}" has ${t.numel} elements, output "${out.name}" ${out.numel}`);
    }
    if (t.dtype !== "f32" || out.dtype !== "f32") throw new Error(`${op.name}: f32 tensors only`);
  }
  const n = vec4 ? out.numel / 4 : out.numel;
  return bind(gpu, elementwiseSpec(op, vec4), [...inputs, out], { n, ...scalars }, grid1d(n, ELEMENTWISE_WG));
}

/** `y = a + b`. */
export function add(gpu: Gpu, a: Tensor, b: Tensor, y: Tensor): Promise<Dispatch> {
  return elementwise(gpu, ELEMENTWISE.add, [a, b], y);
}
/** `y = a * b`. */
export function mul(gpu: Gpu, a: Tensor, b: Tensor, y: Tensor): Promise<Dispatch> {
  return elementwise(gpu, ELEMENTWISE.mul, [a, b], y);
}
/** `y = alpha * a`. */
export function scale(gpu: Gpu, a: Tensor, alpha: number, y: Tensor): Promise<Dispatch> {
  return elementwise(gpu, ELEMENTWISE.scale, [a], y, { alpha });
}
/** `y += alpha * a` (in place). */
export function axpy(gpu: Gpu, alpha: number, a: Tensor, y: Tensor): Promise<Dispatch> {
  return elementwise(gpu, ELEMENTWISE.axpy, [a], y, { alpha });
}
/** `y = max(a, 0)`. */
export function relu(gpu: Gpu, a: Tensor, y: Tensor): Promise<Dispatch> {
  return elementwise(gpu, ELEMENTWISE.relu, [a], y);
}
/** `dx = dy · [x > 0]`. */
export function reluBackward(gpu: Gpu, x: Tensor, dy: Tensor, dx: Tensor): Promise<Dispatch> {
  return elementwise(gpu, ELEMENTWISE.reluBackward, [x, dy], dx);
}

const map = (n: number, f: (i: number) => number) => Float64Array.from({ length: n }, (_, i) => f(i));

/** Signatures of the float64 references. */
export interface ElementwiseRef {
  /** a + b. */
  add(a: ArrayLike<number>, b: ArrayLike<number>): Float64Array;
  /** a · b, elementwise. */
  mul(a: ArrayLike<number>, b: ArrayLike<number>): Float64Array;
  /** alpha · a. */
  scale(a: ArrayLike<number>, alpha: number): Float64Array;
  /** alpha · a + y. */
  axpy(alpha: number, a: ArrayLike<number>, y: ArrayLike<number>): Float64Array;
  /** max(a, 0). */
  relu(a: ArrayLike<number>): Float64Array;
  /** dy where x > 0, else 0. */
  reluBackward(x: ArrayLike<number>, dy: ArrayLike<number>): Float64Array;
}

/** Float64 references of the elementwise ops. */
export const elementwiseRef: ElementwiseRef = {
  add: (a: ArrayLike<number>, b: ArrayLike<number>) => map(a.length, (i) => a[i] + b[i]),
  mul: (a: ArrayLike<number>, b: ArrayLike<number>) => map(a.length, (i) => a[i] * b[i]),
  scale: (a: ArrayLike<number>, alpha: number) => map(a.length, (i) => alpha * a[i]),
  axpy: (alpha: number, a: ArrayLike<number>, y: ArrayLike<number>) => map(a.length, (i) => y[i] + alpha * a[i]),
  relu: (a: ArrayLike<number>) => map(a.length, (i) => Math.max(a[i], 0)),
  reluBackward: (x: ArrayLike<number>, dy: ArrayLike<number>) => map(x.length, (i) => (x[i] > 0 ? dy[i] : 0)),
};
