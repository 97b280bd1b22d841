/**
 * The training loop around {@link PlrcStep}: data order per epoch, batch preparation overlapped with the
 * GPU (data workers make the next batches while a step runs; without workers the step is submitted, then
 * the next batch is built while it runs), schedules, lagged metrics,
 * NaN/Inf stop, periodic and final checkpoints written atomically, SIGINT/SIGTERM handling, exact resume.
 *
 * Data-parallel (`plan.ranks`): every rank runs this loop on its shard of each global batch
 * (src/dist/shard.ts) and the step combines the ranks' work; rank 0 alone writes metrics, checkpoints and
 * pictures and logs (the others print only errors), every rank resumes from the same checkpoint, and a stop
 * (signal, NaN) seen by one rank stops them all after the same step.
 *
 * @module
 */
import { join } from "node:path";
import { formatBytes, type Gpu, withMemoryCheck } from "../gpu/device.ts";
import type { ParamStore } from "../nn/params.ts";
import { Profiler, summarise, sync } from "../gpu/recorder.ts";
import { kernelFamily } from "./profile.ts";
import type { DataConfig, PlrcBatch } from "../data/batch.ts";
import { Rng } from "../util/rng.ts";
import { DistillCollapseMonitor } from "../losses/distill.ts";
import { BACKBONE_PREFIX } from "../models/encoder.ts";
import { loadCheckpoint, saveCheckpoint } from "./checkpoint.ts";
import { BatchFeeder } from "../data/feeder.ts";
import { dropLastSteps, type Schedules } from "./config/derive.ts";
import { PlrcStep, STEP_SCALARS, type StepConfig } from "./step.ts";
import type { StepScalars } from "./metrics_ring.ts";
import type { ImageSource } from "../data/sources.ts";
import { shardStep } from "../dist/shard.ts";
import type { StepRanks } from "./step.ts";

/** The ranks of a data-parallel run as the loop needs them: the step's collectives and a vote. */
export interface TrainRanks extends StepRanks {
  /** Whether any rank says yes (a signal seen by one rank stops them all after the same step). */
  any(flag: boolean): Promise<boolean>;
}

/**
 * What the trainer runs every `every` steps and after the last on the online store: a few named numbers for
 * RUN/monitor.jsonl (the k-NN monitor of src/eval/monitor.ts is one).
 */
export interface Monitor {
  /** Steps between runs. */
  every: number;
  /** One line for the log: what is measured on which images. */
  description: string;
  /** Measures the online `store` and returns the named numbers. */
  run(gpu: Gpu, store: ParamStore): Promise<Record<string, number>>;
}

/** Everything the loop needs. */
export interface TrainPlan {
  /** What the step binds. */
  step: StepConfig;
  /** How samples are made. */
  data: DataConfig;
  /** Where the images come from. */
  source: ImageSource;
  /** Data worker threads (0 or absent: batches are made on the main thread). */
  workers?: number;
  /** Batches made ahead by the workers; default 2. */
  prefetch?: number;
  /** Steps to run in all (epochs × steps per epoch, or fewer with train.maxSteps). */
  totalSteps: number;
  /**
   * Steps per epoch, as the schedules count them (train.stepsPerEpoch, or the drop_last count): the data
   * order and the logged epoch use the same number.
   */
  stepsPerEpoch: number;
  /** Learning rate, EMA momentum and teacher temperature per step. */
  schedules: Schedules;
  /** Run folder: checkpoints, metrics.jsonl, monitor.jsonl. */
  outDir: string;
  /** Steps between log lines. */
  logInterval: number;
  /** Steps between checkpoints. */
  checkpointInterval: number;
  /** Periodic `step_N` checkpoints kept besides `last.safetensors`: the newest this many (0: all). */
  keepLast: number;
  /** The resolved configuration, saved in checkpoints. */
  configText: string;
  /** Continue from this checkpoint. */
  resume?: string;
  /**
   * Backbone weights and BN statistics (torchvision names, PyTorch layout) that both encoders start from
   * (`model.init`, src/export/import.ts); a resumed run ignores them.
   */
  init?: Map<string, Float32Array>;
  /** Runs every `every` steps and after the last on the online store; results go to RUN/monitor.jsonl. */
  monitor?: Monitor;
  /** Called with the first batch of the run before its step (the CLI writes RUN/sample.png from it). */
  firstBatch?: (batch: PlrcBatch) => Promise<void>;
  /** Print no progress. */
  quiet?: boolean;
  /** Draw a progress bar when stdout is a terminal (default), with the step lines going to the file log. */
  progressBar?: boolean;
  /** Time every kernel of one step (the third of this run) with timestamp queries and log the breakdown. */
  profile?: boolean;
  /**
   * Data parallelism: the ranks sharing each batch of `step.batch` images (this process runs its shard).
   * Rank 0 writes the run's files; the others write nothing and print only errors.
   */
  ranks?: TrainRanks;
}

/** What a finished (or stopped) run reports. */
export interface TrainResult {
  /** The step count reached: steps before a resume included. */
  steps: number;
  /** Mean weighted loss over the first window of steps after the queue filled (see `window`). */
  firstLoss: number | null;
  /** Mean weighted loss over the last window of steps. */
  lastLoss: number | null;
  /** The same two windows for each unweighted term. */
  terms: Record<"image" | "point" | "distill", { first: number | null; last: number | null }>;
  /** The step at which the distillation bottleneck was found collapsed (null: it was not). */
  distillCollapsedAt: number | null;
  /** The bottleneck alignment at the last step read back (null without distillation). */
  distillAlignment: number | null;
  /** Steps per window (10% of the run, at least 1) and the step the first window starts at. */
  window: { size: number; firstStart: number };
  /** Why the run ended: all steps done, a signal, or a non-finite loss. */
  stoppedBy: "done" | "signal" | "nan";
  /** The signal that stopped the run (with `stoppedBy` "signal"). */
  signal: "SIGINT" | "SIGTERM" | null;
  /** Path of the last checkpoint written. */
  checkpoint: string;
  /** Training throughput of this run. */
  imagesPerSecond: number;
}

/** Metric record written to metrics.jsonl (one per step, once its losses are read back). */
export interface MetricRecord {
  /** Step index (0-based). */
  step: number;
  /** Epoch of the step (0-based). */
  epoch: number;
  /** Learning rate of the step. */
  lr: number;
  /** Weighted total loss. */
  loss: number;
  /** Image-level InfoNCE (unweighted). */
  loss_image: number;
  /** Point contrast (unweighted). */
  loss_point: number;
  /** Distillation (unweighted). */
  loss_distill: number;
  /**
   * With distillation: the bottleneck alignment (mean cosine of the teacher's and the anchors' bottleneck
   * vectors, from the centre; above 0.9 the bottleneck has collapsed) and the teacher's mean entropy ÷
   * log(S² + K) (1: a uniform teacher, which teaches nothing).
   */
  distill_alignment?: number;
  /** The teacher's mean entropy ÷ log(S² + K). */
  distill_entropy?: number;
  /** Training throughput at this step. */
  images_per_s: number;
  /** Wall-clock milliseconds of the step: from its start to the next step's start (data, upload, GPU). */
  ms_per_step: number;
  /**
   * Milliseconds from the step's start to its losses being read back: the metrics ring reads a few steps
   * late so that no step waits for the GPU, so this is several steps' worth, not the step's own time.
   */
  latency_ms: number;
  /** GPU time of the step from timestamp queries (null where the adapter has none). */
  gpu_ms_per_step: number | null;
}

/**
 * The image indices of `step`: a per-epoch permutation derived from the seed, so resume needs only the step.
 * `spe` is the plan's steps per epoch (by default the drop_last count).
 */
export function batchIndices(
  seed: number,
  count: number,
  batch: number,
  step: number,
  spe: number = dropLastSteps(count, batch),
): { epoch: number; indices: number[] } {
  const epoch = Math.floor(step / spe);
  const order = Rng.derive(seed ^ 0x5eed, epoch).shuffle(Array.from({ length: count }, (_, i) => i));
  const k = step % spe;
  return { epoch, indices: Array.from({ length: batch }, (_, i) => order[(k * batch + i) % count]) };
}

/**
 * The samples of `step`: each image index with its stream key (`epoch · count + index`, so an image's crops
 * differ between epochs and a sample is the same whoever makes it, in any order).
 */
export function batchRequests(
  seed: number,
  count: number,
  batch: number,
  step: number,
  spe: number = dropLastSteps(count, batch),
): { index: number; key: number }[] {
  const { epoch, indices } = batchIndices(seed, count, batch, step, spe);
  return indices.map((i) => ({ index: i, key: epoch * count + i }));
}

/**
 * What a rank other than 0 logs: only errors (rank 0 logs the same warnings, from the same numbers), on
 * stderr, marked with the rank.
 */
export function otherRankLog(rank: number): LogSink {
  return (line) => {
    if (/^\s*error:/.test(line)) console.error(`rank ${rank}: ${line}`);
  };
}

/**
 * Where training's log lines go. A step line comes with its metrics record (what metrics.jsonl gets), for a
 * sink that writes structured logs.
 */
export type LogSink = (line: string, record?: object) => void;

/** Runs (or continues) training. */
export async function train(
  gpu: Gpu,
  plan: TrainPlan,
  log: LogSink,
  fileLog: LogSink = log,
): Promise<TrainResult> {
  const ranks = plan.ranks && plan.ranks.size > 1 ? plan.ranks : null;
  const lead = !ranks || ranks.rank === 0;
  if (!lead) {
    log = fileLog = otherRankLog(ranks!.rank);
    plan = { ...plan, quiet: true, progressBar: false, monitor: undefined, firstBatch: undefined };
  }
  const tty = (plan.progressBar ?? true) && Deno.stdout.isTerminal();
  const B = plan.step.batch;
  const total = plan.totalSteps;
  const ckptDir = join(plan.outDir, "checkpoints");
  if (lead) await Deno.mkdir(ckptDir, { recursive: true });
  if (ranks) await sameRun(ranks, plan);
  const step = await withMemoryCheck(
    gpu,
    "building the training step",
    () => PlrcStep.build(gpu, plan.step, ranks),
  );
  if (!plan.quiet) {
    // what the step holds on the GPU, so that a user can size train.batchSize and train.accumulate
    log(
      `GPU buffers: ${formatBytes(gpu.memory.liveBytes)} (plrc's own; the driver's pipelines and caches come on top)`,
    );
  }
  let start = 0;
  if (plan.init && !plan.resume) {
    for (const store of [step.online, step.momentum]) {
      for (const [name, v] of plan.init) store.set(`${BACKBONE_PREFIX}${name}`, v);
    }
  }
  if (plan.resume) {
    const meta = await loadCheckpoint(plan.resume, checkpointParts(step));
    start = Number(meta.step);
    step.queuePointer = Number(meta.queuePointer ?? 0);
    log(`resumed from ${plan.resume} at step ${start}`);
  }

  let stop: "signal" | null = null;
  let stopSignal: "SIGINT" | "SIGTERM" | null = null;
  const listeners = (["SIGINT", "SIGTERM"] as const).map((sig) => {
    const on = () => {
      stop = "signal";
      stopSignal ??= sig;
    };
    Deno.addSignalListener(sig, on);
    return [sig, on] as const;
  });

  const metricsFile = lead ? await Deno.open(join(plan.outDir, "metrics.jsonl"), { append: true, create: true }) : null;
  const monitorFile = plan.monitor
    ? await Deno.open(join(plan.outDir, "monitor.jsonl"), { append: true, create: true })
    : null;
  if (plan.monitor) log(plan.monitor.description);
  const enc = new TextEncoder();
  const lrs = new Map<number, { lr: number; epoch: number; t: number }>();
  // the image loss starts low against the random initial queue and rises as real keys fill it, so the
  // first window starts once the queue has been filled once
  const win = Math.max(1, Math.round((total - start) / 10));
  const firstStart = Math.min(total - win, start + Math.ceil(plan.step.queueSize / B));
  const losses: number[] = [];
  const terms: [number, number, number][] = [];
  let nan = false;
  const t0 = performance.now();
  let lastT = t0, done = start;

  // a collapsed bottleneck is worth a warning: the run goes on as image + point contrast
  const distills = plan.step.method === "plrc" && plan.step.weights.distill > 0;
  const collapse = distills ? new DistillCollapseMonitor(DistillCollapseMonitor.patienceFor(total - start)) : null;
  const S = plan.step.resolution / 4, uniformEntropy = Math.log(S * S + plan.step.encoder.heads.prototypes);
  let lastAlignment: number | null = null;

  const consume = async (r: StepScalars | null) => {
    if (!r) return;
    const [li, lp, ld, align, entropy] = r.values;
    const w = plan.step.weights;
    const loss = w.image * li + w.point * lp + w.distill * ld;
    if (![li, lp, ld].every(Number.isFinite)) nan = true;
    const info = lrs.get(r.step)!;
    lrs.delete(r.step);
    const now = performance.now();
    const rec: MetricRecord = {
      step: r.step,
      epoch: info.epoch,
      lr: info.lr,
      loss,
      loss_image: li,
      loss_point: lp,
      loss_distill: ld,
      ...(distills ? { distill_alignment: align, distill_entropy: entropy / uniformEntropy } : {}),
      images_per_s: (B * (r.step + 1 - start)) / ((now - t0) / 1000),
      ms_per_step: (lrs.get(r.step + 1)?.t ?? lastT) - info.t,
      latency_ms: now - info.t,
      gpu_ms_per_step: r.gpuMs,
    };
    losses[r.step] = loss;
    terms[r.step] = [li, lp, ld];
    if (distills) lastAlignment = align;
    if (collapse?.observe(r.step, align)) {
      log(
        `warning: step ${r.step + 1}: the distillation bottleneck has stayed aligned above ${collapse.threshold} ` +
          `(mean cosine ${align.toFixed(3)}) for ${collapse.patience} steps: every position's bottleneck points the ` +
          `same way, so that term no longer teaches anything; widen model.bottleneck (README: the distillation ` +
          `collapse)`,
      );
    }
    await metricsFile?.write(enc.encode(JSON.stringify(rec) + "\n"));
    // time left at the mean pace so far (the first steps compile kernels, so it only gets better)
    const doneSteps = r.step + 1 - start, left = total - r.step - 1;
    const eta = left * ((now - t0) / 1000 / Math.max(doneSteps, 1));
    if (!plan.quiet && tty) {
      // a progress bar on a terminal (log lines still go to train.log at the interval)
      const width = 24, fill = Math.round(width * (r.step + 1) / total);
      const bar = "█".repeat(fill) + "░".repeat(width - fill);
      Deno.stdout.writeSync(enc.encode(
        `\r${bar} ${r.step + 1}/${total}  loss ${loss.toFixed(4)}  ${rec.images_per_s.toFixed(1)} img/s  ` +
          `ETA ${formatDuration(eta)}   `,
      ));
      if (r.step === total - 1) Deno.stdout.writeSync(enc.encode("\n"));
    }
    if (!plan.quiet && (r.step % plan.logInterval === 0 || r.step === total - 1)) {
      (tty ? fileLog : log)(
        `step ${r.step + 1}/${total} epoch ${info.epoch} lr ${info.lr.toExponential(2)} loss ${loss.toFixed(4)} ` +
          `(image ${li.toFixed(3)} point ${lp.toFixed(3)} distill ${ld.toFixed(3)}${
            distills ? ` align ${align.toFixed(3)} H ${(entropy / uniformEntropy).toFixed(3)}` : ""
          }) ${rec.images_per_s.toFixed(1)} img/s${left > 0 ? ` ETA ${formatDuration(eta)}` : ""}`,
        rec,
      );
    }
  };

  const save = async (s: number, name = "last.safetensors") => {
    for (const r of await step.ring.drain()) await consume(r);
    await sync(gpu);
    if (nan) return null; // keep the last good checkpoint
    const path = join(ckptDir, name);
    if (!lead) return path; // rank 0 writes it
    await saveCheckpoint(path, {
      ...checkpointParts(step),
      meta: { step: s, queuePointer: step.queuePointer, config: plan.configText, ranks: ranks?.size ?? 1 },
    });
    return path;
  };

  let lastCkpt = plan.resume ?? "";
  const count = plan.source.count;
  // batches are made by the data workers, the next ones while the GPU runs this step
  const feeder = new BatchFeeder({
    source: plan.source,
    data: plan.data,
    workers: plan.workers ?? 0,
    prefetch: plan.prefetch,
    end: total,
    requests: ranks
      ? (s) =>
        shardStep(
          {
            seed: plan.step.seed,
            count,
            batch: B,
            ranks: ranks.size,
            rank: ranks.rank,
            stepsPerEpoch: plan.stepsPerEpoch,
          },
          s,
        ).items
      : (s) => batchRequests(plan.step.seed, count, B, s, plan.stepsPerEpoch),
  });
  try {
    for (let s = start; s < total; s++) {
      const { epoch } = batchIndices(plan.step.seed, count, B, s, plan.stepsPerEpoch);
      const batch = await feeder.batch(s);
      if (s === start && plan.firstBatch && !plan.quiet) await plan.firstBatch(batch);
      const lr = plan.schedules.lr(s);
      lrs.set(s, { lr, epoch, t: lastT });
      step.upload(batch, s);
      const profiler = plan.profile && s === start + Math.min(2, total - start - 1) && gpu.hasTimestamps
        ? new Profiler(gpu, step.dispatchesPerStep + 8)
        : null;
      await consume(
        await step.run(s, {
          lr,
          ema: plan.schedules.emaMomentum(s),
          teacherTemperature: plan.schedules.teacherTemperature(s),
        }, profiler),
      );
      if (profiler) {
        const fams = new Map<string, number>();
        let sum = 0;
        for (const e of summarise(await profiler.read())) {
          fams.set(kernelFamily(e.label), (fams.get(kernelFamily(e.label)) ?? 0) + e.ms), sum += e.ms;
        }
        profiler.destroy();
        log(`profile of step ${s + 1} (GPU time per kernel family, each dispatch timed alone: ${sum.toFixed(1)} ms):`);
        for (const [f, ms] of [...fams].sort((a, b) => b[1] - a[1])) {
          log(`  ${f.padEnd(36)} ${ms.toFixed(1).padStart(9)} ms  ${(100 * ms / sum).toFixed(1).padStart(5)}%`);
        }
      } else if (plan.profile && s === start && !gpu.hasTimestamps) {
        log("profile: this adapter has no timestamp-query feature");
      }
      lastT = performance.now();
      done = s + 1;
      if (nan) break;
      if (plan.monitor && (done % plan.monitor.every === 0 || done === total)) {
        const t = performance.now();
        const r = await plan.monitor.run(gpu, step.online);
        const secs = (performance.now() - t) / 1000;
        await monitorFile!.write(enc.encode(JSON.stringify({ step: s, ...r, seconds: secs }) + "\n"));
        log(
          `monitor at step ${done}: ` +
            Object.entries(r).map(([k, v]) => `${k} ${Number.isInteger(v) ? v : v.toFixed(4)}`).join(", ") +
            ` (${secs.toFixed(1)} s)`,
        );
        lastT = performance.now(); // the monitor's time is not the next step's
      }
      // a signal seen by one rank stops every rank after this step
      if (ranks && await ranks.any(stop !== null)) stop ??= "signal";
      if (stop) break;
      if (plan.checkpointInterval > 0 && done % plan.checkpointInterval === 0 && done < total) {
        const p = await save(done);
        if (p) {
          lastCkpt = p;
          if (lead) await keepPeriodic(ckptDir, p, done, plan.keepLast);
        }
      }
    }
    const p = await save(done);
    if (p) lastCkpt = p;
  } finally {
    feeder.close();
    for (const [sig, on] of listeners) Deno.removeSignalListener(sig, on);
    metricsFile?.close();
    monitorFile?.close();
  }
  const secs = (performance.now() - t0) / 1000;
  step.dispose();
  if (nan) {
    log(
      `error: a loss became NaN or Inf near step ${done}; stopped. The last good checkpoint is ${lastCkpt || "none"}.`,
    );
  }
  const meanOf = (arr: number[], a: number, b: number) => {
    const xs = arr.slice(Math.max(a, 0), b).filter((v) => v !== undefined);
    return xs.length ? xs.reduce((x, y) => x + y, 0) / xs.length : null;
  };
  const mean = (a: number, b: number) => meanOf(losses, a, b);
  const term = (k: number) => ({
    first: meanOf(terms.map((t) => t?.[k]), firstStart, firstStart + win),
    last: meanOf(terms.map((t) => t?.[k]), done - win, done),
  });
  return {
    steps: done,
    firstLoss: mean(firstStart, firstStart + win),
    lastLoss: mean(done - win, done),
    terms: { image: term(0), point: term(1), distill: term(2) },
    distillCollapsedAt: collapse?.collapsedAt ?? null,
    distillAlignment: lastAlignment,
    window: { size: win, firstStart },
    stoppedBy: nan ? "nan" : stop ?? "done",
    signal: stopSignal,
    checkpoint: lastCkpt,
    imagesPerSecond: (B * (done - start)) / Math.max(secs, 1e-9),
  };
}

/**
 * Checks that every rank runs the same plan on the same data (same image count, batch, steps, resume
 * point): ranks that disagree would deadlock or silently train on different things.
 */
async function sameRun(ranks: TrainRanks, plan: TrainPlan): Promise<void> {
  const mine = [plan.source.count, plan.step.batch, plan.totalSteps, plan.stepsPerEpoch, plan.step.seed];
  const all = await ranks.allgather(Float32Array.from(mine));
  const names = ["images", "batch", "steps", "steps per epoch", "seed"];
  for (let r = 0; r < ranks.size; r++) {
    const theirs = all.subarray(r * mine.length, (r + 1) * mine.length);
    const k = mine.findIndex((v, i) => Math.fround(v) !== theirs[i]);
    if (k >= 0) {
      throw new Error(
        `rank ${ranks.rank} and rank ${r} disagree on the run: ${names[k]} ${mine[k]} here, ${theirs[k]} there ` +
          `(every rank must see the same data.source and configuration)`,
      );
    }
  }
  const B = plan.step.batch, R = ranks.size, m = plan.step.accumulate ?? 1;
  if (B % (R * m)) {
    throw new Error(
      `train.batchSize ${B} does not split over ${R} ranks × ${m} micro-batches (train.accumulate): choose a ` +
        `multiple of ${R * m}`,
    );
  }
}

/** The GPU state a checkpoint holds. */
function checkpointParts(step: PlrcStep) {
  const tensors: Record<string, import("../gpu/tensor.ts").Tensor> = { queue: step.losses.image.queue };
  if (step.losses.distill) tensors.center = step.losses.distill.center;
  return { stores: { online: step.online, momentum: step.momentum }, tensors };
}

/** Copies the checkpoint to `step_NNNNNNNN.safetensors` (atomically); keeps the newest `keep` (0: all). */
async function keepPeriodic(dir: string, last: string, step: number, keep: number): Promise<void> {
  const name = join(dir, `step_${String(step).padStart(8, "0")}.safetensors`);
  const tmp = `${name}.tmp-${crypto.randomUUID()}`;
  await Deno.copyFile(last, tmp);
  await Deno.rename(tmp, name);
  const periodic: string[] = [];
  for await (const e of Deno.readDir(dir)) if (/^step_\d+\.safetensors$/.test(e.name)) periodic.push(e.name);
  periodic.sort();
  if (keep <= 0) return;
  for (const old of periodic.slice(0, Math.max(0, periodic.length - keep))) await Deno.remove(join(dir, old));
}

export { STEP_SCALARS };

/** "1h02m", "3m20s", "12s". */
export function formatDuration(s: number): string {
  if (!Number.isFinite(s)) return "?";
  const h = Math.floor(s / 3600), m = Math.floor((s % 3600) / 60), sec = Math.round(s % 60);
  return h ? `${h}h${String(m).padStart(2, "0")}m` : m ? `${m}m${String(sec).padStart(2, "0")}s` : `${sec}s`;
}
