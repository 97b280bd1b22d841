/**
 * Measurements behind `plrc bench` and `deno bench`: the foundation kernels, GEMM and convolution shapes of a
 * ResNet, one backbone or whole PLRC training step, and the data pipeline (sources, views, feeder).
 *
 * @example Time the foundation kernels at a small scale
 * ```ts
 * import { getGpu } from "../gpu/mod.ts";
 * import { benchKernels } from "./mod.ts";
 *
 * const rows = await benchKernels(await getGpu(), { scale: 0.125, reps: 2 });
 * console.log(rows.map((r) => `${r.kernel} ${r.ms.toFixed(3)} ms`).join("\n"));
 * ```
 *
 * @module
 */
export { benchKernels, type KernelCase, kernelCases, type KernelMeasurement, timeCase } from "./kernels.ts";
export {
  backboneStep,
  benchConv,
  benchGemm,
  type BenchProgress,
  benchResnetStep,
  distinctConvs,
  type EngineMeasurement,
} from "./engine.ts";
export { benchStep, type StepMeasurement } from "./step.ts";
export { benchDataFeeder, type DataFeederMeasurement, type DataFeederOptions } from "./data_feeder.ts";
export { benchDataSources, type DataBenchOptions, type DataSourceMeasurement } from "./data_sources.ts";
export { benchDataViews, type DataViewsMeasurement, type DataViewsOptions } from "./data_views.ts";
