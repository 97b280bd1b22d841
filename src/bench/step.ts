/**
 * `plrc bench step`: the whole PLRC training step (three backbone+head forwards, one backward, losses,
 * SGD, EMA, queue and centre updates) at a configuration's size: wall time per step over several steps
 * (one submission each, no wait inside), images/s, the backbone's achieved FLOP rate, and a per-family
 * breakdown of GPU time from timestamp queries (one profiled step, each dispatch in its own pass).
 *
 * @module
 */
import { type Gpu, withMemoryCheck } from "../gpu/device.ts";
import { Profiler, Recorder, summarise, sync } from "../gpu/recorder.ts";
import { makeBatch } from "../data/batch.ts";
import { dataConfigOf, deriveConfig, type PlrcConfig } from "../train/config/mod.ts";
import { stepConfigOf } from "../train/plan.ts";
import { scenesSource } from "../data/sources.ts";
import { PlrcStep, STEP_SCALARS, type StepRanks } from "../train/step.ts";
import { kernelFamily } from "../train/profile.ts";

export { kernelFamily };

/** The measurement, one JSON object. */
export interface StepMeasurement {
  /** Which suite measured it. */
  suite: "step";
  /** The configuration preset measured. */
  preset: string;
  /** Images per step. */
  batch: number;
  /** Micro-batches per step (train.accumulate): each pass runs batch / accumulate images. */
  accumulate: number;
  /** View side R. */
  resolution: number;
  /** ResNet depth. */
  depth: number;
  /** ResNet channel multiplier. */
  width: number;
  /** Steps timed. */
  steps: number;
  /** Wall-clock milliseconds per step. */
  msPerStep: number;
  /** Images per second. */
  imagesPerS: number;
  /** Backbone multiply-adds ×2 of one step (3 forwards + 1 backward), per second. */
  backboneGflops: number;
  /** Dispatches recorded per step. */
  dispatchesPerStep: number;
  /** The sizes, so that tools/torch_reference/plrc_step.py can run the same step. */
  sizes: {
    pointHidden: number;
    pointDim: number;
    dinoHidden: number;
    bottleneck: number;
    prototypes: number;
    queue: number;
    regions: number;
    points: number;
    bnGroupSize: number;
    pairsPerImage: number;
  };
  /** GPU milliseconds of one profiled step by family (timestamp queries; null without them). */
  gpuMsByFamily: Record<string, number> | null;
  /** GPU milliseconds of the profiled step in all (null without timestamp queries). */
  gpuMsTotal: number | null;
  /** The dispatch labels that took the most GPU time in the profiled step, most first (at most 12). */
  gpuMsTopLabels: [string, number][] | null;
  /**
   * The last step's losses, and with distillation its collapse readings: `distill_alignment` (the
   * bottleneck's mean cosine, from the centre) and `distill_entropy` (the teacher's mean entropy ÷
   * log(S² + K)); after so few steps they show the initialisation, not the run.
   */
  losses: Record<string, number>;
  /** High-water mark of plrc's own GPU buffers (MiB), pipelines and driver overhead not included. */
  peakGpuMiB: number;
  /** The step's buffers by part (MiB; src/train/step.ts `StepBufferPart`), made once when it is bound. */
  buffersMiBByPart: Record<string, number>;
  /** Storage precision of activations, gradients and parameters (only fp32 is built). */
  precision: "fp32";
  /** The adapter's description. */
  adapter: string;
  /** The adapter's backend. */
  backend: string;
  /**
   * Under MPI (several ranks): where a step's wall time went on rank 0, in milliseconds per step. `gpuWaitMs`:
   * waiting for this rank's GPU work before the exchanges (the step's compute not hidden behind recording);
   * `readbackMs`: copying the exchanged tensors to the host, measured alone on an idle GPU;
   * `communicationMs`: in the collectives, the wait for the slowest rank included; `hostMs`: the rest
   * (recording, uploads, the update). Null on one process.
   */
  distributed: {
    ranks: number;
    gpuWaitMs: number;
    readbackMs: number;
    communicationMs: number;
    hostMs: number;
    /** Bytes this rank sent into collectives per step. */
    bytesPerStep: number;
  } | null;
}

/**
 * Runs `steps` training steps (after 2 warm-up steps) and one profiled step. With `ranks` (an MPI job) every
 * rank runs its share of the batch and the measurement splits the step's time (see
 * {@link StepMeasurement.distributed}).
 */
export async function benchStep(
  gpu: Gpu,
  cfg: PlrcConfig,
  steps = 5,
  ranks: StepRanks | null = null,
): Promise<StepMeasurement> {
  const src = scenesSource({
    count: Math.max(64, cfg.train.batchSize),
    size: cfg.data.scenes.size,
    classes: 6,
    seed: 1,
  });
  const d = deriveConfig(cfg, { datasetSize: src.count });
  const sc = stepConfigOf(cfg, d);
  const step = await withMemoryCheck(gpu, "building the training step", () => PlrcStep.build(gpu, sc, ranks));
  // this process's images: the whole batch, or its rank's share
  const first = (ranks?.rank ?? 0) * step.localBatch;
  const items = await Promise.all(
    Array.from({ length: step.localBatch }, async (_, i) => ({ ...(await src.get(first + i)), key: first + i })),
  );
  const batch = makeBatch(items, dataConfigOf(cfg));
  step.upload(batch);
  const schedule = { lr: sc.optim.lr, ema: sc.ema, teacherTemperature: sc.temperatures.teacher };
  for (let i = 0; i < 2; i++) await step.run(i, schedule);
  await sync(gpu);
  const c0 = step.commTimes ? { ...step.commTimes } : null;
  const t0 = performance.now();
  for (let i = 0; i < steps; i++) await step.run(2 + i, schedule);
  await sync(gpu);
  const ms = (performance.now() - t0) / steps;
  let distributed: StepMeasurement["distributed"] = null;
  if (c0 && step.commTimes && ranks) {
    const c = step.commTimes, per = (k: "gpuAndReadback" | "communication" | "bytes") => (c[k] - c0[k]) / steps;
    // the readback alone: the same tensors copied to the host with the GPU idle
    const r0 = performance.now();
    await step.readExchanged();
    const readbackMs = performance.now() - r0;
    const wait = per("gpuAndReadback");
    distributed = {
      ranks: ranks.size,
      gpuWaitMs: Math.max(0, wait - readbackMs),
      readbackMs: Math.min(readbackMs, wait),
      communicationMs: per("communication"),
      hostMs: Math.max(0, ms - wait - per("communication")),
      bytesPerStep: per("bytes"),
    };
  }
  let byFamily: Record<string, number> | null = null, total: number | null = null;
  let top: [string, number][] | null = null;
  if (gpu.hasTimestamps) {
    const prof = new Profiler(gpu, step.dispatches.length + 8);
    new Recorder(gpu, prof).runAll(step.dispatches).submit();
    const times = await prof.read();
    prof.destroy();
    byFamily = {};
    total = 0;
    const rows = summarise(times);
    top = rows.map((s): [string, number] => [s.label, s.ms]).sort((a, b) => b[1] - a[1]).slice(0, 12);
    for (const s of rows) {
      const f = kernelFamily(s.label);
      byFamily[f] = (byFamily[f] ?? 0) + s.ms;
      total += s.ms;
    }
  }
  const values = await Promise.all(step.lossValues.map(async (t) => (await t.read())[0]));
  const losses: Record<string, number> = {};
  STEP_SCALARS.forEach((name, i) => losses[name] = values[i]);
  if (sc.method === "plrc" && sc.weights.distill > 0) {
    const S = sc.resolution / 4;
    losses.distill_entropy /= Math.log(S * S + sc.encoder.heads.prototypes);
  } else {
    delete losses.distill_alignment, delete losses.distill_entropy;
  }
  const fl = step.q.backbone.flops, parts = sc.accumulate ?? 1;
  const flops = parts * (3 * fl.forward + fl.backward);
  const out: StepMeasurement = {
    suite: "step",
    preset: cfg.preset,
    batch: sc.batch,
    accumulate: parts,
    resolution: sc.resolution,
    depth: sc.encoder.backbone.depth,
    width: sc.encoder.backbone.width,
    steps,
    msPerStep: ms,
    imagesPerS: sc.batch / (ms / 1000),
    backboneGflops: flops / (ms * 1e6),
    dispatchesPerStep: step.dispatchesPerStep,
    sizes: {
      ...sc.encoder.heads,
      queue: sc.queueSize,
      regions: sc.regions,
      points: sc.points,
      bnGroupSize: sc.bnGroupSize,
      pairsPerImage: Math.round(batch.pairA.length / sc.batch),
    },
    gpuMsByFamily: byFamily,
    gpuMsTotal: total,
    gpuMsTopLabels: top,
    losses,
    peakGpuMiB: gpu.memory.peakBytes / 2 ** 20,
    buffersMiBByPart: Object.fromEntries(Object.entries(step.bufferBytes).map(([k, v]) => [k, v / 2 ** 20])),
    precision: "fp32",
    adapter: gpu.summary.description,
    backend: gpu.summary.backend,
    distributed,
  };
  step.dispose();
  return out;
}
