/**
 * From a resolved configuration to what the trainer binds and runs.
 *
 * @module
 */
import { configToYaml, dataConfigOf, deriveConfig, type PlrcConfig, resnetConfigOf, schedules } from "./config/mod.ts";
import type { StepConfig } from "./step.ts";
import type { ImageSource } from "../data/sources.ts";
import type { Monitor, TrainPlan, TrainRanks } from "./trainer.ts";

/** The step's binding parameters from a resolved configuration. */
export function stepConfigOf(cfg: PlrcConfig, d: ReturnType<typeof deriveConfig>): StepConfig {
  const l = cfg.loss;
  return {
    method: cfg.method,
    encoder: {
      backbone: resnetConfigOf(cfg),
      heads: {
        pointHidden: d.pointHidden,
        pointDim: cfg.model.pointDim,
        dinoHidden: d.dinoHidden,
        bottleneck: cfg.model.bottleneck,
        prototypes: cfg.model.prototypes,
      },
    },
    batch: cfg.train.batchSize,
    resolution: cfg.data.resolution,
    bnGroupSize: d.bnGroup,
    shuffleBn: cfg.model.shuffleBn,
    regions: cfg.data.regions.count,
    points: cfg.data.points,
    // detcon: the region contrast alone (the image loss is still computed, for monitoring)
    weights: cfg.method === "detcon"
      ? { image: 0, point: 1, distill: 0 }
      : { image: l.image.weight, point: l.point.weight, distill: l.distill.weight },
    temperatures: {
      image: l.image.temperature,
      point: cfg.method === "detcon" ? l.region.temperature : l.point.temperature,
      pointBase: l.point.baseTemperature,
      student: l.distill.studentTemperature,
      teacher: l.distill.teacherStartTemperature,
    },
    queueSize: l.image.queue,
    affinityScale: l.distill.affinityScale,
    centerMomentum: l.distill.centerMomentum,
    maxPairsPerImage: d.maskSize ** 2 * 4,
    optim: {
      lr: d.lr,
      momentum: cfg.optim.momentum,
      weightDecay: cfg.optim.weightDecay,
      nesterov: cfg.optim.nesterov,
      lars: cfg.optim.lars,
      larsTrust: cfg.optim.larsTrust,
    },
    ema: cfg.ema.momentum,
    seed: cfg.seed,
    accumulate: cfg.train.accumulate,
  };
}

/** What {@link makePlan} takes besides the configuration; each field is copied into the {@link TrainPlan}. */
export interface PlanOptions {
  /** The configuration as saved in checkpoints (default: `cfg` written as YAML). */
  configText?: string;
  /** Continue from this checkpoint. */
  resume?: string;
  /** Print no progress. */
  quiet?: boolean;
  /** Draw a progress bar when stdout is a terminal. */
  progressBar?: boolean;
  /** Time every kernel of one step and log the breakdown. */
  profile?: boolean;
  /** Backbone weights (torchvision names, PyTorch layout) that both encoders start from. */
  init?: Map<string, Float32Array>;
  /** Runs every `monitor.every` steps on the online store. */
  monitor?: Monitor;
  /** Data parallelism: the ranks sharing each batch. */
  ranks?: TrainRanks;
}

/** The whole training plan for `cfg` on `source`, writing into `outDir`. */
export function makePlan(
  cfg: PlrcConfig,
  source: ImageSource,
  outDir: string,
  o: PlanOptions = {},
): TrainPlan {
  const d = deriveConfig(cfg, { datasetSize: source.count });
  return {
    step: stepConfigOf(cfg, d),
    data: dataConfigOf(cfg),
    source,
    workers: d.workers,
    prefetch: cfg.data.prefetch,
    totalSteps: d.totalSteps!,
    stepsPerEpoch: d.stepsPerEpoch!,
    schedules: schedules(cfg, d),
    outDir,
    logInterval: cfg.log.interval,
    checkpointInterval: cfg.checkpoint.unit === "step"
      ? cfg.checkpoint.interval
      : cfg.checkpoint.interval * (d.stepsPerEpoch ?? 1),
    keepLast: cfg.checkpoint.keepLast,
    configText: o.configText ?? configToYaml(cfg),
    resume: o.resume,
    quiet: o.quiet,
    progressBar: o.progressBar,
    profile: o.profile,
    init: o.init,
    monitor: o.monitor,
    ranks: o.ranks,
  };
}
