/**
 * `plrc bench <suite> [--json]`: kernel throughput on this adapter.
 *
 * @module
 */
import { getGpu } from "../gpu/device.ts";
import { benchKernels } from "../bench/kernels.ts";
import { parseOptions, UsageError } from "./usage.ts";

const SUITES = ["kernels"];

export const BENCH_HELP = `plrc bench <suite> [--json] [--scale S] [--reps N]

Suites:
  kernels    elementwise, reductions, softmax/cross-entropy, transpose (GB/s)

Each case is timed over N repetitions in one submission, with GPU timestamps where the adapter
has timestamp-query (wall time otherwise); the median is reported.

  --json       one JSON object per measurement
  --scale S    problem size relative to the default (default 1)
  --reps N     repetitions (default 20)
  -h, --help   this text

The ResNet engine's suites (gemm, conv, resnet, step) arrive with that engine.`;

/** Runs `plrc bench`. */
export async function benchCommand(argv: string[]): Promise<number> {
  const { values, positionals } = parseOptions(
    argv,
    {
      json: { type: "boolean" },
      scale: { type: "string" },
      reps: { type: "string" },
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
  const scale = Number(values.scale ?? 1), reps = Number(values.reps ?? 20);
  if (!(scale > 0 && scale <= 4)) {
    throw new UsageError(`--scale must be a number in (0, 4], got "${values.scale}"`, BENCH_HELP);
  }
  if (!(Number.isInteger(reps) && reps >= 1 && reps <= 1000)) {
    throw new UsageError(`--reps must be an integer in 1..1000, got "${values.reps}"`, BENCH_HELP);
  }
  const gpu = await getGpu();
  if (!values.json) console.log(`bench ${suite} on ${gpu.summary.description} (${gpu.summary.backend})`);
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
