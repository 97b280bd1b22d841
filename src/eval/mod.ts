/**
 * Evaluation of a pre-trained backbone: region k-NN and a linear segmentation probe on its frozen features,
 * and a small CenterNet detector trained on it, on the held-out built-in scenes or a COCO set; COCO-style AP;
 * loading an encoder from a checkpoint; and the multi-seed comparison tables.
 *
 * @example k-NN on a randomly initialised backbone
 * ```ts
 * import { getGpu } from "../gpu/mod.ts";
 * import { dataConfigOf } from "../train/mod.ts";
 * import { heldOutScenes, knnEval, loadEncoder } from "./mod.ts";
 *
 * const gpu = await getGpu();
 * const { cfg, store, prefix, encoder } = await loadEncoder(gpu, "random", { sets: ["preset=cpu-tiny"] });
 * const images = heldOutScenes(cfg.data.scenes, cfg.data.resolution, 8).images;
 * const { mean, std } = dataConfigOf(cfg);
 * const r = await knnEval(gpu, store, encoder.backbone, images.slice(0, 6), images.slice(6), { prefix, mean, std });
 * console.log(r.accuracy, r.majority);
 * ```
 *
 * @module
 */
export {
  type ApResult,
  averagePrecision,
  type Box,
  type Detection,
  evaluateDetections,
  type GtBox,
  iou,
  IOU_THRESHOLDS,
} from "./ap.ts";
export {
  buildDetector,
  type C3Stats,
  decodeDetections,
  DETECT_DEFAULTS,
  detectEval,
  type DetectLoss,
  type DetectOptions,
  type DetectorGraph,
  type DetectResult,
  type DetImage,
  type SgdSettings,
} from "./detect.ts";
export { cocoImages, type EvalImage, type EvalSet, heldOutScenes, sceneImages, sceneSet } from "./datasets.ts";
export { type LoadedEncoder, loadEncoder, pointHeadWeights } from "./load.ts";
export {
  ablationTable,
  aggregate,
  type Baseline,
  type Cell,
  type ComparePlan,
  comparePlan,
  type CompareSize,
  type EvalJob,
  type EvalRecord,
  mainTable,
  meanStd,
  type Method as CompareMethod,
  METHODS as COMPARE_METHODS,
  type PretrainJob,
  type Protocol,
  PROTOCOL_METRICS,
  SIZES as COMPARE_SIZES,
  type VariantName,
  VARIANTS,
} from "./compare.ts";
export { knnClassify, knnEval, type KnnResult, type LabelledImage, regionFeatures } from "./knn.ts";
export { knnMonitor } from "./monitor.ts";
export {
  downsampleLabels,
  fitSoftmax,
  fitSoftmaxRef,
  linearEval,
  type LinearResult,
  meanIoU,
  type ProbeFit,
  type ProbeOptions,
  probePredictor,
  probeStepSize,
  type SegImage,
  standardise,
  trainLinear,
} from "./linear.ts";
export {
  concatLevels,
  FEATURE_LEVELS,
  type FeatureLevel,
  type FeatureOptions,
  type FrozenBackbone,
  frozenBackbone,
  type LevelShape,
  parseLevels,
  upsampleBilinear,
} from "./features.ts";
