/**
 * One training step of the tiny test encoder from a fresh state, read back whole: what the accumulation and
 * the data-parallel equivalence tests compare (tests/train/accumulate_test.ts, tests/dist/step_test.ts).
 */
import { sync } from "../../src/gpu/recorder.ts";
import { makeBatch, type PlrcBatch } from "../../src/data/batch.ts";
import { dataConfigOf, deriveConfig, resolveConfig } from "../../src/train/config/mod.ts";
import { stepConfigOf } from "../../src/train/plan.ts";
import { scenesSource } from "../../src/data/sources.ts";
import { PlrcStep, type StepRanks } from "../../src/train/step.ts";
import { gpu, TINY_MODEL } from "../util.ts";

/** What one step leaves behind (trainable entries only; the flat buffers' padding is not read). */
export interface After {
  grads: Float64Array;
  params: Float64Array;
  momentum: Float64Array;
  losses: number[];
  queue: Float64Array;
  center: Float64Array;
  /** Data parallelism: the gradient's chunks and the last pass's segments (null on one process). */
  gradientExchange?: { chunks: number; segments: number } | null;
  /** The step's buffers by part. */
  bufferBytes?: Record<string, number>;
}

/** How the step is set up. */
export interface StepCase {
  /** The global batch. */
  batch: number;
  /** Micro-batches per process. */
  accumulate: number;
  shuffleBn?: boolean;
  method?: string;
  /** Seed of the configuration (weights, queue, shuffles). */
  seed: number;
  /** The momentum encoder's two views share backbone activation buffers (default: as the step does). */
  shareKeyActivations?: boolean;
}

const f64 = async (t: { read(): Promise<ArrayLike<number>> }) => Float64Array.from(await t.read());

/** Runs step 3 of `c` on `data` (this process's share of the batch with `ranks`) and reads everything back. */
export async function oneStep(c: StepCase, data: PlrcBatch, ranks: StepRanks | null = null): Promise<After> {
  const g = await gpu();
  const cfg = resolveConfig({
    sets: [
      ...TINY_MODEL,
      "data.resolution=32",
      "loss.image.queue=16",
      `train.batchSize=${c.batch}`,
      `train.accumulate=${c.accumulate}`,
      "model.bnGroup=4",
      `model.shuffleBn=${c.shuffleBn ?? false}`,
      `method=${c.method ?? "plrc"}`,
      `seed=${c.seed % 1000}`,
    ],
  });
  const d = deriveConfig(cfg, { datasetSize: 16 });
  const sc = stepConfigOf(cfg, d);
  if (c.shareKeyActivations !== undefined) sc.shareKeyActivations = c.shareKeyActivations;
  const step = await PlrcStep.build(g, sc, ranks);
  // poison what a step must overwrite: gradients and the accumulation buffers
  step.online.flat().grads.fill(NaN);
  for (const t of step.owned) if (t.name.startsWith("mean ") || t.name.startsWith("keys of")) t.fill(NaN);
  step.upload(data, 3);
  await step.run(3, { lr: 0.05, ema: 0.9, teacherTemperature: 0.04 });
  await sync(g);
  const entries = [...step.online.entries.values()].filter((e) =>
    e.spec.kind !== "running_mean" && e.spec.kind !== "running_var"
  );
  const live = (x: Float64Array) =>
    Float64Array.from(entries.flatMap((e) => [...x.subarray(e.offset, e.offset + e.numel)]));
  const out: After = {
    grads: live(await f64(step.online.flat().grads)),
    params: live(await f64(step.online.flat().params)),
    momentum: live(await f64(step.momentum.flat().params)),
    losses: await Promise.all(step.lossValues.map(async (t) => (await t.read())[0])),
    queue: await f64(step.losses.image.queue),
    center: step.losses.distill ? await f64(step.losses.distill.center) : new Float64Array(),
    gradientExchange: step.gradientExchange,
    bufferBytes: step.bufferBytes,
  };
  step.dispose();
  return out;
}

/** One batch of 8 scenes at 32 px, made with the configuration seed `seed`. */
export async function eightImages(seed: number): Promise<PlrcBatch> {
  const src = scenesSource({ count: 16, size: 48, classes: 6, seed: 5 });
  const items = await Promise.all([...Array(8).keys()].map(async (i) => ({ ...(await src.get(i)), key: i })));
  return makeBatch(items, dataConfigOf(resolveConfig({ sets: ["data.resolution=32", `seed=${seed % 1000}`] })));
}
