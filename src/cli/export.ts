/**
 * `plrc export`: writes the backbone of a training checkpoint for PyTorch fine-tuning (torchvision,
 * detectron2, mmdetection). Runs on the host only: no GPU needed.
 *
 * What it reads from the checkpoint (see src/train/checkpoint.ts):
 * - metadata `config`: the resolved config, an object or its YAML/JSON text, with `model: { depth, width }`;
 * - metadata `num_batches_tracked` (optional): the BN counters, one number, or an object keyed by encoder or
 *   store name (`{"online": 1000, "momentum": 1000}`); when absent, the metadata `step` is used (every BN
 *   runs once per training step) and a note says so;
 * - metadata `backbones` (optional): `{"online": "<store>/<entry prefix>", ...}`, where each encoder's
 *   backbone lives; when absent it is found as the prefix of `params/<store>/<prefix>conv1.weight` whose
 *   store name or prefix names the encoder (`online`, or `momentum`/`target`/`teacher`/`ema`/`key`).
 *
 * @module
 */
import { basename, dirname, join } from "node:path";
import { parse as parseYaml } from "npm:yaml@^2.8.1";
import { EXPORT_FORMATS, ExportError, type ExportFormat, type HostTensor, writeExport } from "../export/export.ts";
import { toFloat32 } from "../io/safetensors.ts";
import { type ResNetConfig, resnetSpecs } from "../models/resnet.ts";
import { readTorchvisionBackbone } from "../export/import.ts";
import { CheckpointError, type CheckpointFile, readCheckpointFile } from "../train/checkpoint.ts";
import { EXIT, parseOptions, UsageError } from "./usage.ts";

export const EXPORT_HELP = `plrc export --ckpt PATH [--format torchvision|detectron2|mmdet] [--encoder online|momentum]
            [--out FILE] [--safetensors]

Writes the ResNet backbone of a training checkpoint so that PyTorch loads it unchanged:

  torchvision   torchvision's state dict (names, OIHW weights, BN num_batches_tracked; no fc), a .pth
                (an OrderedDict; load_state_dict(sd, strict=False) misses only fc) or, with
                --safetensors, a .safetensors file
  detectron2    {"model": ..., "__author__": "plrc", "matching_heuristics": True} under detectron2's names
                (stem.conv1.norm.*, res2.0.conv1.*, res3.0.shortcut.*), a .pth for MODEL.WEIGHTS; the
                config lines it needs are printed
  mmdet         {"state_dict": ...} with torchvision's names, for
                init_cfg=dict(type='Pretrained', checkpoint=FILE)

  --ckpt PATH      a checkpoint written by plrc pretrain (required); its metadata "config" gives the model
                   (model.depth, model.width). Or a torchvision ResNet from PyTorch (.pth or .safetensors,
                   maybe under a prefix such as module.encoder_q., as plrc eval --ckpt reads it), converted
                   to the format (num_batches_tracked 0; --encoder does not apply)
  --format F       torchvision (default), detectron2 or mmdet
  --encoder E      online (default) or momentum
  --out FILE       output file (default: next to the checkpoint, <name>.<format>[-momentum].pth)
  --safetensors    write safetensors instead of .pth (torchvision only); an --out named .safetensors
                   implies it, and one named .pth or .pt refuses it
  -h, --help       this text`;

const ALIASES: Record<string, string[]> = {
  online: ["online", "query", "student"],
  momentum: ["momentum", "target", "teacher", "ema", "key"],
};

/** The model of the checkpoint, from its `config` metadata. */
export function modelOfCheckpoint(meta: Record<string, unknown>): ResNetConfig {
  let cfg = meta.config;
  if (typeof cfg === "string") {
    try {
      cfg = parseYaml(cfg);
    } catch (e) {
      throw new UsageError(`the checkpoint's "config" metadata is not YAML or JSON: ${(e as Error).message}`);
    }
  }
  const model = (cfg as { model?: { depth?: unknown; width?: unknown } } | undefined)?.model;
  const depth = Number(model?.depth), width = Number(model?.width ?? 1);
  if (![18, 34, 50].includes(depth) || !(width > 0)) {
    throw new UsageError(
      `the checkpoint's metadata has no usable "config" with model.depth (18, 34 or 50) and model.width ` +
        `(got ${JSON.stringify(model ?? null)})`,
    );
  }
  return { depth: depth as ResNetConfig["depth"], width };
}

/** Where the backbone of `encoder` lives: `<store>/<entry prefix>`. */
export function findBackbone(file: CheckpointFile, encoder: string): string {
  const declared = (file.meta.backbones as Record<string, unknown> | undefined)?.[encoder];
  if (typeof declared === "string") return declared;
  const candidates: string[] = [];
  for (const k of file.tensors.keys()) {
    const m = /^params\/(.+\/.*)conv1\.weight$/.exec(k);
    if (m && !/layer\d/.test(m[1])) candidates.push(m[1]);
  }
  const words = ALIASES[encoder] ?? [encoder];
  const match = candidates.filter((c) => c.split(/[/.]/).some((w) => words.includes(w)));
  if (match.length === 1) return match[0];
  throw new UsageError(
    candidates.length === 0
      ? "the checkpoint holds no ResNet backbone (no params/<store>/...conv1.weight entry)"
      : `cannot tell which backbone is the ${encoder} encoder's among ${
        candidates.map((c) => `"${c}"`).join(", ")
      } (set metadata "backbones")`,
  );
}

/** The BN counter of `encoder`/`store`, from the metadata (see the module doc). */
function batchesTracked(meta: Record<string, unknown>, encoder: string, store: string): number | null {
  const v = meta.num_batches_tracked;
  if (typeof v === "number") return v;
  if (v && typeof v === "object") {
    const r = v as Record<string, unknown>;
    const x = r[encoder] ?? r[store];
    if (typeof x === "number") return x;
  }
  return typeof meta.step === "number" ? null : 0;
}

/** Runs `plrc export`. */
export async function exportCommand(argv: string[]): Promise<number> {
  const { values } = parseOptions(argv, {
    ckpt: { type: "string" },
    format: { type: "string" },
    encoder: { type: "string" },
    out: { type: "string" },
    safetensors: { type: "boolean" },
    help: { type: "boolean", short: "h" },
  }, EXPORT_HELP);
  if (values.help) return console.log(EXPORT_HELP), EXIT.ok;
  if (!values.ckpt) throw new UsageError("--ckpt PATH is required", EXPORT_HELP);
  const format = (values.format ?? "torchvision") as ExportFormat;
  if (!EXPORT_FORMATS.includes(format)) {
    throw new UsageError(`--format must be one of ${EXPORT_FORMATS.join(", ")}, got "${values.format}"`, EXPORT_HELP);
  }
  const encoder = values.encoder ?? "online";
  if (!(encoder in ALIASES)) {
    throw new UsageError(`--encoder must be online or momentum, got "${values.encoder}"`, EXPORT_HELP);
  }
  // the file is what its name says: --out x.safetensors writes safetensors, x.pth a PyTorch zip
  const named = values.out?.match(/\.(safetensors|pth|pt)$/)?.[1] ?? null;
  if (values.safetensors && (named === "pth" || named === "pt")) {
    throw new UsageError(
      `--safetensors with --out ${values.out}: torch.load cannot read safetensors; name it .safetensors`,
      EXPORT_HELP,
    );
  }
  const safetensors = values.safetensors === true || named === "safetensors";
  if (safetensors && format !== "torchvision") {
    throw new UsageError(
      `${values.safetensors ? "--safetensors" : `--out ${values.out}`} is for --format torchvision only ` +
        `(${format} reads .pth files; name the file .pth)`,
      EXPORT_HELP,
    );
  }
  const ext = safetensors ? "safetensors" : "pth";
  const out = values.out ??
    join(
      dirname(values.ckpt),
      `${basename(values.ckpt).replace(/\.safetensors$/, "")}.${format}${
        encoder === "online" ? "" : `-${encoder}`
      }.${ext}`,
    );

  try {
    await Deno.stat(values.ckpt);
  } catch {
    throw new UsageError(`--ckpt ${values.ckpt}: no such file`, EXPORT_HELP);
  }
  try {
    return await run(values.ckpt, format, encoder, out, safetensors);
  } catch (e) {
    if (e instanceof CheckpointError || e instanceof ExportError) {
      console.error(`plrc export: ${e.message}`);
      return EXIT.failure;
    }
    throw e;
  }
}

async function run(ckpt: string, format: ExportFormat, encoder: string, out: string, safetensors: boolean) {
  // a plrc checkpoint, or else a torchvision backbone from PyTorch, converted (a MoCo .pth to detectron2, say)
  let notPlrc: string | null = null;
  const file = /\.(pth|pt)$/.test(ckpt) ? null : await readCheckpointFile(ckpt).catch((e) => {
    if (e instanceof CheckpointError && /not a plrc checkpoint/.test(e.message)) return notPlrc = e.message, null;
    throw e;
  });
  if (!file) {
    const b = await readTorchvisionBackbone(ckpt).catch((e) => {
      const why = (e as Error).message;
      throw new CheckpointError(notPlrc ? `${notPlrc}; nor is it a torchvision ResNet: ${why}` : why);
    });
    const src = new Map<string, HostTensor>();
    for (const [name, data] of b.tensors) src.set(name, { shape: specShape(b.model, name), data });
    const r = await writeExport(src, format, out, { model: b.model, numBatchesTracked: 0, safetensors });
    console.log(
      `wrote ${r.path}: ResNet-${b.model.depth} ×${b.model.width} from ${ckpt}` +
        (b.prefix ? ` (names under "${b.prefix}")` : "") + `, ${format}, ${r.entries.size} tensors`,
    );
    printConfig(r.config);
    return EXIT.ok;
  }
  const model = modelOfCheckpoint(file.meta);
  const where = findBackbone(file, encoder);
  const store = where.slice(0, where.indexOf("/"));
  const src = new Map<string, HostTensor>();
  for (const kind of ["params", "stats"]) {
    const head = `${kind}/${where}`;
    for (const [k, t] of file.tensors) {
      const rest = k.slice(head.length);
      if (k.startsWith(head) && /^(conv1|bn1|layer[1-4]|fc)\./.test(rest)) {
        src.set(rest, { shape: t.shape, data: toFloat32(t) });
      }
    }
  }
  let nbt = batchesTracked(file.meta, encoder, store);
  if (nbt === null) {
    nbt = file.meta.step as number;
    console.error(`note: no num_batches_tracked in the checkpoint; using its step count, ${nbt}`);
  }
  const r = await writeExport(src, format, out, { model, numBatchesTracked: nbt, safetensors });
  console.log(
    `wrote ${r.path}: ResNet-${model.depth} ×${model.width} ${encoder} backbone, ${format}, ${r.entries.size} tensors`,
  );
  printConfig(r.config);
  return EXIT.ok;
}

function printConfig(lines: string[]): void {
  if (!lines.length) return;
  console.log("\ndetectron2 config for this backbone:");
  for (const l of lines) console.log(`  ${l}`);
}

/** The shape of torchvision entry `name` in a ResNet of `model`. */
function specShape(model: ResNetConfig, name: string): number[] {
  const spec = resnetSpecs(model).find((s) => s.name === name);
  if (!spec) throw new ExportError(`${name} is not an entry of ResNet-${model.depth} ×${model.width}`);
  return [...spec.shape];
}
