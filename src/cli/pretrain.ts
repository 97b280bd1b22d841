/**
 * `plrc pretrain`: the tool's main job. In this version the command is the real entry point (options,
 * configuration file, device, kernel self-check) but the PLRC trainer itself is not there yet; it says so.
 *
 * @module
 */
import { parse as parseYaml } from "yaml";
import { getGpu } from "../gpu/device.ts";
import { selfCheck } from "../kernels/selfcheck.ts";
import { VERSION } from "../version.ts";
import { parseOptions, UsageError } from "./usage.ts";

export const PRETRAIN_HELP = `plrc pretrain [--config FILE.yaml] [--data DIR|scenes] [--out DIR]
              [--resume PATH | --auto-resume] [--set key=value ...]

Pre-trains a detection backbone with Point-Level Region Contrast on the images in DIR
(default: the built-in procedural scenes).

  --config FILE   YAML configuration (keys are validated)
  --data DIR      a folder of JPEG/PNG images, searched recursively, or "scenes" (default)
  --out DIR       run directory (default runs/<date>)
  --resume PATH   continue exactly from a checkpoint
  --auto-resume   continue from OUT/checkpoints/last.safetensors if it exists
  --set k=v       override one configuration key (repeatable)
  -h, --help      this text

Status in plrc ${VERSION}: the GPU runtime and the foundation kernels exist and are checked on
your adapter; the ResNet engine, the data pipeline and the trainer do not exist yet.`;

/** Runs `plrc pretrain`. */
export async function pretrainCommand(argv: string[]): Promise<number> {
  const { values } = parseOptions(argv, {
    config: { type: "string" },
    data: { type: "string" },
    out: { type: "string" },
    resume: { type: "string" },
    "auto-resume": { type: "boolean" },
    set: { type: "string", multiple: true },
    help: { type: "boolean", short: "h" },
  }, PRETRAIN_HELP);
  if (values.help) return console.log(PRETRAIN_HELP), 0;
  if (values.resume && values["auto-resume"]) {
    throw new UsageError("--resume and --auto-resume exclude each other", PRETRAIN_HELP);
  }
  for (const s of values.set ?? []) {
    if (!/^[A-Za-z_][\w.]*=/.test(s)) throw new UsageError(`--set expects key=value, got "${s}"`, PRETRAIN_HELP);
  }
  if (values.config) {
    let text: string;
    try {
      text = await Deno.readTextFile(values.config);
    } catch (e) {
      throw new UsageError(`cannot read --config ${values.config}: ${(e as Error).message}`, PRETRAIN_HELP);
    }
    let doc: unknown;
    try {
      doc = parseYaml(text);
    } catch (e) {
      throw new UsageError(`${values.config} is not valid YAML: ${(e as Error).message}`, PRETRAIN_HELP);
    }
    if (doc !== null && (typeof doc !== "object" || Array.isArray(doc))) {
      throw new UsageError(`${values.config}: the configuration must be a mapping of keys to values`, PRETRAIN_HELP);
    }
  }
  const data = values.data ?? "scenes";
  if (data !== "scenes") {
    const st = await Deno.stat(data).catch(() => null);
    if (!st?.isDirectory) throw new UsageError(`--data ${data} is not a directory (or use "scenes")`, PRETRAIN_HELP);
  }

  console.log(`plrc ${VERSION} pretrain (data: ${data})`);
  const gpu = await getGpu();
  console.log(`adapter: ${gpu.summary.description}, backend ${gpu.summary.backend}, class ${gpu.summary.adapterClass}`);
  const t0 = performance.now();
  const results = await selfCheck(gpu);
  const bad = results.filter((r) => !r.ok);
  console.log(
    `kernel self-check: ${results.length - bad.length}/${results.length} kernels agree with float64 references ` +
      `(${((performance.now() - t0) / 1000).toFixed(1)} s)`,
  );
  for (const r of bad) console.error(`  ${r.kernel}: max relative error ${r.maxErr}`);
  if (bad.length) {
    console.error("error: this adapter computes wrong results; pre-training would be meaningless");
    return 1;
  }
  console.log(
    [
      "",
      "PLRC pre-training is not available in this version. What exists: the WebGPU runtime (device,",
      "tensors, pipelines, one-submit recording, timestamp profiling), the foundation kernels",
      "(elementwise, ReLU, reductions, softmax/log-softmax/cross-entropy, L2 normalisation, transpose)",
      "with float64 and PyTorch parity tests, and safetensors I/O. Not yet built: the ResNet engine",
      "(GEMM/conv/BN), the data pipeline (images, scenes, crops, regions, points) and the trainer.",
      "Nothing was trained and no checkpoint was written.",
    ].join("\n"),
  );
  return 0;
}
