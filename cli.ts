/**
 * The `plrc` command line: parses the command name and hands the rest to it. Exit codes: 0 success,
 * 1 failure, 2 usage or configuration error, 130 / 143 a pre-training stopped by SIGINT / SIGTERM (checkpoint saved).
 *
 * @module
 */
import { benchCommand } from "./src/cli/bench.ts";
import { infoCommand } from "./src/cli/info.ts";
import { pretrainCommand } from "./src/cli/pretrain.ts";
import { masksCommand } from "./src/cli/masks.ts";
import { exportCommand } from "./src/cli/export.ts";
import { visualizeCommand } from "./src/cli/visualize.ts";
import { evalCommand } from "./src/cli/eval.ts";
import { compareCommand } from "./src/cli/compare.ts";
import { type Command, EXIT, UsageError } from "./src/cli/usage.ts";
import { closest } from "./src/util/text.ts";
import { LimitError, NoAdapterError, OutOfMemoryError } from "./src/gpu/device.ts";
import { Mpi, MpiError } from "./src/dist/mpi.ts";
import { VERSION } from "./src/version.ts";

const COMMANDS: Record<string, { run: Command; summary: string }> = {
  pretrain: { run: pretrainCommand, summary: "pre-train a backbone with PLRC (see its --help for status)" },
  info: { run: infoCommand, summary: "show the WebGPU adapter, backend, features and limits" },
  export: { run: exportCommand, summary: "write a checkpoint's backbone for torchvision, detectron2 or mmdetection" },
  eval: { run: evalCommand, summary: "transfer protocols on a checkpoint's backbone: knn, linear, detect" },
  visualize: { run: visualizeCommand, summary: "PNG pictures: a training sample, training curves, point affinities" },
  compare: { run: compareCommand, summary: "moco / detcon / plrc / random init over seeds, and the region ablation" },
  masks: { run: masksCommand, summary: "precompute Felzenszwalb-Huttenlocher region masks for an image folder" },
  bench: { run: benchCommand, summary: "measure kernels, GEMM, convolutions, a ResNet step, data loading" },
};

const HELP = `plrc ${VERSION}: Point-Level Region Contrast pre-training on WebGPU

usage: plrc <command> [options]      (plrc <command> --help for each)

commands:
${Object.entries(COMMANDS).map(([k, v]) => `  ${k.padEnd(10)} ${v.summary}`).join("\n")}

  --version  print the version
  -h, --help this text`;

/** Runs the CLI with `args` and returns the exit code. */
export async function main(args: string[]): Promise<number> {
  const [name, ...rest] = args;
  if (!name || name === "-h" || name === "--help" || name === "help") {
    console.log(HELP);
    return name ? EXIT.ok : EXIT.usage;
  }
  if (name === "--version" || name === "-V") return console.log(VERSION), EXIT.ok;
  const cmd = COMMANDS[name];
  const code = await runCommand(name, cmd, rest);
  // a data-parallel job: leave MPI cleanly, or end every rank when this one failed (the others would wait)
  const mpi = Mpi.current;
  if (mpi && mpi.size > 1 && code !== EXIT.ok && code !== 130 && code !== 143) {
    console.error(`plrc ${name}: rank ${mpi.rank} of ${mpi.size} failed (exit ${code}): ending the MPI job`);
    mpi.abort(code);
  }
  mpi?.finalize();
  return code;
}

async function runCommand(
  name: string,
  cmd: { run: Command } | undefined,
  rest: string[],
): Promise<number> {
  try {
    if (!cmd) {
      const near = closest(name, Object.keys(COMMANDS), 2);
      throw new UsageError(
        `unknown command "${name}"; ${near ? `did you mean ${near}? ` : ""}commands: ${
          Object.keys(COMMANDS).join(", ")
        }`,
        near ? undefined : HELP,
      );
    }
    return await cmd.run(rest);
  } catch (e) {
    if (e instanceof UsageError) {
      console.error(`plrc ${name}: ${e.message}`);
      if (e.help) console.error(`\n${e.help}`);
      return EXIT.usage;
    }
    if (e instanceof LimitError || e instanceof OutOfMemoryError) {
      // a configuration this adapter cannot hold: the message names the keys to lower
      console.error(`plrc ${name}: ${e.message}`);
      return EXIT.usage;
    }
    if (e instanceof MpiError) {
      // no MPI library, no FFI permission, or a failed collective: the message says which and what to do
      console.error(`plrc ${name}: MPI: ${e.message}`);
      if (e.kind === "timeout") {
        console.error(`plrc ${name}: if a step can legitimately take longer, raise --set distributed.timeout=SECONDS`);
      }
      return EXIT.failure;
    }
    if (e instanceof NoAdapterError) {
      console.error(`plrc: ${e.message}`);
      return EXIT.failure;
    }
    console.error(`plrc ${name}: ${e instanceof Error ? e.stack ?? e.message : String(e)}`);
    return EXIT.failure;
  }
}

if (import.meta.main) {
  const code = await main(Deno.args);
  // the WebGPU device keeps the event loop alive; leave explicitly
  Deno.exit(code);
}
