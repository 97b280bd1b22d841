/**
 * Pre-training: the configuration (schema, presets, resolution of `--set`-style overrides, derived values and
 * schedules), the plan made from a configuration and an image source, the PLRC step (forward, losses,
 * backward and optimiser update recorded into one submit), the training loop, and checkpoints.
 *
 * @example Two pre-training steps on the built-in scenes
 * ```ts
 * import { getGpu } from "../gpu/mod.ts";
 * import { scenesSource } from "../data/mod.ts";
 * import { makePlan, regionModeOf, resolveConfig, train } from "./mod.ts";
 *
 * const cfg = resolveConfig({ sets: ["preset=cpu-tiny", "train.maxSteps=2", "data.workers=0"] });
 * const source = scenesSource(cfg.data.scenes, regionModeOf(cfg));
 * const out = await Deno.makeTempDir();
 * const result = await train(await getGpu(), makePlan(cfg, source, out, { quiet: true }), () => {});
 * console.log(result.steps, result.checkpoint); // 2 …/checkpoints/last.safetensors
 * await Deno.remove(out, { recursive: true });
 * ```
 *
 * @module
 */
export * from "./config/mod.ts";
export { UsageError } from "../util/errors.ts";
export { makePlan, type PlanOptions, stepConfigOf } from "./plan.ts";
export {
  batchIndices,
  batchRequests,
  formatDuration,
  type LogSink,
  type MetricRecord,
  type Monitor,
  train,
  type TrainPlan,
  type TrainRanks,
  type TrainResult,
} from "./trainer.ts";
export {
  PlrcStep,
  STEP_SCALARS,
  type StepBufferPart,
  type StepCommTimes,
  type StepConfig,
  type StepLosses,
  type StepRanks,
  type StepSchedule,
} from "./step.ts";
export {
  type ExchangeTimes,
  routeBlocks,
  type ShuffleRoutes,
  shuffleRoutes,
  SumExchange,
  type SumRange,
} from "./exchange.ts";
export {
  CHECKPOINT_FORMAT,
  type CheckpointContent,
  CheckpointError,
  type CheckpointFile,
  checkpointName,
  LAST_CHECKPOINT,
  latestCheckpoint,
  loadCheckpoint,
  readCheckpointFile,
  readCheckpointMeta,
  saveCheckpoint,
} from "./checkpoint.ts";
export { cosineLr, emaMomentum, teacherTemperature } from "./schedule.ts";
export { MetricsRing, type StepScalars } from "./metrics_ring.ts";
