/**
 * The kernels: elementwise, reductions, row operations (softmax, log-softmax, cross-entropy, L2
 * normalisation), transposes, GEMM and the convolutions built on it, batch norm, pooling and the optimiser
 * updates. Each comes with a float64 host reference (`…Ref`) that the tests compare it against, and
 * {@link selfCheck} runs the foundation kernels against their references on the current adapter.
 *
 * @example A matrix product checked against its reference
 * ```ts
 * import { getGpu, Recorder, Tensor } from "../gpu/mod.ts";
 * import { matmul, matmulRef } from "./mod.ts";
 *
 * const gpu = await getGpu();
 * const a = [1, 2, 3, 4, 5, 6], b = [1, 0, 0, 1, 1, 1];
 * const c = Tensor.empty(gpu, [2, 2]);
 * const op = await matmul(gpu, Tensor.from(gpu, [2, 3], a), Tensor.from(gpu, [3, 2], b), c, 2, 3, 2);
 * new Recorder(gpu).run(op).submit();
 * console.log(await c.read(), matmulRef(a, b, 2, 3, 2));
 * ```
 *
 * @module
 */
export {
  add,
  axpy,
  elementwise,
  type ElementwiseRef,
  elementwiseRef,
  mul,
  relu,
  reluBackward,
  scale,
} from "./elementwise.ts";
export type { ElementwiseOp } from "./wgsl/elementwise.ts";
export { RowCode, type RowKernel } from "./wgsl/rows.ts";
export type { GemmShape } from "./wgsl/gemm.ts";
export {
  axisView,
  reduceAxis,
  reduceAxisBackward,
  reduceAxisBackwardRef,
  reduceAxisRef,
  reducedShape,
} from "./reduce.ts";
export type { ReduceKind } from "./reduce.ts";
export {
  crossEntropy,
  crossEntropyBackward,
  L2_EPS,
  l2Normalize,
  l2NormalizeBackward,
  logSoftmax,
  logSoftmaxBackward,
  rowOp,
  type RowsRef,
  rowsRef,
  rowVariantFor,
  softCrossEntropy,
  softCrossEntropyBackward,
  softmax,
  softmaxBackward,
} from "./rows.ts";
export type { RowVariant } from "./rows.ts";
export { transpose, transposeRef, transposeVariantFor } from "./transpose.ts";
export type { TransposeVariant } from "./transpose.ts";
export { selfCheck } from "./selfcheck.ts";
export type { SelfCheckResult } from "./selfcheck.ts";
export {
  chooseSplits,
  chooseTile,
  convDgrad,
  convDgradRef,
  convFlops,
  convForward,
  convForwardRef,
  type ConvGeom,
  convOutSize,
  convWgrad,
  convWgradRef,
  denseGeom,
  type GemmTile,
  matmul,
  matmulRef,
  matmulTA,
  type ProductOptions,
} from "./gemm.ts";
export {
  bnBackward,
  bnBackwardRef,
  type BnForward,
  bnForwardEval,
  bnForwardRef,
  bnForwardTrain,
  type BnSaved,
  type BnShape,
} from "./batchnorm.ts";
export {
  globalAvgPool,
  globalAvgPoolBackward,
  maxPool,
  maxPoolBackward,
  maxPoolBackwardRef,
  maxPoolRef,
  type PoolGeom,
  poolOutSize,
} from "./pool.ts";
export { emaUpdate, type SgdOptions, sgdRef, sgdStep } from "./optim.ts";
