/**
 * Values computed from a configuration, in one place: S = R/4, h = R/32, the scaled learning rate, head widths,
 * ghost-BN groups, steps per epoch and in all, the per-step schedules, the backbone's and the data pipeline's
 * configurations and the region mode. The trainer and the plan read them from here and compute none of them again.
 *
 * @module
 */
import { DEFAULT_PHOTOMETRIC } from "../../data/augment.ts";
import { type DataConfig, dataConfig, DEFAULT_DATA_CONFIG } from "../../data/batch.ts";
import { degrades } from "../../data/degrade.ts";
import { defaultMinSize } from "../../data/felzenszwalb.ts";
import type { RegionMode } from "../../data/sources.ts";
import { type ResNetConfig, resnetOutChannels } from "../../models/resnet.ts";
import { UsageError } from "../../util/errors.ts";
import { cosineLr, emaMomentum, teacherTemperature } from "../schedule.ts";
import type { PlrcConfig } from "./schema.ts";

/** Steps per epoch for `count` images at batch `b` (incomplete batches dropped, as drop_last). */
export function dropLastSteps(count: number, b: number): number {
  return Math.max(1, Math.floor(count / b));
}

// ---------------------------------------------------------------- derived values and schedules

/** Values that follow from the configuration, computed here and nowhere else. */
export interface Derived {
  /** Mask and pair grid S = R/4. */
  maskSize: number;
  /** C5 feature map side h = R/32. */
  featureSize: number;
  /** Learning rate actually used at the peak: optim.lr, scaled by batch / lrReferenceBatch when linear. */
  lr: number;
  /** Channels of C5 (the heads' input). */
  c5: number;
  /** Head widths with auto resolved. */
  pointHidden: number;
  /** DINO head hidden width with auto resolved. */
  dinoHidden: number;
  /** Distillation vector length E = S² + K. */
  distillDim: number;
  /** Ghost-BN group size actually used (at most the batch) and the number of groups. */
  bnGroup: number;
  /** Ghost-BN groups per batch. */
  bnGroups: number;
  /** Felzenszwalb-Huttenlocher minimum size with auto resolved. */
  fhMinSize: number;
  /** Data workers with auto resolved. */
  workers: number;
  /** Steps per epoch and in all (min of epochs × steps and maxSteps); null when the dataset size is unknown. */
  stepsPerEpoch: number | null;
  /** Steps to run: epochs × steps per epoch, or fewer with train.maxSteps; null as above. */
  totalSteps: number | null;
  /** Steps the schedules span (all epochs, ignoring maxSteps); null as above. */
  scheduleSteps: number | null;
}

/**
 * Computes the derived values. `datasetSize` is the number of images of a folder source; the built-in
 * scenes use data.scenes.count.
 */
export function deriveConfig(cfg: PlrcConfig, opts: { datasetSize?: number; cores?: number } = {}): Derived {
  const R = cfg.data.resolution, S = R / 4, B = cfg.train.batchSize;
  const c5 = resnetOutChannels(resnetConfigOf(cfg)).c5;
  const size = cfg.data.source === "scenes" ? cfg.data.scenes.count : opts.datasetSize;
  const stepsPerEpoch = cfg.train.stepsPerEpoch !== "auto"
    ? cfg.train.stepsPerEpoch
    : size === undefined
    ? null
    : dropLastSteps(size, B);
  const scheduleSteps = stepsPerEpoch === null ? null : stepsPerEpoch * cfg.train.epochs;
  const totalSteps = scheduleSteps === null ? null : Math.min(scheduleSteps, cfg.train.maxSteps ?? Infinity);
  const bnGroup = Math.min(cfg.model.bnGroup, B / cfg.train.accumulate);
  const cores = opts.cores ?? navigator.hardwareConcurrency ?? 1;
  return {
    maskSize: S,
    featureSize: R / 32,
    lr: cfg.optim.lrScaling === "linear" ? cfg.optim.lr * B / cfg.optim.lrReferenceBatch : cfg.optim.lr,
    c5,
    pointHidden: cfg.model.pointHidden === "auto" ? c5 : cfg.model.pointHidden,
    dinoHidden: cfg.model.dinoHidden === "auto" ? c5 : cfg.model.dinoHidden,
    distillDim: S * S + cfg.model.prototypes,
    bnGroup,
    bnGroups: Math.ceil(B / bnGroup),
    fhMinSize: cfg.data.regions.fhMinSize === "auto"
      ? defaultMinSize(cfg.data.cacheShortSide)
      : cfg.data.regions.fhMinSize,
    workers: cfg.data.workers === "auto" ? Math.max(0, Math.min(15, cores - 1)) : cfg.data.workers,
    stepsPerEpoch,
    totalSteps,
    scheduleSteps,
  };
}

/** The backbone of a configuration. */
export function resnetConfigOf(cfg: PlrcConfig): ResNetConfig {
  return { depth: cfg.model.depth, width: cfg.model.width };
}

/** The data pipeline's configuration (src/data/batch.ts) of a configuration. */
export function dataConfigOf(cfg: PlrcConfig): DataConfig {
  return dataConfig({
    resolution: cfg.data.resolution,
    maskSize: cfg.data.resolution / 4,
    grid: cfg.data.regions.grid,
    regions: cfg.data.regions.count,
    points: cfg.data.points,
    seed: cfg.seed,
    crop: { scale: [...cfg.data.cropScale], ratio: DEFAULT_DATA_CONFIG.crop.ratio },
    minOverlap: cfg.data.minOverlap,
    flipP: cfg.data.flipP,
    photometric: cfg.data.photometric ? DEFAULT_PHOTOMETRIC : false,
  });
}

/** Per-step schedules (step counts from 0). */
export interface Schedules {
  /** Learning rate at a step. */
  lr(step: number): number;
  /** Distillation teacher temperature at a step. */
  teacherTemperature(step: number): number;
  /** Key-encoder EMA momentum at a step. */
  emaMomentum(step: number): number;
}

/**
 * The schedules, with the formulas of `schedule.ts`. They span all epochs (maxSteps does not shorten
 * them). With granularity epoch the step they see is rounded down to the start of its epoch (as
 * released); with step they advance every step. The learning-rate warm-up (the first schedule.warmup of
 * training) is linear per step either way, then cosine or constant. The teacher temperature goes
 * linearly from teacherStartTemperature to teacherTemperature over the first teacherWarmup of training;
 * a cosine EMA goes from ema.momentum to 1.
 */
export function schedules(cfg: PlrcConfig, d: Derived): Schedules {
  if (d.stepsPerEpoch === null || d.scheduleSteps === null) {
    throw new Error("schedules need the steps per epoch: pass datasetSize to deriveConfig");
  }
  const spe = d.stepsPerEpoch, total = d.scheduleSteps;
  const at = (step: number) => cfg.schedule.granularity === "epoch" ? Math.floor(step / spe) * spe : step;
  const warm = Math.round(cfg.schedule.warmup * total);
  const dist = cfg.loss.distill;
  return {
    lr(step) {
      if (cfg.schedule.lr === "constant") return step < warm ? d.lr * (step + 1) / warm : d.lr;
      return cosineLr(d.lr, step < warm ? step : Math.max(warm, at(step)), total, warm);
    },
    teacherTemperature: (step) =>
      teacherTemperature(dist.teacherStartTemperature, dist.teacherTemperature, at(step), total, dist.teacherWarmup),
    emaMomentum: (step) => emaMomentum(cfg.ema.momentum, at(step), total, cfg.ema.schedule === "cosine"),
  };
}

/** The region mode of a configuration (data.regions.*). */
export function regionModeOf(cfg: PlrcConfig): RegionMode {
  const rs = cfg.data.regions;
  const degrade = { noise: rs.noise, block: rs.noiseBlock, shift: rs.shift, seed: cfg.seed };
  const extra = degrades(degrade) ? { degrade } : {};
  if (rs.source === "grid") return { kind: "grid", grid: rs.grid, ...extra };
  if (rs.source === "gt") return { kind: "gt", ...extra };
  if (rs.source === "fh") {
    const d0 = deriveConfig(cfg, { datasetSize: 1 });
    return { kind: "fh", scale: rs.fhScale, sigma: rs.fhSigma, minSize: d0.fhMinSize, ...extra };
  }
  if (rs.labelmaps === null) throw new UsageError("data.regions.labelmaps: a folder is required with source labelmaps");
  return { kind: "labelmaps", dir: rs.labelmaps, ...extra };
}
