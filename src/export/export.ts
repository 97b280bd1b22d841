/**
 * Export of a pre-trained ResNet backbone for fine-tuning in PyTorch:
 *
 * - `torchvision`: the state dict of `torchvision.models.resnetNN` (without `fc` unless the source has
 *   one), names exactly torchvision's, conv weights OIHW, every BN with its `num_batches_tracked` (a 0-d
 *   int64 tensor), as `.pth` (an `OrderedDict`) or `.safetensors`. Loads with
 *   `model.load_state_dict(sd, strict=False)` into a stock torchvision ResNet (only `fc` missing) and with
 *   `strict=True` into a ResNet without `fc`.
 * - `detectron2`: the same tensors under detectron2's names (`stem.conv1.norm.weight`,
 *   `res2.0.conv1.weight`, `res3.0.shortcut.norm.running_mean`, …; no `fc`) in a `.pth` holding
 *   `{"model": OrderedDict, "__author__": "plrc", "matching_heuristics": True}`, which detectron2's
 *   `DetectionCheckpointer` reads with `torch.load` and matches by suffix. (A `.pkl` would have to hold numpy
 *   arrays, which cannot be written from here; detectron2 picks the reader by the file's suffix.)
 * - `mmdet`: `{"state_dict": OrderedDict}` with torchvision's names, for
 *   `init_cfg=dict(type='Pretrained', checkpoint=PATH)`.
 *
 * The core works on host tensors (`Map` of name → {shape, data} in torchvision layout) so that it needs no
 * GPU; {@link readStoreHost} is the thin wrapper that reads a {@link ParamStore}.
 *
 * @module
 */
import { encodeSafetensors, type StInput } from "../io/safetensors.ts";
import { encodePth, PthTensor, type PthValue, writeFileAtomic } from "../io/torch_pth.ts";
import { type ResNetConfig, resnetOutChannels, resnetSpecs } from "../models/resnet.ts";
import { hwioToOihw, isTrainable, type ParamStore } from "../nn/params.ts";
import { VERSION } from "../version.ts";

/** A host tensor in PyTorch layout: float32 values, or int64 (`num_batches_tracked`). */
export interface HostTensor {
  /** Shape in PyTorch's layout. */
  shape: number[];
  /** Values, row-major. */
  data: Float32Array | BigInt64Array;
}

/** The export targets. */
export const EXPORT_FORMATS = ["torchvision", "detectron2", "mmdet"] as const;
/** One export target. */
export type ExportFormat = typeof EXPORT_FORMATS[number];

/** Raised when the source tensors do not form the expected backbone. */
export class ExportError extends Error {
  /** `message` says what is missing or mismatched. */
  constructor(message: string) {
    super(message);
    this.name = "ExportError";
  }
}

/** Options shared by the exports. */
export interface ExportOptions {
  /** The backbone the tensors must form exactly (names and shapes). */
  model: ResNetConfig;
  /** Prefix of the backbone's names in the source (e.g. `online.backbone.`); other names are ignored. */
  prefix?: string;
  /**
   * `num_batches_tracked` of every BN: one count for all (every BN runs once per training forward), or per
   * BN module name (`bn1`, `layer1.0.bn2`, `layer2.0.downsample.1`, …). Ignored for BNs whose counter is
   * already in the source.
   */
  numBatchesTracked: number | bigint | Record<string, number | bigint>;
}

/**
 * The torchvision state dict of the backbone in `src`: names with `opts.prefix` are taken and the prefix
 * stripped, checked against torchvision's ResNet of `opts.model` (every entry present, shapes equal, nothing
 * else but `fc.weight`/`fc.bias`), ordered as torchvision's `state_dict()`, with a `num_batches_tracked`
 * after each BN's `running_var`.
 *
 * @throws {ExportError} naming the first missing, unexpected or misshapen entry.
 */
export function torchvisionStateDict(src: Map<string, HostTensor>, opts: ExportOptions): Map<string, HostTensor> {
  const prefix = opts.prefix ?? "";
  const picked = new Map<string, HostTensor>();
  for (const [name, t] of src) if (name.startsWith(prefix)) picked.set(name.slice(prefix.length), t);
  const what = `ResNet-${opts.model.depth} ×${opts.model.width}`;
  if (picked.size === 0) {
    const some = [...src.keys()].slice(0, 3).join(", ");
    throw new ExportError(`no entry starts with the prefix "${prefix}" (source names: ${some}, …)`);
  }
  const specs = resnetSpecs(opts.model);
  const out = new Map<string, HostTensor>();
  const take = (name: string, shape: number[], dtype: "F32" | "I64") => {
    const t = picked.get(name);
    if (!t) throw new ExportError(`${what}: "${prefix}${name}" is missing`);
    const n = shape.reduce((a, b) => a * b, 1);
    if (t.shape.length !== shape.length || t.shape.some((d, i) => d !== shape[i]) || t.data.length !== n) {
      throw new ExportError(
        `${what}: "${prefix}${name}" has shape [${t.shape}] (${t.data.length} values), expected [${shape}]`,
      );
    }
    const isI64 = t.data instanceof BigInt64Array;
    if (isI64 !== (dtype === "I64")) throw new ExportError(`${what}: "${prefix}${name}" must be ${dtype}`);
    out.set(name, t);
  };
  const counter = (bn: string): bigint => {
    const c = opts.numBatchesTracked;
    if (typeof c === "number" || typeof c === "bigint") return BigInt(c);
    if (!(bn in c)) throw new ExportError(`no num_batches_tracked count for ${bn}`);
    return BigInt(c[bn]);
  };
  for (const s of specs) {
    take(s.name, s.shape, "F32");
    if (s.name.endsWith(".running_var")) {
      const bn = s.name.slice(0, -".running_var".length);
      const nbt = `${bn}.num_batches_tracked`;
      if (picked.has(nbt)) take(nbt, [], "I64");
      else out.set(nbt, { shape: [], data: BigInt64Array.of(counter(bn)) });
    }
  }
  if (picked.has("fc.weight") || picked.has("fc.bias")) {
    const c5 = resnetOutChannels(opts.model).c5;
    const classes = (picked.get("fc.weight") ?? picked.get("fc.bias"))!.shape[0];
    take("fc.weight", [classes, c5], "F32");
    take("fc.bias", [classes], "F32");
  }
  const extra = [...picked.keys()].filter((k) => !out.has(k));
  if (extra.length) {
    throw new ExportError(
      `${what}: unexpected entries under "${prefix}": ${extra.slice(0, 5).join(", ")}${
        extra.length > 5 ? `, … (${extra.length} in all)` : ""
      }`,
    );
  }
  return out;
}

/** detectron2's name for a torchvision ResNet name (the renames of detectron2's convert-torchvision-to-d2). */
export function detectron2Name(tv: string): string {
  let k = tv.includes("layer") ? tv : `stem.${tv}`;
  k = k.replace(/layer([1-4])/, (_, t) => `res${Number(t) + 1}`);
  k = k.replace(/bn([1-3])/g, "conv$1.norm");
  return k.replace("downsample.0", "shortcut").replace("downsample.1", "shortcut.norm");
}

/** The detectron2 state dict (no `fc`: detectron2's ResNet backbone has none). */
export function detectron2StateDict(tv: Map<string, HostTensor>): Map<string, HostTensor> {
  const out = new Map<string, HostTensor>();
  for (const [k, t] of tv) if (!k.startsWith("fc.")) out.set(detectron2Name(k), t);
  return out;
}

function pthState(sd: Map<string, HostTensor>): Map<string, PthValue> {
  const m = new Map<string, PthValue>();
  for (const [k, t] of sd) {
    m.set(k, t.data instanceof BigInt64Array ? new PthTensor("I64", t.shape, t.data) : PthTensor.f32(t.shape, t.data));
  }
  return m;
}

/** The object saved for `format`, given the torchvision state dict. */
export function exportPayload(tv: Map<string, HostTensor>, format: ExportFormat): PthValue {
  switch (format) {
    case "torchvision":
      return pthState(tv);
    case "detectron2":
      return { model: pthState(detectron2StateDict(tv)), __author__: "plrc", matching_heuristics: true };
    case "mmdet":
      return { state_dict: pthState(tv) };
  }
}

/**
 * The detectron2 config lines a self-supervised backbone needs (RGB input with torchvision's pixel
 * statistics, the stride in the 3×3 convolution as torchvision has it, SyncBN, no frozen stage), plus the depth, the
 * channel counts of a width-reduced model, and the weights path.
 */
export function detectron2Config(model: ResNetConfig, weights: string): string[] {
  const w = (c: number) => Math.max(1, Math.round(c * model.width));
  const lines = [
    `MODEL.WEIGHTS ${weights}`,
    `MODEL.RESNETS.DEPTH ${model.depth}`,
    `INPUT.FORMAT RGB`,
    `MODEL.PIXEL_MEAN [123.675, 116.28, 103.53]`,
    `MODEL.PIXEL_STD [58.395, 57.12, 57.375]`,
    `MODEL.RESNETS.STRIDE_IN_1X1 False`,
    `MODEL.RESNETS.NORM SyncBN`,
    `MODEL.BACKBONE.FREEZE_AT 0`,
  ];
  const expansion = model.depth === 50 ? 4 : 1;
  if (model.depth !== 50 || model.width !== 1) {
    lines.push(`MODEL.RESNETS.RES2_OUT_CHANNELS ${w(64) * expansion}`);
  }
  if (model.width !== 1) {
    lines.push(`MODEL.RESNETS.STEM_OUT_CHANNELS ${w(64)}`);
    if (model.depth === 50) lines.push(`MODEL.RESNETS.WIDTH_PER_GROUP ${w(64)}`);
    // detectron2 doubles stage widths; torchvision rounds each stage separately
    const exact = [128, 256, 512].every((c, i) => w(c) === w(64) * 2 ** (i + 1));
    if (!exact) {
      lines.push(`# warning: width ${model.width} does not double exactly per stage; detectron2 cannot build it`);
    }
  }
  if (model.depth !== 50) lines.push(`MODEL.RESNETS.RES5_DILATION 1`);
  return lines;
}

/** What {@link writeExport} wrote. */
export interface ExportResult {
  /** The file written. */
  path: string;
  /** Names and shapes written (detectron2's names for that format). */
  entries: Map<string, number[]>;
  /** Config lines to print (detectron2 only). */
  config: string[];
}

/**
 * Writes the export of `src` (see {@link torchvisionStateDict}) to `path` atomically. `safetensors` is only
 * for `torchvision` (detectron2 and mmdetection read `torch.load` files only).
 */
export async function writeExport(
  src: Map<string, HostTensor>,
  format: ExportFormat,
  path: string,
  opts: ExportOptions & { safetensors?: boolean },
): Promise<ExportResult> {
  const tv = torchvisionStateDict(src, opts);
  let bytes: Uint8Array;
  const sd = format === "detectron2" ? detectron2StateDict(tv) : tv;
  if (opts.safetensors) {
    if (format !== "torchvision") {
      throw new ExportError(`${format} cannot read safetensors files: export ${format} as .pth`);
    }
    const tensors: Record<string, StInput> = {};
    for (const [k, t] of tv) {
      tensors[k] = t.data instanceof BigInt64Array
        ? { dtype: "I64", shape: t.shape, data: t.data }
        : { dtype: "F32", shape: t.shape, data: t.data };
    }
    bytes = encodeSafetensors(tensors, {
      format: "pt",
      producer: `plrc ${VERSION}`,
      model: `resnet${opts.model.depth}`,
      width: String(opts.model.width),
    });
  } else {
    bytes = encodePth(exportPayload(tv, format));
  }
  await writeFileAtomic(path, bytes);
  return {
    path,
    entries: new Map([...sd].map(([k, t]) => [k, t.shape])),
    config: format === "detectron2" ? detectron2Config(opts.model, path) : [],
  };
}

/**
 * Reads every entry of `store` whose name starts with `prefix` into host tensors in PyTorch layout (two
 * GPU reads: the parameter and the statistics buffers).
 */
export async function readStoreHost(store: ParamStore, prefix = ""): Promise<Map<string, HostTensor>> {
  const flat = store.flat();
  const params = (await flat.params.read()) as Float32Array;
  const stats = (await flat.stats.read()) as Float32Array;
  const out = new Map<string, HostTensor>();
  for (const [name, e] of store.entries) {
    if (!name.startsWith(prefix)) continue;
    const buf = isTrainable(e.spec.kind) ? params : stats;
    const v = buf.subarray(e.offset, e.offset + e.numel);
    out.set(name, { shape: [...e.spec.shape], data: e.spec.kind === "conv" ? hwioToOihw(v, e.spec.shape) : v.slice() });
  }
  return out;
}

/** Exports the backbone held in `store` (names with `opts.prefix`) straight from the GPU. */
export async function exportFromStore(
  store: ParamStore,
  format: ExportFormat,
  path: string,
  opts: ExportOptions & { safetensors?: boolean },
): Promise<ExportResult> {
  return await writeExport(await readStoreHost(store, opts.prefix ?? ""), format, path, opts);
}
