/**
 * The losses, each a recorded GPU graph that owns its buffers, beside a float64 host reference: image-level
 * contrast with a queue of keys (MoCo), point-level contrast between matched points of two views, the
 * point-affinity distillation, and the CenterNet detection loss used by the detection evaluation.
 *
 * @example Heat-map targets of one box
 * ```ts
 * import { centerNetTargets } from "./mod.ts";
 *
 * const t = centerNetTargets([[{ box: [8, 8, 24, 24], classId: 0 }]], 8, 8, 4, 2);
 * console.log(t.centres);
 * console.log(Math.max(...t.heat)); // 1 at the centre cell
 * ```
 *
 * @module
 */
export {
  buildCenterNetLoss,
  CENTERNET_WEIGHTS,
  type CenterNetLoss,
  centerNetLossRef,
  type CenterNetTargets,
  centerNetTargets,
  type CenterNetWeights,
  type ClassBox,
} from "./centernet.ts";
export {
  buildImageContrast,
  IMAGE_TEMPERATURE,
  type ImageContrast,
  type ImageContrastOptions,
  imageContrastRef,
  type ImageContrastRefInput,
  initQueue,
} from "./image_contrast.ts";
export {
  buildPointContrast,
  POINT_SCALE,
  POINT_TEMPERATURE,
  type PointContrast,
  type PointContrastOptions,
  pointContrastRef,
  type PointContrastRefInput,
  type PointInputs,
  pointInputsFromBatch,
  pointSamplingCsr,
  type SamplingCsr,
} from "./point_contrast.ts";
export {
  buildDistillation,
  centerAlignment,
  type Distillation,
  DistillCollapseMonitor,
  distillFusedRef,
  distillNaiveRef,
  type DistillOptions,
  type DistillPairs,
  type DistillRefInput,
  type DistillRefOutput,
  type DistillVariant,
} from "./distill.ts";
