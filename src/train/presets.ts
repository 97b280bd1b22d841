/**
 * Named presets: each one is a set of key paths laid over the schema's defaults (see `config.ts`). The
 * defaults themselves are the paper's setting, so `paper` restates the keys that define it and adds the
 * micro-batching that lets one GPU run it.
 *
 * @module
 */
import type { FlatConfig } from "./config.ts";

/** A preset: what it is for, and the keys it sets. */
export interface Preset {
  doc: string;
  values: Omit<FlatConfig, "preset">;
}

/** A preset's name. */
export type PresetName = "paper" | "cpu-tiny" | "cpu-small" | "gpu-small";

/** The presets, in the order the documentation lists them. */
export const PRESETS: Readonly<Record<PresetName, Preset>> = {
  paper: {
    doc: "The paper's setting: ResNet-50 ×1, R 224, batch 256, K 4096, queue 65536, 100 epochs (needs a GPU). " +
      "The batch runs as 8 micro-batches of 32 (train.accumulate), as the release's 8 GPUs of 32 images each " +
      "did: BN statistics, point negatives and distillation pairs per 32 images, so one GPU's memory holds it.",
    values: {
      "model.depth": 50,
      "model.width": 1,
      "data.resolution": 224,
      "train.batchSize": 256,
      "train.accumulate": 8,
      "model.prototypes": 4096,
      "loss.image.queue": 65536,
      "train.epochs": 100,
    },
  },
  "cpu-tiny": {
    doc: "The default: finishes in about 40 s on a 2-core CPU adapter: ResNet-18 ×0.125, R 64, " +
      "batch 8, one epoch of 1024 built-in scenes (128 steps); the queue (64) is shorter than the data so " +
      "that it never holds a second key of the same image. Two departures from the paper make 128 steps " +
      "enough to learn (measured: with them the loss falls ~8% after the queue fills; without, it stays " +
      "flat): no colour jitter/grayscale/blur (at 64 px the tiny network cannot become colour-invariant " +
      "in 128 steps) and EMA momentum 0.99 (at 0.999 the key encoder barely leaves its initialisation). " +
      "Its distillation bottleneck is 512, not 256: its lr per image is high, and at 256 the bottleneck's " +
      "alignment passes 0.7 within 768 steps (model.bottleneck).",
    values: {
      "model.depth": 18,
      "model.width": 0.125,
      "model.pointDim": 32,
      "model.prototypes": 64,
      "model.bottleneck": 512,
      "model.bnGroup": 4,
      "data.resolution": 64,
      "data.scenes.count": 1024,
      "data.scenes.size": 96,
      "data.points": 8,
      "loss.image.queue": 64,
      "optim.lr": 0.05,
      "optim.lrScaling": "none",
      "data.photometric": false,
      "ema.momentum": 0.99,
      "train.batchSize": 8,
      "train.epochs": 1,
      "schedule.granularity": "step",
      "log.interval": 16,
      "checkpoint.keepLast": 2,
    },
  },
  "cpu-small": {
    doc: "A longer CPU run: ResNet-18 ×0.25, R 96, batch 16, 5 epochs of 512 built-in scenes (160 steps).",
    values: {
      "model.depth": 18,
      "model.width": 0.25,
      "model.pointDim": 64,
      "model.prototypes": 256,
      "model.bnGroup": 8,
      "data.resolution": 96,
      "data.scenes.count": 512,
      "data.scenes.size": 128,
      "loss.image.queue": 1024,
      "train.batchSize": 16,
      "train.epochs": 5,
      "schedule.granularity": "step",
      "log.interval": 5,
      "checkpoint.keepLast": 2,
    },
  },
  "gpu-small": {
    doc: "A short GPU run: ResNet-50 ×0.5, R 128, batch 64, K 1024, queue 16384, 30 epochs of 8192 scenes.",
    values: {
      "model.depth": 50,
      "model.width": 0.5,
      "model.prototypes": 1024,
      "data.resolution": 128,
      "data.scenes.count": 8192,
      "data.scenes.size": 192,
      "loss.image.queue": 16384,
      "train.batchSize": 64,
      "train.epochs": 30,
      "schedule.granularity": "step",
    },
  },
};

/** Preset names in documentation order. */
export const PRESET_NAMES: readonly PresetName[] = Object.keys(PRESETS) as PresetName[];
