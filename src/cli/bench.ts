/**
 * `plrc bench <suite> [--json]`: kernel throughput on this adapter.
 *
 * @module
 */
import { getGpu } from "../gpu/device.ts";
import { benchKernels } from "../bench/kernels.ts";
import { benchConv, benchGemm, benchResnetStep, type EngineMeasurement } from "../bench/engine.ts";
import { benchDataSources } from "../bench/data_sources.ts";
import { benchDataViews } from "../bench/data_views.ts";
import { benchDataFeeder } from "../bench/data_feeder.ts";
import { benchStep } from "../bench/step.ts";
import { benchAllreduce, formatBytes } from "../bench/allreduce.ts";
import { detectLaunch, Mpi } from "../dist/mpi.ts";
import { joinRanks } from "./ranks.ts";
import { resolveConfig } from "../train/config/mod.ts";
import { parseOptions, UsageError } from "./usage.ts";

const SUITES = ["kernels", "gemm", "conv", "resnet", "step", "data", "allreduce"];

export const BENCH_HELP = `plrc bench <suite> [--json] [--scale S] [--reps N]

Suites:
  kernels    elementwise, reductions, softmax/cross-entropy, transpose (GB/s)
  gemm       square GEMMs (--size N, default 1024,2048; GFLOP/s)
  conv       every distinct convolution of a ResNet, forward / input grad / weight grad
  resnet     a whole backbone step: forward, backward, SGD (GFLOP/s and images/s)
  step       the whole PLRC training step at a preset's size (--preset, --set k=v, --batch B,
             --resolution R): ms/step, images/s, backbone GFLOP/s, plrc's GPU memory, GPU time
             per kernel family; under mpirun the ranks share the batch and the step's time is split
             into GPU wait, readback, communication and host
  data       JPEG decode (1 and 2 workers), cache reads, view-pair batches at R 64 and 224,
             training batches through the feeder with 0, 1 and 2 data workers at R 128 and 224, scenes
             rendered and read from a warm scene cache (img/s)
  allreduce  float32 sum all-reduce over the ranks of an MPI job, blocking and nonblocking, 4 KiB to
             128 MiB (--size in KiB, comma-separated): ms, algorithm and bus GB/s; --through-gpu adds
             a training step's gradient exchange (GPU readback, bucketed all-reduce, upload), each
             part timed. Run under MPI: mpirun -n 2 deno run -A cli.ts bench allreduce (rank 0 prints)

Model options for conv and resnet: --depth 18|34|50 (50), --width W (0.25), --batch B (8),
--resolution R (64); the paper setting is --width 1 --batch 64 --resolution 224.

Each case is timed over N repetitions in one submission, with GPU timestamps where the adapter
has timestamp-query (wall time otherwise); the median is reported.

  --json       one JSON object per measurement
  --scale S    problem size relative to the default (default 1)
  --reps N     repetitions (default 20 for kernels, 3-5 otherwise)
  --size N     GEMM sizes, comma-separated
  -h, --help   this text`;

/** Runs `plrc bench`. */
export async function benchCommand(argv: string[]): Promise<number> {
  const { values, positionals } = parseOptions(
    argv,
    {
      json: { type: "boolean" },
      scale: { type: "string" },
      reps: { type: "string" },
      size: { type: "string" },
      depth: { type: "string" },
      width: { type: "string" },
      batch: { type: "string" },
      resolution: { type: "string" },
      preset: { type: "string" },
      set: { type: "string", multiple: true },
      "through-gpu": { type: "boolean" },
      help: { type: "boolean", short: "h" },
    },
    BENCH_HELP,
    true,
  );
  if (values.help) return console.log(BENCH_HELP), 0;
  const suite = positionals[0] ?? "kernels";
  if (!SUITES.includes(suite)) {
    throw new UsageError(`unknown bench suite "${suite}"; allowed: ${SUITES.join(", ")}`, BENCH_HELP);
  }
  const scale = Number(values.scale ?? 1), reps = Number(values.reps ?? (suite === "kernels" ? 20 : 3));
  if (!(scale > 0 && scale <= 4)) {
    throw new UsageError(`--scale must be a number in (0, 4], got "${values.scale}"`, BENCH_HELP);
  }
  if (!(Number.isInteger(reps) && reps >= 1 && reps <= 1000)) {
    throw new UsageError(`--reps must be an integer in 1..1000, got "${values.reps}"`, BENCH_HELP);
  }
  if (suite === "allreduce") {
    const sizes = values.size?.split(",").map((k) => {
      const n = Number(k);
      if (!(n > 0 && n <= 4 << 20)) throw new UsageError(`--size takes KiB in (0, 4194304], got "${k}"`, BENCH_HELP);
      return Math.round(n * 1024);
    });
    const launched = detectLaunch() !== null;
    const mpi = Mpi.init();
    const lead = mpi.rank === 0;
    if (lead && !values.json) {
      console.log(`bench allreduce: ${mpi.size} rank(s), ${mpi.library.version} (${mpi.library.path})`);
      if (!launched) console.log("not launched by mpirun/srun: one rank, nothing to reduce across");
      console.log(
        `${"size".padStart(10)} ${"mode".padEnd(12)} ${"ms".padStart(10)} ${"alg GB/s".padStart(9)} ${
          "bus GB/s".padStart(9)
        }`,
      );
    }
    const gpu = values["through-gpu"] ? await getGpu() : undefined;
    const modes = gpu ? ["blocking", "nonblocking", "through-gpu"] as const : undefined;
    await benchAllreduce(mpi, {
      sizes,
      reps: values.reps === undefined ? undefined : reps,
      modes: modes && [...modes],
      gpu,
    }, (r) => {
      if (!lead) return;
      if (values.json) console.log(JSON.stringify(r));
      else {
        const p = r.parts;
        console.log(
          `${formatBytes(r.bytes).padStart(10)} ${r.mode.padEnd(12)} ${r.ms.toFixed(3).padStart(10)} ` +
            `${r.algGBps.toFixed(2).padStart(9)} ${r.busGBps.toFixed(2).padStart(9)}` +
            (p
              ? `  (${p.chunks} chunks: readback ${p.readbackMs.toFixed(1)} ms, then all-reduce and upload ${
                p.reduceAndUploadMs.toFixed(1)
              } ms)`
              : ""),
        );
      }
    });
    return 0;
  }
  if (suite === "data") {
    const rows: object[] = [...await benchDataSources({}), ...await benchDataViews({}), ...await benchDataFeeder({})];
    for (const r of rows) console.log(values.json ? JSON.stringify(r) : formatRow(r));
    return 0;
  }
  if (suite === "step") {
    // --batch and --resolution are shorthands for the config keys, applied after any --set.
    const sets = [...(values.set ?? [])];
    if (values.batch !== undefined) {
      // a batch given here is one pass of that many images, unless the accumulation is set too
      sets.push(`train.batchSize=${values.batch}`);
      if (!sets.some((x) => x.startsWith("train.accumulate="))) sets.push("train.accumulate=1");
    }
    if (values.resolution !== undefined) sets.push(`data.resolution=${values.resolution}`);
    const cfg = resolveConfig({ preset: values.preset as never, sets });
    // under mpirun every rank runs its share of the batch; rank 0 reports
    const joined = joinRanks(cfg.distributed.timeout);
    const g = await getGpu();
    const m = await benchStep(g, cfg, Math.max(1, reps), joined?.ranks ?? null);
    if (joined && joined.ranks.rank !== 0) return 0;
    if (values.json) console.log(JSON.stringify(m));
    else {
      console.log(
        `bench step on ${m.adapter} (${m.backend}): preset ${m.preset}, ResNet-${m.depth} x${m.width}, ` +
          `batch ${m.batch}${m.accumulate > 1 ? ` (${m.accumulate} micro-batches)` : ""} @${m.resolution}`,
      );
      console.log(
        `${m.msPerStep.toFixed(1)} ms/step, ${m.imagesPerS.toFixed(2)} images/s, backbone ` +
          `${m.backboneGflops.toFixed(2)} GFLOP/s, ${m.dispatchesPerStep} dispatches/step, ` +
          `${m.peakGpuMiB.toFixed(0)} MiB in plrc's buffers`,
      );
      console.log(
        `buffers by part: ${
          Object.entries(m.buffersMiBByPart).filter(([, v]) => v >= 0.05).map(([k, v]) => `${k} ${v.toFixed(1)} MiB`)
            .join(", ")
        } (${m.precision})`,
      );
      const d = m.distributed;
      if (d) {
        console.log(
          `${d.ranks} ranks, rank 0's step: GPU wait ${d.gpuWaitMs.toFixed(1)} ms, readback ${
            d.readbackMs.toFixed(1)
          } ms, communication ${d.communicationMs.toFixed(1)} ms (${formatBytes(d.bytesPerStep)} sent), host ${
            d.hostMs.toFixed(1)
          } ms`,
        );
      }
      for (const [f, ms] of Object.entries(m.gpuMsByFamily ?? {}).sort((a, b) => b[1] - a[1])) {
        console.log(`  ${f.padEnd(36)} ${ms.toFixed(1).padStart(9)} ms  ${(100 * ms / m.gpuMsTotal!).toFixed(1)}%`);
      }
    }
    return 0;
  }
  const gpu = await getGpu();
  if (!values.json) console.log(`bench ${suite} on ${gpu.summary.description} (${gpu.summary.backend})`);
  if (suite !== "kernels") {
    const int = (name: string, v: string | undefined, def: number, ok: (n: number) => boolean) => {
      const n = v === undefined ? def : Number(v);
      if (!ok(n)) throw new UsageError(`--${name} has an invalid value "${v}"`, BENCH_HELP);
      return n;
    };
    const depth = int("depth", values.depth, 50, (n) => [18, 34, 50].includes(n)) as 18 | 34 | 50;
    const width = int("width", values.width, 0.25, (n) => n > 0 && n <= 4);
    const batch = int("batch", values.batch, 8, (n) => Number.isInteger(n) && n >= 1);
    const resolution = int("resolution", values.resolution, 64, (n) => Number.isInteger(n) && n >= 32);
    const sizes = (values.size ?? "1024,2048").split(",").map((s) =>
      int("size", s, 0, (n) => Number.isInteger(n) && n >= 16)
    );
    const print = (r: EngineMeasurement) => {
      if (values.json) console.log(JSON.stringify(r));
      else {
        const extra = typeof r.shape.imagesPerS === "number"
          ? `, ${r.shape.imagesPerS.toFixed(2)} images/s, ${
            ((r.shape.fractionOfGemm as number) * 100).toFixed(0)
          }% of GEMM`
          : "";
        console.log(
          `${r.name.padEnd(44)} ${r.ms.toFixed(2).padStart(10)} ms ${r.gflops.toFixed(2).padStart(9)} GFLOP/s` +
            `  (${r.timing}${extra})`,
        );
      }
    };
    // each case is printed when measured, and announced on stderr before (a large one takes seconds to
    // compile and time), so that a long benchmark shows its progress and stdout stays one row per line
    const progress = {
      onStart: (name: string, i: number, n: number) => console.error(`[${i + 1}/${n}] ${name} …`),
      onRow: print,
    };
    if (suite === "gemm") await benchGemm(gpu, sizes, { reps, ...progress });
    else if (suite === "conv") await benchConv(gpu, { depth, width }, batch, resolution, { reps, ...progress });
    else {
      const best = (await benchGemm(gpu, [sizes[0]], { reps, onStart: progress.onStart })).at(0)!;
      const rows = await benchResnetStep(gpu, { depth, width }, batch, resolution, { reps });
      for (const r of [best, ...rows]) print({ ...r, shape: { ...r.shape, fractionOfGemm: r.gflops / best.gflops } });
    }
    return 0;
  }
  const results = await benchKernels(gpu, { scale, reps });
  for (const r of results) {
    if (values.json) console.log(JSON.stringify(r));
    else {
      console.log(
        `${`${r.kernel} (${r.variant})`.padEnd(28)} [${r.shape.join("×")}]`.padEnd(48) +
          `${r.ms.toFixed(3).padStart(9)} ms  ${r.gbPerS.toFixed(2).padStart(7)} GB/s  (${r.timing})`,
      );
    }
  }
  return 0;
}

function formatRow(r: object): string {
  return Object.entries(r).map(([k, v]) => `${k}=${typeof v === "number" ? +v.toFixed(3) : v}`).join("  ");
}
