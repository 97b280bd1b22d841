/**
 * plrc: Point-Level Region Contrast pre-training of detection backbones on WebGPU.
 *
 * This is the library's front door. It currently exports the GPU runtime (device, tensors, kernels,
 * one-submit recording, profiling), the foundation kernels with their float64 references, and
 * safetensors I/O.
 *
 * @example
 * ```ts
 * import { getGpu, Recorder, softmax, Tensor } from "./mod.ts";
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
} from "./src/gpu/device.ts";
export type { AdapterClass, AdapterSummary, Backend, Gpu } from "./src/gpu/device.ts";
export { BufferPool, DTYPE_BYTES, numel, readBuffer, Tensor } from "./src/gpu/tensor.ts";
export type { DType, HostArray } from "./src/gpu/tensor.ts";
export {
  bind,
  compileKernel,
  Dispatch,
  grid1d,
  KernelCompileError,
  kernelSource,
  pipelineCount,
} from "./src/gpu/kernel.ts";
export type { BufferDecl, Grid, Kernel, KernelSpec, Params, UniformDecl } from "./src/gpu/kernel.ts";
export { Profiler, Recorder, summarise, sync } from "./src/gpu/recorder.ts";
export { add, axpy, elementwise, elementwiseRef, mul, relu, reluBackward, scale } from "./src/kernels/elementwise.ts";
export {
  axisView,
  reduceAxis,
  reduceAxisBackward,
  reduceAxisBackwardRef,
  reduceAxisRef,
  reducedShape,
} from "./src/kernels/reduce.ts";
export type { ReduceKind, ReduceOp } from "./src/kernels/reduce.ts";
export {
  crossEntropy,
  crossEntropyBackward,
  L2_EPS,
  l2Normalize,
  l2NormalizeBackward,
  logSoftmax,
  logSoftmaxBackward,
  rowOp,
  rowsRef,
  rowVariantFor,
  softCrossEntropy,
  softCrossEntropyBackward,
  softmax,
  softmaxBackward,
} from "./src/kernels/rows.ts";
export type { RowVariant } from "./src/kernels/rows.ts";
export { transpose, transposeRef, transposeVariantFor } from "./src/kernels/transpose.ts";
export type { TransposeVariant } from "./src/kernels/transpose.ts";
export { selfCheck } from "./src/kernels/selfcheck.ts";
export type { SelfCheckResult } from "./src/kernels/selfcheck.ts";
export {
  decodeSafetensors,
  encodeSafetensors,
  readSafetensors,
  SafetensorsError,
  toFloat32,
  toInt32,
  writeSafetensors,
} from "./src/io/safetensors.ts";
export type { StDType, StInput, StTensor } from "./src/io/safetensors.ts";
export { benchKernels } from "./src/bench/kernels.ts";
export type { KernelMeasurement } from "./src/bench/kernels.ts";
export { VERSION } from "./src/version.ts";

// ---- ResNet engine ----
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
  type SplitOp,
} from "./src/kernels/gemm.ts";
export {
  bnBackward,
  bnBackwardRef,
  type BnForward,
  bnForwardEval,
  bnForwardRef,
  bnForwardTrain,
  type BnSaved,
  type BnShape,
} from "./src/kernels/batchnorm.ts";
export {
  globalAvgPool,
  globalAvgPoolBackward,
  maxPool,
  maxPoolBackward,
  maxPoolBackwardRef,
  maxPoolRef,
  type PoolGeom,
  poolOutSize,
} from "./src/kernels/pool.ts";
export { emaUpdate, type SgdOptions, sgdRef, sgdStep } from "./src/kernels/optim.ts";
export {
  gpuShape,
  hwioToOihw,
  isTrainable,
  oihwToHwio,
  type ParamKind,
  type ParamSpec,
  ParamStore,
} from "./src/nn/params.ts";
export {
  buildResNet,
  initResNet,
  lastBnNames,
  type ResNetBuildOptions,
  type ResNetConfig,
  type ResNetGraph,
  resnetOutChannels,
  resnetPlan,
  resnetSpecs,
  resnetWidths,
} from "./src/models/resnet.ts";
export { benchConv, benchGemm, benchResnetStep, distinctConvs, type EngineMeasurement } from "./src/bench/engine.ts";

// ---- data ----
export { type LabelMap, labelMap, type RgbImage, rgbImage } from "./src/data/image.ts";
export { DecodeError, decodeFile, decodeImage, probeImage } from "./src/data/decode.ts";
export { formatSkipReport, scanFolder } from "./src/data/folder.ts";
export { DEFAULT_MAX_SHORT, loadImage } from "./src/data/cache.ts";
export { maskPathFor, WorkerPool } from "./src/data/pool.ts";
export {
  ordered,
  serveThread,
  ThreadCrashError,
  ThreadPool,
  type ThreadPoolOptions,
  type ThreadReply,
} from "./src/data/threads.ts";
export { BatchFeeder, type FeederOptions, type SampleInit, SamplePool, type SampleRequest } from "./src/data/feeder.ts";
export {
  fhMasksDir,
  folderSource,
  type ImageSource,
  labelMapCandidates,
  type RegionMode,
  scenesSource,
  sourceFromSpec,
  type SourceSpec,
} from "./src/data/sources.ts";
export { exportScenes, type Scene, sceneClassNames, SceneGenerator } from "./src/data/scenes.ts";
export {
  annotationMask,
  type CocoDataset,
  CocoError,
  parseCoco,
  readCoco,
  rleFromString,
  rleToString,
} from "./src/data/coco.ts";
export { defaultFhOptions, defaultMinSize, felzenszwalb } from "./src/data/felzenszwalb.ts";
export { readLabelMapPng, writeLabelMapPng } from "./src/data/labelmap_png.ts";
export {
  type DataConfig,
  dataConfig,
  DEFAULT_DATA_CONFIG,
  makeBatch,
  makeKeyedSample,
  makeSample,
  type PlrcBatch,
  type PlrcSample,
  splitBatch,
} from "./src/data/batch.ts";
export { matchPairs, type Pairs } from "./src/data/pairs.ts";
export { samplePoints, toFeatureGrid, toGridSample } from "./src/data/points.ts";
export { Rng } from "./src/util/rng.ts";
export { blockNoise, type Degradation, degradeLabels, shiftLabels, translateLabels } from "./src/data/degrade.ts";

// ---- PyTorch interop: exports, and backbones read from PyTorch ----
export {
  EXPORT_FORMATS,
  type ExportFormat,
  type HostTensor,
  torchvisionStateDict,
  writeExport,
} from "./src/export/export.ts";
export {
  type ImportedBackbone,
  ImportError,
  readTorchvisionBackbone,
  torchvisionBackbone,
} from "./src/export/import.ts";

// ---- evaluation, comparison, pictures ----
export {
  type ApResult,
  averagePrecision,
  type Box,
  type Detection,
  evaluateDetections,
  type GtBox,
  iou,
  IOU_THRESHOLDS,
} from "./src/eval/ap.ts";
export {
  buildDetector,
  decodeDetections,
  DETECT_DEFAULTS,
  detectEval,
  type DetectOptions,
  type DetectResult,
  type DetImage,
} from "./src/eval/detect.ts";
export { buildCenterNetLoss, centerNetLossRef, centerNetTargets } from "./src/losses/centernet.ts";
export { cocoImages, type EvalImage, sceneSet } from "./src/eval/datasets.ts";
export { type LoadedEncoder, loadEncoder, pointHeadWeights } from "./src/eval/load.ts";
export {
  ablationTable,
  aggregate,
  type ComparePlan,
  comparePlan,
  type CompareSize,
  mainTable,
  meanStd,
  SIZES as COMPARE_SIZES,
} from "./src/eval/compare.ts";
export { affinityMap, bilinearSample, cosine, heatColor, mapViewPoint, pickQueryCells } from "./src/viz/affinity.ts";
export { renderBarChart } from "./src/viz/charts.ts";
export { Canvas, labelColor } from "./src/viz/draw.ts";
export { renderAffinity, renderCurves, renderSample } from "./src/viz/pictures.ts";
export { knnEval, type KnnResult } from "./src/eval/knn.ts";
export { knnMonitor, type Monitor } from "./src/eval/monitor.ts";
export { linearEval, type LinearResult, meanIoU } from "./src/eval/linear.ts";
export { type FrozenBackbone, frozenBackbone } from "./src/eval/features.ts";
