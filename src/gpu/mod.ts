/**
 * The GPU runtime: the device (adapter choice, memory accounting, errors), tensors in GPU buffers, compiled
 * kernels with their bindings, and the recorder that puts many dispatches in one submit (with an optional
 * profiler reading timestamp queries).
 *
 * @example Softmax of two rows on the GPU
 * ```ts
 * import { getGpu, Recorder, Tensor } from "./mod.ts";
 * import { softmax } from "../kernels/mod.ts";
 *
 * const gpu = await getGpu();
 * const x = Tensor.from(gpu, [2, 3], [1, 2, 3, 1, 1, 1]);
 * const y = Tensor.empty(gpu, [2, 3]);
 * new Recorder(gpu).run(await softmax(gpu, x, y)).submit();
 * console.log(await y.read());
 * ```
 *
 * @module
 */
export {
  formatBytes,
  getGpu,
  LimitError,
  NoAdapterError,
  OutOfMemoryError,
  requestGpu,
  withMemoryCheck,
} from "./device.ts";
export type { AdapterClass, AdapterSummary, Backend, Gpu } from "./device.ts";
export { BufferPool, DTYPE_BYTES, numel, readBuffer, Tensor } from "./tensor.ts";
export type { DType, HostArray } from "./tensor.ts";
export { bind, compileKernel, Dispatch, grid1d, KernelCompileError, kernelSource, pipelineCount } from "./kernel.ts";
export type { Access, BufferDecl, Grid, Kernel, KernelSpec, Params, UniformDecl } from "./kernel.ts";
export { TensorArena } from "./bound.ts";
export type { Bound, OwnsTensors } from "./bound.ts";
export { Profiler, Recorder, summarise, sync } from "./recorder.ts";
export { Readback } from "./readback.ts";
export type { ReadRange } from "./readback.ts";
