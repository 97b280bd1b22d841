/**
 * `plrc pretrain`: the tool's main job. Resolves the configuration (defaults ← preset ← file ← --set ←
 * --data), prepares the run directory, checks the kernels on this adapter, and trains.
 *
 * @module
 */
import { basename, dirname, join } from "node:path";
import { getGpu } from "../gpu/device.ts";
import { selfCheck } from "../kernels/selfcheck.ts";
import {
  configChanges,
  ConfigError,
  configToYaml,
  deriveConfig,
  parseConfigText,
  type PlrcConfig,
  readConfigFile,
  resolveConfig,
} from "../train/config/mod.ts";
import { makePlan } from "../train/plan.ts";
import { folderSource, type ImageSource, NoUsableImagesError, scenesSource } from "../data/sources.ts";
import { regionModeOf } from "../train/config/mod.ts";
import { otherRankLog, train } from "../train/trainer.ts";
import { CheckpointError, latestCheckpoint, readCheckpointMeta } from "../train/checkpoint.ts";
import { VERSION } from "../version.ts";
import { readTorchvisionBackbone } from "../export/import.ts";
import { knnMonitor } from "../eval/monitor.ts";
import { renderSample } from "../viz/pictures.ts";
import { parseOptions, UsageError } from "./usage.ts";
import { joinRanks } from "./ranks.ts";
import type { RankDevice } from "../dist/device_select.ts";
import type { AdapterClass } from "../gpu/device.ts";

export const PRETRAIN_HELP = `plrc pretrain [--config FILE.yaml] [--data DIR|scenes] [--out DIR]
              [--resume PATH | --auto-resume | --force] [--set key=value ...] [--log-format text|json]
              [--distributed mpi|none]

Pre-trains a detection backbone with Point-Level Region Contrast on the images in DIR (default: the
built-in procedural scenes, with the cpu-tiny preset: 128 steps, 30 s to 2.5 min on a 2-core CPU machine).

  --config FILE   YAML configuration (every key and default: docs/config.md); may name a preset
  --data DIR      a folder of JPEG/PNG images, searched recursively, or "scenes"
  --out DIR       run directory (default runs/<date-time>)
  --resume PATH   continue exactly from a checkpoint, with its configuration (--set and --config
                  change it; the log lists what changed)
  --auto-resume   continue from OUT/checkpoints/last.safetensors if it exists (needs --out)
  --force         start afresh in an --out that holds a run: its checkpoints and metrics are deleted
                  (without it, or --auto-resume, such an --out is refused)
  --set k=v       override one configuration key, e.g. --set train.batchSize=16 (repeatable)
  --profile       time every kernel of one early step (timestamp queries) and log the breakdown
  --log-format F  text (default) or json: one JSON object per log line on stdout, {"time", "level"
                  (info|warning|error), "message"}, and for a step line "record" (its metrics.jsonl
                  record); no progress bar. train.log stays text
  --distributed B mpi: data-parallel over the ranks of an MPI job, one process per GPU, e.g.
                  mpirun -n 4 plrc pretrain --distributed mpi --out runs/a (docs/distributed.md);
                  the same as --set distributed.backend=B
  -h, --help      this text

The run directory gets config.yaml (the resolved configuration), metrics.jsonl, train.log and
checkpoints/ (last.safetensors and periodic ones). Ctrl-C saves a checkpoint and exits; export the
backbone for PyTorch with \`plrc export\`. A batch larger than the GPU holds runs as micro-batches:
--set train.accumulate=M (the paper preset runs its 256 images as 8 x 32).`;

/** One log line as `--log-format json` prints it; the level is read from the line's "warning:"/"error:" prefix. */
export function jsonLogLine(line: string, record?: object): string {
  const level = /^\s*warning:/.test(line) ? "warning" : /^\s*error:/.test(line) ? "error" : "info";
  return JSON.stringify({ time: new Date().toISOString(), level, message: line, ...(record ? { record } : {}) });
}

function timestamp(): string {
  return new Date().toISOString().replace(/[:T]/g, "-").replace(/\..*/, "");
}

/** Runs `plrc pretrain`. */
export async function pretrainCommand(argv: string[]): Promise<number> {
  const { values } = parseOptions(argv, {
    config: { type: "string" },
    data: { type: "string" },
    out: { type: "string" },
    resume: { type: "string" },
    "auto-resume": { type: "boolean" },
    force: { type: "boolean" },
    set: { type: "string", multiple: true },
    profile: { type: "boolean" },
    "log-format": { type: "string" },
    distributed: { type: "string" },
    help: { type: "boolean", short: "h" },
  }, PRETRAIN_HELP);
  if (values.help) return console.log(PRETRAIN_HELP), 0;
  const logFormat = values["log-format"] ?? "text";
  if (logFormat !== "text" && logFormat !== "json") {
    throw new UsageError(`--log-format: "${logFormat}" is not one of text, json`, PRETRAIN_HELP);
  }
  if (values.resume && values["auto-resume"]) {
    throw new UsageError("--resume and --auto-resume exclude each other", PRETRAIN_HELP);
  }
  if (values["auto-resume"] && !values.out) throw new UsageError("--auto-resume needs --out DIR", PRETRAIN_HELP);
  // A resumed run starts from its checkpoint's configuration (so that it continues the same run without
  // repeating every --set); --config replaces it and --set changes it, and the log lists what changed.
  let resume = values.resume;
  const autoResume = values["auto-resume"] && values.out
    ? (await latestCheckpoint(join(values.out, "checkpoints"))) ?? undefined
    : undefined;
  if (values["auto-resume"]) resume = autoResume;
  let saved: { text: string; name: string } | null = null;
  if (resume) {
    const meta = await readCheckpointMeta(resume).catch((e) => {
      if (e instanceof CheckpointError) throw new UsageError(`--resume: ${e.message}`);
      throw e;
    });
    if (typeof meta.meta.config === "string") saved = { text: meta.meta.config, name: `${resume} (its configuration)` };
  }
  let cfg: PlrcConfig;
  let before: PlrcConfig | null = null;
  try {
    if (saved) {
      before = resolveConfig({ file: parseConfigText(saved.text, saved.name) ?? undefined, fileName: saved.name });
    }
    const file = values.config
      ? await readConfigFile(values.config)
      : saved
      ? parseConfigText(saved.text, saved.name)
      : undefined;
    cfg = resolveConfig({
      file: file ?? undefined,
      fileName: values.config ?? saved?.name,
      sets: values.set ?? [],
      overrides: [
        ...(values.data ? [{ path: "data.source" as const, value: values.data, origin: "--data" }] : []),
        ...(values.distributed !== undefined
          ? [{ path: "distributed.backend" as const, value: values.distributed, origin: "--distributed" }]
          : []),
      ],
    });
  } catch (e) {
    if (e instanceof ConfigError || e instanceof UsageError) throw new UsageError(e.message, PRETRAIN_HELP);
    throw e;
  }
  const dataArg = cfg.data.source;
  if (dataArg !== "scenes") {
    const st = await Deno.stat(dataArg).catch(() => null);
    if (!st?.isDirectory) {
      throw new UsageError(`data.source ${dataArg} is not a directory (or use "scenes")`, PRETRAIN_HELP);
    }
  }
  // --resume RUN/checkpoints/X continues in RUN, so that one run's metrics stay in one folder
  const resumeRun = values.resume && basename(dirname(values.resume)) === "checkpoints"
    ? dirname(dirname(values.resume))
    : null;
  // data parallelism: this process joins the MPI job (cli.ts finalises it, or aborts it on an error)
  const dist = cfg.distributed.backend === "mpi" ? joinRanks(cfg.distributed.timeout) : null;
  const ranks = dist?.ranks ?? null, lead = !ranks || ranks.rank === 0;
  if (ranks && !values.out && !resumeRun) {
    throw new UsageError("--distributed mpi needs --out DIR: every rank writes into the same run directory");
  }
  if (ranks) {
    // the global batch is split over the ranks, then into micro-batches: both must come out whole
    const R = ranks.size, m = cfg.train.accumulate, B = cfg.train.batchSize;
    if (B % (R * m)) {
      throw new UsageError(
        `train.batchSize: ${B} does not split over ${R} ranks × ${m} micro-batches (train.accumulate): choose a ` +
          `multiple of ${R * m}`,
      );
    }
    const micro = B / (R * m), group = Math.min(cfg.model.bnGroup, micro);
    if (micro % group) {
      throw new UsageError(
        `model.bnGroup: ${cfg.model.bnGroup} does not divide the micro-batch of ${micro} images that each of the ` +
          `${R} ranks runs: choose a divisor of ${micro}, or at least ${micro}`,
      );
    }
  }
  const outDir = values.out ?? resumeRun ?? join("runs", timestamp());
  // rank 0 alone prepares the run directory; the others wait for it
  const holdsRun = (await exists(join(outDir, "metrics.jsonl"))) || (await exists(join(outDir, "checkpoints")));
  await ranks?.barrier();
  if (!lead) {
    // nothing to check or prepare here
  } else if (holdsRun && !resume && !values["auto-resume"] && !values.force) {
    throw new UsageError(
      `${outDir} holds a run: continue it with --auto-resume, start it again with --force (its checkpoints and ` +
        "metrics are deleted), or choose another --out",
      PRETRAIN_HELP,
    );
  } else if (holdsRun && !resume && !values["auto-resume"] && values.force) {
    for (const f of ["metrics.jsonl", "monitor.jsonl", "checkpoints"]) {
      await Deno.remove(join(outDir, f), { recursive: true }).catch(() => {});
    }
  }
  const newDir = !(await exists(outDir));
  if (lead) await Deno.mkdir(outDir, { recursive: true });
  await ranks?.barrier();
  const logFile = lead ? await Deno.open(join(outDir, "train.log"), { append: true, create: true }) : null;
  const enc = new TextEncoder();
  const fileLog = (line: string) => logFile?.writeSync(enc.encode(line + "\n"));
  const otherLog = lead ? null : otherRankLog(ranks!.rank);
  const log = (line: string, record?: object) => {
    if (!lead) return otherLog!(line);
    console.log(logFormat === "json" ? jsonLogLine(line, record) : line);
    fileLog(line);
  };

  try {
    log(`plrc ${VERSION} pretrain: preset ${cfg.preset}, method ${cfg.method}, run directory ${outDir}`);
    if (ranks) {
      const m = cfg.train.accumulate, b = cfg.train.batchSize / ranks.size;
      log(
        `distributed: ${ranks.size} MPI ranks (${ranks.mpi.library.version}); each runs ${b} of the ` +
          `${cfg.train.batchSize} images of a step${m > 1 ? ` as ${m} micro-batches` : ""}; rank 0: ${
            dist!.device.note
          }`,
      );
    } else if (cfg.distributed.backend === "mpi") {
      log("distributed: mpi, but this process was not launched as one of several MPI ranks: it trains alone");
    }
    if (values["auto-resume"]) {
      log(resume ? `auto-resume: found ${resume}` : "auto-resume: no checkpoint yet, starting fresh");
    }
    if (before) {
      const changes = configChanges(before, cfg);
      log(
        changes.length
          ? `resuming with changes to the checkpoint's configuration: ${
            changes.map((c) => `${c.path} ${JSON.stringify(c.from)} → ${JSON.stringify(c.to)}`).join(", ")
          }`
          : "resuming with the checkpoint's configuration",
      );
    }
    // an outside backbone is checked before anything slow starts (a resumed run does not need it)
    let init: Map<string, Float32Array> | undefined;
    if (cfg.model.init !== null && !resume) {
      const b = await readTorchvisionBackbone(cfg.model.init).catch((e) => {
        throw new UsageError(`model.init: ${(e as Error).message}`, PRETRAIN_HELP);
      });
      if (b.model.depth !== cfg.model.depth || b.model.width !== cfg.model.width) {
        throw new UsageError(
          `model.init: ${cfg.model.init} holds a ResNet-${b.model.depth} ×${b.model.width}, but the configuration ` +
            `builds ResNet-${cfg.model.depth} ×${cfg.model.width}: add --set model.depth=${b.model.depth} ` +
            `--set model.width=${b.model.width}`,
          PRETRAIN_HELP,
        );
      }
      init = b.tensors;
      log(
        `both backbones start from ${cfg.model.init}` + (b.prefix ? ` (names under "${b.prefix}")` : "") +
          `: ResNet-${b.model.depth} ×${b.model.width}, ${b.tensors.size} tensors`,
      );
    }
    // the monitor's labelled images too (a bad annotation file fails here, not after the scan)
    const monitor = await knnMonitor(cfg).catch((e) => {
      throw new UsageError(`eval.knnAnn: ${(e as Error).message}`, PRETRAIN_HELP);
    }) ?? undefined;
    const gpu = await getGpu();
    log(`adapter: ${gpu.summary.description}, backend ${gpu.summary.backend}, class ${gpu.summary.adapterClass}`);
    const refusal = dist && sharedDeviceRefusal(dist.device, gpu.summary.adapterClass, cfg.distributed.shareDevice);
    if (refusal) throw new UsageError(`rank ${ranks!.rank}: ${refusal}`);
    const checks = await selfCheck(gpu);
    const bad = checks.filter((r) => !r.ok);
    if (bad.length) {
      for (const r of bad) log(`  kernel ${r.kernel}: max relative error ${r.maxErr}`);
      log("error: this adapter computes wrong results; pre-training would be meaningless");
      return 1;
    }
    const regions = regionModeOf(cfg);
    let source: ImageSource;
    if (dataArg === "scenes") {
      const sc = cfg.data.scenes;
      source = scenesSource(
        { count: sc.count, size: sc.size, classes: sc.classes, seed: sc.seed, cache: sc.cache },
        regions,
      );
    } else {
      const d0 = deriveConfig(cfg, { datasetSize: 1 });
      const fs = await folderSource(
        dataArg,
        { maxShort: cfg.data.cacheShortSide, workers: d0.workers, cacheDir: cfg.data.cacheDir },
        regions,
      ).catch(async (e) => {
        // nothing to train on is the user's data, not a crash: exit 2, and no empty run directory left behind
        if (!(e instanceof NoUsableImagesError)) throw e;
        if (newDir && lead) await Deno.remove(outDir, { recursive: true }).catch(() => {});
        throw new UsageError(e.message, PRETRAIN_HELP);
      });
      log(fs.report);
      source = fs;
      if (cfg.train.stepsPerEpoch === "auto" && source.count < cfg.train.batchSize) {
        throw new UsageError(
          `${dataArg} has ${source.count} usable image${source.count === 1 ? "" : "s"}, fewer than ` +
            `train.batchSize (${cfg.train.batchSize}): lower train.batchSize or add images`,
          PRETRAIN_HELP,
        );
      }
    }
    const d = deriveConfig(cfg, { datasetSize: source.count });
    if (cfg.train.maxSteps !== null && d.totalSteps! < cfg.train.maxSteps) {
      log(
        `warning: train.maxSteps is ${cfg.train.maxSteps}, but train.epochs (${cfg.train.epochs}) × ` +
          `${d.stepsPerEpoch} steps per epoch make ${d.totalSteps}: the run stops there (raise train.epochs)`,
      );
    }
    const configText = configToYaml(cfg);
    if (lead) await Deno.writeTextFile(join(outDir, "config.yaml"), configText);
    log(
      `data: ${source.description}; ${d.totalSteps} steps of batch ${cfg.train.batchSize}${
        cfg.train.accumulate > 1
          ? ` (${cfg.train.accumulate} micro-batches of ${cfg.train.batchSize / cfg.train.accumulate})`
          : ""
      } at ${cfg.data.resolution} px; ` +
        (d.workers > 0
          ? `${d.workers} data worker${d.workers === 1 ? "" : "s"}, ${cfg.data.prefetch} batches ahead`
          : "batches made on the main thread"),
    );
    const t0 = performance.now();
    const plan = makePlan(cfg, source, outDir, {
      configText,
      resume,
      profile: values.profile,
      init,
      monitor,
      progressBar: logFormat === "text",
      ranks: ranks ?? undefined,
    });
    // a picture of the first sample, so a user can see at a glance that crops, masks and points line up
    plan.firstBatch = (batch) =>
      Deno.writeFile(
        join(outDir, "sample.png"),
        renderSample(batch, 0, { mean: plan.data.mean, std: plan.data.std }).png(),
      );
    const result = await train(gpu, plan, log, fileLog);
    const secs = (performance.now() - t0) / 1000;
    if (result.stoppedBy === "nan") return 1;
    const verb = result.stoppedBy === "signal" ? "interrupted" : "finished";
    const w = result.window;
    log(`${verb} after ${result.steps} steps in ${secs.toFixed(1)} s (${result.imagesPerSecond.toFixed(1)} images/s)`);
    if (result.firstLoss !== null && result.lastLoss !== null) {
      const change = (100 * (result.lastLoss - result.firstLoss)) / result.firstLoss;
      log(
        `mean loss over ${w.size} steps from step ${w.firstStart + 1} (once the queue is full): ` +
          `${result.firstLoss.toFixed(4)}; over the last ${w.size} steps: ${result.lastLoss.toFixed(4)} ` +
          `(${change >= 0 ? "+" : ""}${change.toFixed(1)}%)`,
      );
      const parts = Object.entries(result.terms)
        .filter(([, t]) => t.first !== null && t.last !== null && t.first !== 0)
        .map(([k, t]) => `${k} ${t.first!.toFixed(3)} → ${t.last!.toFixed(3)}`);
      if (parts.length) log(`  by term (unweighted): ${parts.join(", ")}`);
      if (result.distillAlignment !== null) {
        log(
          `  distillation bottleneck alignment at the end: ${
            result.distillAlignment.toFixed(3)
          } (collapsed above 0.9)` +
            (result.distillCollapsedAt !== null
              ? `; collapsed at step ${result.distillCollapsedAt + 1} (warning above)`
              : ""),
        );
      }
    } else {
      log(`mean loss: not enough steps after the queue filled (step ${w.firstStart + 1}) to compare windows`);
    }
    log(
      `outputs: ${outDir}/config.yaml, ${outDir}/metrics.jsonl, ` +
        (monitor ? `${outDir}/monitor.jsonl, ` : "") +
        `${outDir}/train.log, ${outDir}/sample.png, ${result.checkpoint}`,
    );
    if (result.stoppedBy === "signal") {
      // a script must tell an interrupted run from a finished one: the shell's 128 + signal number
      log(`checkpoint saved at step ${result.steps}: continue with plrc pretrain --out ${outDir} --auto-resume`);
      return result.signal === "SIGTERM" ? 143 : 130;
    }
    log(`export the backbone: plrc export --ckpt ${result.checkpoint} --format torchvision --out backbone.safetensors`);
    return 0;
  } finally {
    logFile?.close();
  }
}

/**
 * Why this rank must not train on its adapter (null: it may): several local ranks on one GPU only slow each
 * other down, unless `distributed.shareDevice` allows it; CPU adapters are always shared.
 */
export function sharedDeviceRefusal(device: RankDevice, adapter: AdapterClass, allowed: boolean): string | null {
  if (!device.shared || adapter !== "gpu" || allowed) return null;
  return `${device.note}: ranks sharing one GPU only slow each other down; start one rank per GPU, or allow it ` +
    "with --set distributed.shareDevice=true";
}

async function exists(path: string): Promise<boolean> {
  return await Deno.stat(path).then(() => true, () => false);
}
