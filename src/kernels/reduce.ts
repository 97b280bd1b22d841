/**
 * Deterministic sum/mean over one axis and the broadcast that is their backward.
 *
 * @module
 */
import { broadcastSpec, REDUCE_WG, reduceSumSpec } from "./wgsl/reduce.ts";
import type { Bound } from "../gpu/bound.ts";
import type { Gpu } from "../gpu/device.ts";
import { bind, type Dispatch, grid1d } from "../gpu/kernel.ts";
import { Tensor } from "../gpu/tensor.ts";

/** Reduction kinds. */
export type ReduceKind = "sum" | "mean";

/** Splits `shape` at `axis` into [outer, len, inner]. */
export function axisView(shape: readonly number[], axis: number): [number, number, number] {
  const a = axis < 0 ? axis + shape.length : axis;
  if (a < 0 || a >= shape.length) throw new Error(`axis ${axis} out of range for shape [${shape}]`);
  const prod = (s: readonly number[]) => s.reduce((p, d) => p * d, 1);
  return [prod(shape.slice(0, a)), shape[a], prod(shape.slice(a + 1))];
}

/** Shape after reducing `axis` (the axis is dropped). */
export function reducedShape(shape: readonly number[], axis: number): number[] {
  const a = axis < 0 ? axis + shape.length : axis;
  return shape.filter((_, i) => i !== a);
}

/** Outputs below this count get a chunked first pass so that enough invocations run. */
const SPLIT_BELOW = 2048;
/** Chunk length of the first pass. */
const CHUNK = 256;

/**
 * `y = sum|mean of x over axis`. Few outputs along a long axis take two passes (chunk partial sums,
 * then their sum); the order of additions is fixed either way.
 */
export async function reduceAxis(
  gpu: Gpu,
  x: Tensor,
  axis: number,
  kind: ReduceKind,
  y: Tensor,
  split: boolean | "auto" = "auto",
): Promise<Bound> {
  const [outer, len, inner] = axisView(x.shape, axis);
  if (y.numel !== outer * inner) throw new Error(`reduce: output "${y.name}" must have ${outer * inner} elements`);
  const scale = kind === "mean" ? 1 / len : 1;
  const spec = reduceSumSpec();
  const outputs = outer * inner;
  const doSplit = split === "auto" ? outputs < SPLIT_BELOW && len > 2 * CHUNK : split;
  if (!doSplit) {
    const d = await bind(
      gpu,
      spec,
      [x, y],
      { outer, len, inner, chunk: len, chunks: 1, scale },
      grid1d(outputs, REDUCE_WG),
    );
    return { dispatches: [d], owned: [] };
  }
  const chunks = Math.ceil(len / CHUNK);
  const partial = Tensor.empty(gpu, [outer, chunks, inner], "f32", `${x.name} partial sums`);
  const p1 = await bind(
    gpu,
    spec,
    [x, partial],
    { outer, len, inner, chunk: CHUNK, chunks, scale: 1 },
    grid1d(outer * chunks * inner, REDUCE_WG),
  );
  const p2 = await bind(
    gpu,
    spec,
    [partial, y],
    { outer, len: chunks, inner, chunk: chunks, chunks: 1, scale },
    grid1d(outputs, REDUCE_WG),
  );
  return { dispatches: [p1, p2], owned: [partial] };
}

/** Backward of {@link reduceAxis}: `dx[o, l, i] = dy[o, i]` (÷ len for mean). */
export function reduceAxisBackward(
  gpu: Gpu,
  dy: Tensor,
  shape: readonly number[],
  axis: number,
  kind: ReduceKind,
  dx: Tensor,
): Promise<Dispatch> {
  const [outer, len, inner] = axisView(shape, axis);
  const scale = kind === "mean" ? 1 / len : 1;
  return bind(gpu, broadcastSpec(), [dy, dx], { outer, len, inner, scale }, grid1d(outer * len * inner, REDUCE_WG));
}

/** Float64 reference of {@link reduceAxis}. */
export function reduceAxisRef(
  x: ArrayLike<number>,
  shape: readonly number[],
  axis: number,
  kind: ReduceKind,
): Float64Array {
  const [outer, len, inner] = axisView(shape, axis);
  const y = new Float64Array(outer * inner);
  for (let o = 0; o < outer; o++) {
    for (let i = 0; i < inner; i++) {
      let s = 0;
      for (let l = 0; l < len; l++) s += x[(o * len + l) * inner + i];
      y[o * inner + i] = kind === "mean" ? s / len : s;
    }
  }
  return y;
}

/** Float64 reference of {@link reduceAxisBackward}. */
export function reduceAxisBackwardRef(
  dy: ArrayLike<number>,
  shape: readonly number[],
  axis: number,
  kind: ReduceKind,
): Float64Array {
  const [outer, len, inner] = axisView(shape, axis);
  const dx = new Float64Array(outer * len * inner);
  const scale = kind === "mean" ? 1 / len : 1;
  for (let t = 0; t < dx.length; t++) {
    const i = t % inner, o = Math.floor(t / (inner * len));
    dx[t] = dy[o * inner + i] * scale;
  }
  return dx;
}
