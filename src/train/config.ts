/**
 * The pre-training configuration: one schema table ({@link SCHEMA}) gives every key its type, default,
 * allowed values and documentation; validation, the defaults, `--set` parsing and `docs/config.md`
 * ({@link generateConfigDoc}) are all derived from it. Resolution order: schema defaults ← preset ←
 * config file ← `--set` (← command-line overrides such as `--data`). Values computed from the
 * configuration (S = R/4, h = R/32, the scaled learning rate, schedules...) live in {@link deriveConfig}
 * and {@link schedules}, and nowhere else.
 *
 * `deno run -A src/train/config.ts docs/config.md` rewrites the documentation from the schema.
 *
 * @module
 */
import { levenshtein } from "../util/text.ts";
import { Document, parse as parseYaml, visit } from "npm:yaml@^2.8.1";
import { UsageError } from "../cli/usage.ts";
import { DEFAULT_PHOTOMETRIC } from "../data/augment.ts";
import { type DataConfig, dataConfig, DEFAULT_DATA_CONFIG } from "../data/batch.ts";
import { defaultMinSize } from "../data/felzenszwalb.ts";
import { type ResNetConfig, resnetOutChannels } from "../models/resnet.ts";
import { VERSION } from "../version.ts";
import { PRESET_NAMES, type PresetName, PRESETS } from "./presets.ts";
import { cosineLr, emaMomentum, teacherTemperature } from "./schedule.ts";

export { PRESET_NAMES, type PresetName, PRESETS };

/** The literal that lets a key be computed from other keys. */
export type Auto = "auto";
/** Training method: PLRC, or one of the two baselines. */
export type Method = "plrc" | "moco" | "detcon";

/** Backbone and heads. */
export interface ModelConfig {
  depth: 18 | 34 | 50;
  width: number;
  pointHidden: number | Auto;
  pointDim: number;
  dinoHidden: number | Auto;
  bottleneck: number;
  prototypes: number;
  bnGroup: number;
  shuffleBn: boolean;
  init: string | null;
}

/** Images, views, regions and points. */
export interface DataSection {
  source: string;
  scenes: { count: number; classes: number; size: number; seed: number; cache: string | null };
  resolution: number;
  regions: {
    source: "grid" | "fh" | "labelmaps" | "gt";
    labelmaps: string | null;
    grid: number;
    count: number;
    fhScale: number;
    fhSigma: number;
    fhMinSize: number | Auto;
    noise: number;
    noiseBlock: number;
    shift: number;
  };
  points: number;
  cropScale: [number, number];
  minOverlap: number;
  flipP: number;
  photometric: boolean;
  cacheShortSide: number;
  cacheDir: string | null;
  workers: number | Auto;
  prefetch: number;
}

/** Loss weights, temperatures and buffers. */
export interface LossConfig {
  image: { weight: number; temperature: number; queue: number };
  point: { weight: number; temperature: number; baseTemperature: number };
  distill: {
    weight: number;
    studentTemperature: number;
    teacherTemperature: number;
    teacherStartTemperature: number;
    teacherWarmup: number;
    centerMomentum: number;
    affinityScale: number;
  };
  region: { temperature: number };
}

/** The whole configuration; `docs/config.md` documents every key. */
export interface PlrcConfig {
  preset: PresetName;
  method: Method;
  seed: number;
  model: ModelConfig;
  data: DataSection;
  loss: LossConfig;
  optim: {
    lr: number;
    lrScaling: "linear" | "none";
    lrReferenceBatch: number;
    momentum: number;
    weightDecay: number;
    nesterov: boolean;
    lars: boolean;
    larsTrust: number;
  };
  schedule: { lr: "cosine" | "constant"; warmup: number; granularity: "epoch" | "step" };
  ema: { momentum: number; schedule: "constant" | "cosine" };
  train: {
    epochs: number;
    batchSize: number;
    accumulate: number;
    stepsPerEpoch: number | Auto;
    maxSteps: number | null;
  };
  log: { interval: number };
  eval: { knnEvery: number; knnTrain: number; knnTest: number; knnAnn: string | null };
  checkpoint: { interval: number; unit: "epoch" | "step"; keepLast: number };
  device: { f16Storage: boolean };
}

type Leaves<T, P extends string = ""> = {
  [K in keyof T & string]: T[K] extends readonly unknown[] ? `${P}${K}`
    : T[K] extends object ? Leaves<T[K], `${P}${K}.`>
    : `${P}${K}`;
}[keyof T & string];

/** Every key path of the configuration ("model.depth", "loss.image.queue", ...). */
export type ConfigPath = Leaves<PlrcConfig>;
/** The type of the value at a key path. */
export type ValueAt<T, P extends string> = P extends `${infer H}.${infer R}`
  ? H extends keyof T ? ValueAt<T[H], R> : never
  : P extends keyof T ? T[P]
  : never;
/** Some keys by path, each with its type: what presets are made of. */
export type FlatConfig = { [P in ConfigPath]?: ValueAt<PlrcConfig, P> };

/** How one key is checked. */
export type KeyRule =
  | { type: "int"; min?: number; max?: number; multipleOf?: number; auto?: true; nullable?: true }
  | { type: "number"; min?: number; max?: number; minExclusive?: true; maxExclusive?: true }
  | { type: "bool" }
  | { type: "string"; nullable?: true }
  | { type: "enum"; values: readonly (string | number)[] }
  | { type: "range"; min: number; max: number; minExclusive?: true };

/** One row of the schema: rule, default and documentation. */
export type KeySpec<V> = KeyRule & { default: V; doc: string };

const POS = { min: 0, minExclusive: true } as const;

/** The schema: every key, in the order of the documentation and of saved configurations. */
export const SCHEMA: { readonly [P in ConfigPath]: KeySpec<ValueAt<PlrcConfig, P>> } = {
  preset: {
    type: "enum",
    values: PRESET_NAMES,
    default: "cpu-tiny",
    doc: "Preset laid over the defaults before the file's other keys and --set (see Presets).",
  },
  method: {
    type: "enum",
    values: ["plrc", "moco", "detcon"],
    default: "plrc",
    doc: "plrc; moco: image-level contrast only; detcon: region-averaged features contrasted region against region.",
  },
  seed: { type: "int", min: 0, default: 0, doc: "Seed of initialisation, views and shuffles." },

  "model.depth": { type: "enum", values: [18, 34, 50], default: 50, doc: "ResNet depth (torchvision v1.5 layout)." },
  "model.width": { type: "number", ...POS, max: 4, default: 1, doc: "Channel multiplier (1 = torchvision widths)." },
  "model.init": {
    type: "string",
    nullable: true,
    default: null,
    doc: "A torchvision ResNet from PyTorch (.pth from torch.save or .safetensors; a state dict, maybe under " +
      "state_dict or model and a prefix such as module.encoder_q.) whose weights and BN statistics start both " +
      "encoders' backbones, e.g. ImageNet weights; its depth and width must be model.depth and model.width. " +
      "null: random initialisation. A resumed run takes everything from its checkpoint.",
  },
  "model.pointHidden": {
    type: "int",
    min: 1,
    auto: true,
    default: "auto",
    doc: "Hidden width of the point head (fcs); auto: C5 channels (2048 for ResNet-50 ×1).",
  },
  "model.pointDim": { type: "int", min: 1, default: 128, doc: "Output width D of the point head (fcs)." },
  "model.dinoHidden": {
    type: "int",
    min: 1,
    auto: true,
    default: "auto",
    doc: "Hidden width of the DINO head (fcs_2); auto: C5 channels.",
  },
  "model.bottleneck": {
    type: "int",
    min: 1,
    default: 256,
    doc: "DINO head bottleneck Db (L2-normalised). The head's layers start at trunc-normal std 0.02, and the " +
      "first SGD steps add a near rank-1 update to the last one that grows like lr / (0.02²·Db): a narrow " +
      "bottleneck turns every position's z into the same vector within tens of steps and the distillation term " +
      "stops teaching (cpu-tiny, 128 steps: alignment 0.98 at Db 32, 0.56 at 256). So no preset narrows it " +
      "below the paper's 256, and cpu-tiny, whose lr per image is high (0.05 at batch 8), widens it to 512 " +
      "(768 steps: alignment at most 0.74-0.77 at 256, 0.65-0.66 at 512). Training logs the alignment as " +
      "distill_alignment and warns above 0.9.",
  },
  "model.prototypes": { type: "int", min: 1, default: 4096, doc: "Prototypes K of the weight-normalised layer." },
  "model.bnGroup": {
    type: "int",
    min: 1,
    default: 32,
    doc: "Ghost batch-norm group size (images per BN statistics group; one GPU of the release).",
  },
  "model.shuffleBn": {
    type: "bool",
    default: true,
    doc: "Emulate shuffle-BN: permute the key encoder's batch before grouping, un-permute after.",
  },

  "data.source": {
    type: "string",
    default: "scenes",
    doc: "scenes (built-in procedural scenes) or a folder of JPEG/PNG images; --data sets it.",
  },
  "data.scenes.count": { type: "int", min: 1, default: 10000, doc: "Number of built-in scenes (dataset size)." },
  "data.scenes.classes": { type: "int", min: 1, max: 10, default: 6, doc: "Object classes in the scenes." },
  "data.scenes.size": { type: "int", min: 32, max: 1024, default: 256, doc: "Scene image side in pixels." },
  "data.scenes.seed": { type: "int", min: 0, default: 0, doc: "Seed of the scene generator (defines the dataset)." },
  "data.scenes.cache": {
    type: "string",
    nullable: true,
    default: null,
    doc: "Folder where each scene is kept once rendered, so that later epochs and other runs on the same " +
      "scenes read it instead of rendering it again (~150 KB per 192-px scene); null: render every time.",
  },
  "data.resolution": {
    type: "int",
    min: 32,
    max: 1024,
    multipleOf: 32,
    default: 224,
    doc: "View size R in pixels; S = R/4 and h = R/32 follow.",
  },
  "data.regions.source": {
    type: "enum",
    values: ["grid", "fh", "labelmaps", "gt"],
    default: "grid",
    doc: "Where regions come from: a G×G grid, Felzenszwalb-Huttenlocher masks, label-map PNGs, or gt: the " +
      "built-in scenes' ground-truth instance masks (background one region, each object one).",
  },
  "data.regions.labelmaps": {
    type: "string",
    nullable: true,
    default: null,
    doc: "Folder of label-map PNGs, required with source labelmaps: for image <path> in the data folder, " +
      "<folder>/<path>.png (as plrc masks writes them) or <folder>/<path without extension>.png (as VOC's " +
      "SegmentationObject). Labels > 0 are regions, 0 is none; grey, palette or RGB PNGs of the image's " +
      "aspect at any size. An image without a usable map is skipped and listed.",
  },
  "data.regions.grid": { type: "int", min: 1, max: 64, default: 4, doc: "G of the G×G grid regions." },
  "data.regions.count": {
    type: "int",
    min: 1,
    max: 64,
    default: 4,
    doc: "Region slots per image for point contrast (1 reproduces the release).",
  },
  "data.regions.fhScale": { type: "number", ...POS, default: 1000, doc: "FH scale k (DetCon: 1000)." },
  "data.regions.fhSigma": { type: "number", min: 0, default: 0.8, doc: "FH pre-smoothing σ in pixels." },
  "data.regions.fhMinSize": {
    type: "int",
    min: 1,
    auto: true,
    default: "auto",
    doc: "FH minimum component size; auto: 1000 scaled by area to the cache short side.",
  },
  "data.regions.noise": {
    type: "number",
    min: 0,
    max: 1,
    default: 0,
    doc: "Degrade the masks on purpose (region-quality ablation): the fraction of noiseBlock×noiseBlock " +
      "blocks of each image's label map filled with another region's label (blocks, not pixels, so the " +
      "noise survives the S×S masks). Same degraded map in both views and every epoch (from seed).",
  },
  "data.regions.noiseBlock": {
    type: "int",
    min: 1,
    max: 256,
    default: 8,
    doc: "Block side in label-map pixels for data.regions.noise.",
  },
  "data.regions.shift": {
    type: "int",
    min: 0,
    max: 256,
    default: 0,
    doc: "Degrade the masks on purpose: translate each image's label map by (±shift, ±shift) pixels (random " +
      "signs, border replicated), so every boundary is off by shift pixels; applied before the noise.",
  },
  "data.points": { type: "int", min: 1, max: 1024, default: 16, doc: "Points per region per view." },
  "data.cropScale": {
    type: "range",
    min: 0,
    max: 1,
    minExclusive: true,
    default: [0.2, 1],
    doc: "RandomResizedCrop area range.",
  },
  "data.minOverlap": {
    type: "number",
    min: 0,
    max: 1,
    default: 0.5,
    doc: "A0/B0 overlap threshold (intersection / larger area).",
  },
  "data.flipP": { type: "number", min: 0, max: 1, default: 0.5, doc: "Horizontal flip probability per view." },
  "data.photometric": {
    type: "bool",
    default: true,
    doc: "MoCo v2 colour jitter, grayscale and blur (false: geometry only).",
  },
  "data.cacheShortSide": {
    type: "int",
    min: 32,
    max: 4096,
    default: 256,
    doc: "Decoded images are cached with their short side at most this.",
  },
  "data.cacheDir": {
    type: "string",
    nullable: true,
    default: null,
    doc: "Where a folder source keeps its decode cache (cache/) and Felzenszwalb masks (masks-fh/); null: " +
      "DIR/.plrc inside the image folder. Set it when that folder is read-only; one folder per data set.",
  },
  "data.workers": {
    type: "int",
    min: 0,
    max: 64,
    auto: true,
    default: "auto",
    doc: "Data worker threads making samples (0: in the main thread); auto: CPU cores − 1, at most 15.",
  },
  "data.prefetch": {
    type: "int",
    min: 0,
    max: 64,
    default: 2,
    doc: "Batches the data workers make ahead while the GPU trains (with data.workers ≥ 1).",
  },

  "loss.image.weight": { type: "number", min: 0, default: 0.7, doc: "Weight of the image-level InfoNCE (plrc)." },
  "loss.image.temperature": { type: "number", ...POS, max: 10, default: 0.2, doc: "Image InfoNCE temperature." },
  "loss.image.queue": { type: "int", min: 1, default: 65536, doc: "Image-level negative queue length." },
  "loss.point.weight": { type: "number", min: 0, default: 0.3, doc: "Weight of the point-level region contrast." },
  "loss.point.temperature": { type: "number", ...POS, max: 10, default: 0.2, doc: "Point contrast temperature τ." },
  "loss.point.baseTemperature": {
    type: "number",
    ...POS,
    max: 10,
    default: 0.07,
    doc: "Base temperature: the point loss is scaled by τ / base (0.2/0.07).",
  },
  "loss.distill.weight": { type: "number", min: 0, default: 0.3, doc: "Weight of the point affinity distillation." },
  "loss.distill.studentTemperature": {
    type: "number",
    ...POS,
    max: 10,
    default: 0.1,
    doc: "Student temperature.",
  },
  "loss.distill.teacherTemperature": {
    type: "number",
    ...POS,
    max: 10,
    default: 0.07,
    doc: "Teacher temperature after the warm-up.",
  },
  "loss.distill.teacherStartTemperature": {
    type: "number",
    ...POS,
    max: 10,
    default: 0.04,
    doc: "Teacher temperature at the start of the warm-up.",
  },
  "loss.distill.teacherWarmup": {
    type: "number",
    min: 0,
    max: 1,
    default: 0.3,
    doc: "Teacher temperature warm-up as a fraction of training (30 of 100 epochs).",
  },
  "loss.distill.centerMomentum": {
    type: "number",
    min: 0,
    max: 1,
    maxExclusive: true,
    default: 0.9,
    doc: "Momentum of the teacher centre.",
  },
  "loss.distill.affinityScale": {
    type: "number",
    ...POS,
    default: 1 / 128,
    doc: "Scale of the affinity entries (released: 1/128).",
  },
  "loss.region.temperature": {
    type: "number",
    ...POS,
    max: 10,
    default: 0.1,
    doc: "Region contrast temperature (detcon).",
  },

  "optim.lr": {
    type: "number",
    ...POS,
    max: 10,
    default: 0.03,
    doc: "SGD learning rate at optim.lrReferenceBatch images per step.",
  },
  "optim.lrScaling": {
    type: "enum",
    values: ["linear", "none"],
    default: "linear",
    doc: "linear: lr × batch / lrReferenceBatch; none: lr as given.",
  },
  "optim.lrReferenceBatch": { type: "int", min: 1, default: 256, doc: "Batch size at which optim.lr applies." },
  "optim.momentum": { type: "number", min: 0, max: 1, maxExclusive: true, default: 0.9, doc: "SGD momentum." },
  "optim.weightDecay": {
    type: "number",
    min: 0,
    max: 1,
    maxExclusive: true,
    default: 1e-4,
    doc: "Weight decay on every parameter (BN and biases included, as released).",
  },
  "optim.nesterov": { type: "bool", default: false, doc: "Nesterov momentum." },
  "optim.lars": { type: "bool", default: false, doc: "LARS layer-wise trust ratio." },
  "optim.larsTrust": { type: "number", ...POS, max: 1, default: 0.001, doc: "LARS trust coefficient η." },

  "schedule.lr": {
    type: "enum",
    values: ["cosine", "constant"],
    default: "cosine",
    doc: "Learning-rate schedule after the warm-up.",
  },
  "schedule.warmup": {
    type: "number",
    min: 0,
    max: 1,
    maxExclusive: true,
    default: 0,
    doc: "Linear learning-rate warm-up as a fraction of training (per step).",
  },
  "schedule.granularity": {
    type: "enum",
    values: ["epoch", "step"],
    default: "epoch",
    doc: "Schedules advance once per epoch (as released) or every step.",
  },

  "ema.momentum": { type: "number", min: 0, max: 1, default: 0.999, doc: "Key-encoder EMA momentum m." },
  "ema.schedule": {
    type: "enum",
    values: ["constant", "cosine"],
    default: "constant",
    doc: "constant m (released), or cosine from m to 1 over training (BYOL).",
  },

  "train.epochs": { type: "int", min: 1, default: 100, doc: "Epochs." },
  "train.batchSize": { type: "int", min: 1, default: 256, doc: "Images per step B." },
  "train.accumulate": {
    type: "int",
    min: 1,
    default: 1,
    doc: "Micro-batches per step (gradient accumulation): the step runs B/accumulate images at a time, as that " +
      "many GPUs of a data-parallel run would (each loss sees its micro-batch; one queue, centre and SGD step), " +
      "so a batch larger than the GPU's memory still trains. Must divide train.batchSize.",
  },
  "train.stepsPerEpoch": {
    type: "int",
    min: 1,
    auto: true,
    default: "auto",
    doc: "Steps per epoch; auto: dataset size / batch size (rounded down).",
  },
  "train.maxSteps": {
    type: "int",
    min: 1,
    nullable: true,
    default: null,
    doc: "Stop after this many steps (schedules still span all epochs); null: no limit.",
  },

  "log.interval": { type: "int", min: 1, default: 10, doc: "Log every this many steps." },
  "eval.knnEvery": {
    type: "int",
    min: 0,
    default: 0,
    doc: "Run the knn protocol (plrc eval --protocol knn) on the online backbone every this many steps and " +
      "after the last, logged and written to RUN/monitor.jsonl; 0: off.",
  },
  "eval.knnTrain": { type: "int", min: 1, default: 100, doc: "Bank images of the knn monitor." },
  "eval.knnTest": { type: "int", min: 1, default: 100, doc: "Held-out images the knn monitor scores." },
  "eval.knnAnn": {
    type: "string",
    nullable: true,
    default: null,
    doc: "COCO instances file of the knn monitor's labelled images (file_names relative to its folder), " +
      "required with a folder data.source; null: the held-out built-in scenes, as plrc eval uses.",
  },
  "checkpoint.interval": { type: "int", min: 1, default: 1, doc: "Checkpoint every this many units." },
  "checkpoint.unit": {
    type: "enum",
    values: ["epoch", "step"],
    default: "epoch",
    doc: "Unit of checkpoint.interval; the last step is always saved.",
  },
  "checkpoint.keepLast": { type: "int", min: 0, default: 3, doc: "Checkpoints kept (0: all)." },

  "device.f16Storage": {
    type: "bool",
    default: false,
    doc: "Reserved for f16 activation storage (adapters with shader-f16), which is not built yet: only false " +
      "is accepted, so that a configuration asking for it fails instead of silently training in f32.",
  },
};

/** Every key path, in schema order. */
export const CONFIG_PATHS: readonly ConfigPath[] = Object.keys(SCHEMA) as ConfigPath[];

const SECTION_DOCS: Record<string, string> = {
  "": "Top level",
  model: "Backbone and heads",
  "data": "Data and views",
  "data.scenes": "Built-in scenes (data.source scenes)",
  "data.regions": "Regions",
  "loss.image": "Image-level contrast (InfoNCE with a queue)",
  "loss.point": "Point-level region contrast",
  "loss.distill": "Point affinity distillation",
  "loss.region": "Region contrast (detcon baseline)",
  optim: "Optimizer (SGD)",
  schedule: "Schedules",
  ema: "Key encoder",
  train: "Training length",
  log: "Logging",
  checkpoint: "Checkpoints",
  device: "Device",
};

/** A configuration problem (or several): a {@link UsageError}, so the CLI exits with code 2. */
export class ConfigError extends UsageError {
  constructor(readonly problems: string[]) {
    super(
      problems.length === 1
        ? `configuration error: ${problems[0]}`
        : `${problems.length} configuration errors:\n  ${problems.join("\n  ")}`,
    );
    this.name = "ConfigError";
  }
}

// ---------------------------------------------------------------- helpers

type Obj = Record<string, unknown>;
const isObj = (v: unknown): v is Obj => typeof v === "object" && v !== null && !Array.isArray(v);
const SECTIONS = new Set(
  CONFIG_PATHS.flatMap((p) => p.split(".").slice(0, -1).map((_, i, a) => a.slice(0, i + 1).join("."))),
);
const isLeaf = (p: string): p is ConfigPath => Object.hasOwn(SCHEMA, p);
const specOf = (p: ConfigPath): KeySpec<unknown> => SCHEMA[p] as KeySpec<unknown>;

/** Reads a value by path ("a.b.c"). */
function getPath(o: unknown, path: string): unknown {
  for (const k of path.split(".")) o = isObj(o) ? o[k] : undefined;
  return o;
}

/** Writes a value by path, creating sections. */
function setPath(o: Obj, path: string, v: unknown): void {
  const ks = path.split(".");
  for (const k of ks.slice(0, -1)) {
    if (!isObj(o[k])) o[k] = {};
    o = o[k] as Obj;
  }
  o[ks[ks.length - 1]] = Array.isArray(v) ? [...v] : v;
}

/** A value as written in messages. */
function show(v: unknown): string {
  if (v === undefined) return "nothing";
  if (typeof v === "string") return JSON.stringify(v);
  if (typeof v === "number" || typeof v === "boolean" || v === null) return String(v);
  try {
    return JSON.stringify(v);
  } catch {
    return String(v);
  }
}

/** The allowed values of a key, in words. */
export function describeRule(rule: KeyRule): string {
  const bound = (r: { min?: number; max?: number; minExclusive?: true; maxExclusive?: true }) => {
    const lo = r.min === undefined ? "" : `${r.minExclusive ? ">" : "≥"} ${r.min}`;
    const hi = r.max === undefined ? "" : `${r.maxExclusive ? "<" : "≤"} ${r.max}`;
    return [lo, hi].filter(Boolean).join(" and ");
  };
  switch (rule.type) {
    case "int": {
      let s = `an integer${rule.min !== undefined || rule.max !== undefined ? " " + bound(rule) : ""}`;
      if (rule.multipleOf) s += `, a multiple of ${rule.multipleOf}`;
      if (rule.auto) s += `, or auto`;
      if (rule.nullable) s += `, or null`;
      return s;
    }
    case "number":
      return `a number${rule.min !== undefined || rule.max !== undefined ? " " + bound(rule) : ""}`;
    case "bool":
      return "true or false";
    case "string":
      return rule.nullable ? "a string, or null" : "a string";
    case "enum":
      return rule.values.join(", ");
    case "range":
      return `[low, high] with ${rule.min} ${rule.minExclusive ? "<" : "≤"} low ≤ high ≤ ${rule.max}`;
  }
}

/** Whether `v` satisfies `rule`. */
function fits(rule: KeyRule, v: unknown): boolean {
  const inBounds = (x: number, r: { min?: number; max?: number; minExclusive?: true; maxExclusive?: true }) =>
    Number.isFinite(x) &&
    (r.min === undefined || (r.minExclusive ? x > r.min : x >= r.min)) &&
    (r.max === undefined || (r.maxExclusive ? x < r.max : x <= r.max));
  switch (rule.type) {
    case "int":
      if (v === "auto" && rule.auto) return true;
      if (v === null && rule.nullable) return true;
      return typeof v === "number" && Number.isInteger(v) && inBounds(v, rule) &&
        (!rule.multipleOf || v % rule.multipleOf === 0);
    case "number":
      return typeof v === "number" && inBounds(v, rule);
    case "bool":
      return typeof v === "boolean";
    case "string":
      return (typeof v === "string" && v.length > 0) || (v === null && !!rule.nullable);
    case "enum":
      return rule.values.includes(v as string | number);
    case "range":
      return Array.isArray(v) && v.length === 2 && v.every((x) => typeof x === "number") &&
        inBounds(v[0], { min: rule.min, minExclusive: rule.minExclusive }) && v[0] <= v[1] && v[1] <= rule.max;
  }
}

/** The key most likely meant by an unknown `path`, if one is close enough. */
export function suggestKey(path: string): string | undefined {
  const norm = (s: string) => s.toLowerCase().replace(/[_-]/g, "");
  const candidates = [...CONFIG_PATHS, ...SECTIONS];
  const n = norm(path);
  let best: string | undefined, bestD = Infinity;
  for (const c of candidates) {
    const d = levenshtein(n, norm(c));
    if (d < bestD) best = c, bestD = d;
  }
  if (best !== undefined && bestD <= Math.max(1, Math.floor(n.length / 5))) return best;
  // an abbreviation or an extension of a key ("optimizer" → "optim")
  const parent = (s: string) => s.split(".").slice(0, -1).join(".");
  const tail = (s: string) => norm(s.split(".").pop()!);
  const t = tail(path);
  const prefixed = candidates.find((c) => {
    const m = tail(c);
    return parent(c) === parent(path) && Math.min(m.length, t.length) >= 3 && (m.startsWith(t) || t.startsWith(m));
  });
  if (prefixed) return prefixed;
  // the same key name in another section ("train.lr" → "optim.lr")
  const same = candidates.filter((c) => {
    const l = tail(c);
    return l === t || (t.length > 4 && levenshtein(l, t) <= 1);
  });
  return same[0];
}

function keysOf(section: string): string[] {
  const pre = section ? section + "." : "";
  const names = new Set<string>();
  for (const p of [...CONFIG_PATHS, ...SECTIONS]) {
    if (p.startsWith(pre) && p.length > pre.length) names.add(p.slice(pre.length).split(".")[0]);
  }
  return [...names];
}

function unknownKey(path: string, origin?: string): string {
  const parent = path.split(".").slice(0, -1).join(".");
  const s = suggestKey(path);
  const where = origin ? ` (from ${origin})` : "";
  if (s) return `${path}: unknown key${where}; did you mean ${s}?`;
  const section = SECTIONS.has(parent) ? parent : "";
  return `${path}: unknown key${where}; keys ${section ? `of ${section}` : "at the top level"}: ${
    keysOf(section).join(", ")
  }`;
}

function badValue(path: string, v: unknown, allowed: string, origin?: string): string {
  return `${path}: got ${show(v)}${origin ? ` (from ${origin})` : ""}; allowed: ${allowed}`;
}

// ---------------------------------------------------------------- defaults, validation

/** The schema's defaults as a configuration (a fresh copy each call). */
export function schemaDefaults(): PlrcConfig {
  const o: Obj = {};
  for (const p of CONFIG_PATHS) setPath(o, p, SCHEMA[p].default);
  return o as unknown as PlrcConfig;
}

/** Defaults of every key (the paper's setting, with preset cpu-tiny named as the one to apply). */
export const DEFAULTS: Readonly<PlrcConfig> = schemaDefaults();

/** Problems of a complete configuration object: structure, each value, and rules across keys. */
function problemsOf(cfg: unknown, origins: Map<string, string> = new Map()): string[] {
  const problems: string[] = [];
  if (!isObj(cfg)) return [`the configuration must be a mapping of keys to values, got ${show(cfg)}`];
  const walk = (o: Obj, pre: string) => {
    for (const [k, v] of Object.entries(o)) {
      const p = pre + k;
      if (isLeaf(p)) continue;
      if (SECTIONS.has(p)) {
        if (isObj(v)) walk(v, p + ".");
        else problems.push(badValue(p, v, `a mapping with keys ${keysOf(p).join(", ")}`, origins.get(p)));
      } else problems.push(unknownKey(p, origins.get(p)));
    }
  };
  walk(cfg, "");
  const bad = new Set<string>();
  for (const p of CONFIG_PATHS) {
    const v = getPath(cfg, p);
    if (v === undefined) {
      problems.push(`${p}: missing; allowed: ${describeRule(specOf(p))}`);
      bad.add(p);
    } else if (!fits(specOf(p), v)) {
      problems.push(badValue(p, v, describeRule(specOf(p)), origins.get(p)));
      bad.add(p);
    }
  }
  const c = cfg as unknown as PlrcConfig;
  const ok = (...ps: ConfigPath[]) => ps.every((p) => !bad.has(p) && getPath(cfg, p) !== undefined);
  const rule = (p: ConfigPath, allowed: string) => problems.push(badValue(p, getPath(cfg, p), allowed, origins.get(p)));
  if (ok("eval.knnEvery", "eval.knnAnn", "data.source")) {
    if (c.eval.knnEvery > 0 && c.eval.knnAnn === null && c.data.source !== "scenes") {
      rule("eval.knnAnn", "a COCO instances file when eval.knnEvery > 0 with a folder data.source");
    }
  }
  if (ok("device.f16Storage") && c.device.f16Storage) {
    rule("device.f16Storage", "false (f16 activation storage is not built yet; every buffer is f32)");
  }
  if (ok("data.regions.source", "data.regions.labelmaps")) {
    if (c.data.regions.source === "labelmaps" && c.data.regions.labelmaps === null) {
      rule("data.regions.labelmaps", "a folder of label-map PNGs (required when data.regions.source is labelmaps)");
    }
  }
  if (ok("data.regions.source", "data.source")) {
    if (c.data.regions.source === "labelmaps" && c.data.source === "scenes") {
      rule("data.regions.source", "grid, fh or gt with the built-in scenes (label maps need a folder data.source)");
    }
    if (c.data.regions.source === "gt" && c.data.source !== "scenes") {
      rule(
        "data.regions.source",
        "grid, fh or labelmaps with a folder source (gt masks exist for the built-in scenes only)",
      );
    }
  }
  if (ok("data.regions.source", "data.regions.grid", "data.regions.count")) {
    const g = c.data.regions.grid;
    if (c.data.regions.source === "grid" && c.data.regions.count > g * g) {
      rule("data.regions.count", `at most data.regions.grid² = ${g * g} with grid regions`);
    }
  }
  if (ok("train.accumulate", "train.batchSize") && c.train.batchSize % c.train.accumulate !== 0) {
    rule("train.accumulate", `a divisor of train.batchSize (${c.train.batchSize})`);
  }
  if (ok("model.bnGroup", "train.batchSize", "train.accumulate") && c.train.batchSize % c.train.accumulate === 0) {
    const { bnGroup } = c.model, b = c.train.batchSize / c.train.accumulate;
    const what = c.train.accumulate > 1
      ? `the micro-batch train.batchSize / train.accumulate (${b})`
      : `train.batchSize (${b})`;
    if (bnGroup < b && b % bnGroup !== 0) {
      rule("model.bnGroup", `a divisor of ${what}, or at least ${b} (one group)`);
    }
  }
  if (ok("method", "loss.image.queue", "train.batchSize")) {
    if (c.method !== "detcon" && c.loss.image.queue < c.train.batchSize) {
      rule("loss.image.queue", `at least train.batchSize (${c.train.batchSize})`);
    }
  }
  if (ok("method", "loss.image.weight", "loss.point.weight", "loss.distill.weight")) {
    const l = c.loss;
    if (c.method === "plrc" && l.image.weight + l.point.weight + l.distill.weight === 0) {
      rule("loss.image.weight", "loss weights that are not all 0 (method plrc)");
    }
  }
  if (ok("data.source", "data.scenes.count", "train.batchSize", "train.stepsPerEpoch")) {
    if (c.data.source === "scenes" && c.train.stepsPerEpoch === "auto" && c.data.scenes.count < c.train.batchSize) {
      rule("data.scenes.count", `at least train.batchSize (${c.train.batchSize}) for at least one step per epoch`);
    }
  }
  return problems;
}

/** Checks a complete configuration; throws a {@link ConfigError} listing every problem. */
export function validateConfig(cfg: unknown): PlrcConfig {
  const problems = problemsOf(cfg);
  if (problems.length) throw new ConfigError(problems);
  return cfg as PlrcConfig;
}

// ---------------------------------------------------------------- --set, resolution

/** One `--set` assignment. */
export interface Assignment {
  path: ConfigPath;
  value: unknown;
}

const KEY_RE = /^[A-Za-z_][\w-]*(\.[A-Za-z_][\w-]*)*$/;

/**
 * Parses `key.path=value`: the value is read as a YAML scalar (or a flow sequence such as `[0.2, 1]`)
 * and checked against the key's rule; a string key takes the text as is unless it is quoted. Throws a
 * {@link ConfigError} naming the key on bad syntax, an unknown key or a bad value.
 */
export function parseSet(s: string): Assignment {
  const eq = s.indexOf("=");
  const key = eq < 0 ? "" : s.slice(0, eq).trim();
  if (eq < 0 || !KEY_RE.test(key)) {
    throw new ConfigError([`--set expects key.path=value (e.g. optim.lr=0.1), got ${show(s)}`]);
  }
  if (!isLeaf(key)) {
    if (SECTIONS.has(key)) {
      throw new ConfigError([`${key}: is a section (from --set); set one of its keys: ${keysOf(key).join(", ")}`]);
    }
    throw new ConfigError([unknownKey(key, "--set")]);
  }
  const raw = s.slice(eq + 1).trim();
  const rule = specOf(key);
  let value: unknown;
  if (rule.type === "string" && !/^(["']).*\1$/.test(raw) && !(rule.nullable && /^(|~|null|Null|NULL)$/.test(raw))) {
    value = raw;
  } else {
    try {
      value = parseYaml(raw);
    } catch (e) {
      throw new ConfigError([
        `${key}: cannot read ${show(raw)} as a YAML value (from --set): ${(e as Error).message.split("\n")[0]}`,
      ]);
    }
    if (isObj(value)) throw new ConfigError([badValue(key, raw, describeRule(rule), "--set")]);
  }
  if (!fits(rule, value)) throw new ConfigError([badValue(key, value, describeRule(rule), "--set")]);
  return { path: key, value };
}

/** What {@link resolveConfig} layers. */
export interface ResolveOptions {
  /** Preset when neither the file nor `--set` names one (default: the schema's, cpu-tiny). */
  preset?: string;
  /** Parsed YAML of a configuration file (null or undefined: none). */
  file?: unknown;
  /** The file's name, for messages. */
  fileName?: string;
  /** `--set key=value` strings, applied in order after the file. */
  sets?: readonly string[];
  /** Last layer: command-line options that stand for keys, e.g. `{ path: "data.source", value, origin: "--data" }`. */
  overrides?: readonly { path: string; value: unknown; origin: string }[];
}

/**
 * Resolves a configuration: schema defaults ← preset ← file ← `--set` ← overrides. The preset is the
 * last one named (option, then file, then `--set`) and is always applied first. Every problem in every
 * layer is collected and thrown together as one {@link ConfigError}.
 */
export function resolveConfig(opts: ResolveOptions = {}): PlrcConfig {
  const problems: string[] = [];
  const origins = new Map<string, string>();
  const fileName = opts.fileName ?? "the config file";
  const assignments: Assignment[] = [];
  for (const s of opts.sets ?? []) {
    try {
      assignments.push(parseSet(s));
    } catch (e) {
      if (!(e instanceof ConfigError)) throw e;
      problems.push(...e.problems);
    }
  }
  let file: Obj = {};
  if (opts.file !== undefined && opts.file !== null) {
    if (isObj(opts.file)) file = opts.file;
    else problems.push(`${fileName}: the configuration must be a mapping of keys to values, got ${show(opts.file)}`);
  }

  // the preset: the last one named
  let preset: { name: unknown; origin: string } = { name: SCHEMA.preset.default, origin: "" };
  if (opts.preset !== undefined) preset = { name: opts.preset, origin: "the preset option" };
  if (file.preset !== undefined) preset = { name: file.preset, origin: fileName };
  for (const a of assignments) if (a.path === "preset") preset = { name: a.value, origin: "--set" };
  for (const o of opts.overrides ?? []) if (o.path === "preset") preset = { name: o.value, origin: o.origin };
  let presetName: PresetName = SCHEMA.preset.default;
  if ((PRESET_NAMES as readonly unknown[]).includes(preset.name)) presetName = preset.name as PresetName;
  else if (preset.origin !== "--set") {
    problems.push(badValue("preset", preset.name, describeRule(SCHEMA.preset), preset.origin || undefined));
  }

  const cfg = schemaDefaults() as unknown as Obj;
  setPath(cfg, "preset", presetName);
  if (preset.origin) origins.set("preset", preset.origin);
  for (const [p, v] of Object.entries(PRESETS[presetName].values)) {
    setPath(cfg, p, v), origins.set(p, `preset ${presetName}`);
  }

  const walk = (o: Obj, pre: string) => {
    for (const [k, v] of Object.entries(o)) {
      const p = pre + k;
      if (p === "preset") continue;
      if (isLeaf(p)) setPath(cfg, p, v), origins.set(p, fileName);
      else if (SECTIONS.has(p)) {
        if (isObj(v)) walk(v, p + ".");
        else if (v !== null) {
          problems.push(badValue(p, v, `a mapping with keys ${keysOf(p).join(", ")}`, fileName));
        }
      } else problems.push(unknownKey(p, fileName));
    }
  };
  walk(file, "");
  for (const a of assignments) if (a.path !== "preset") setPath(cfg, a.path, a.value), origins.set(a.path, "--set");
  for (const o of opts.overrides ?? []) {
    if (o.path === "preset") continue;
    if (isLeaf(o.path)) setPath(cfg, o.path, o.value), origins.set(o.path, o.origin);
    else problems.push(unknownKey(o.path, o.origin));
  }
  problems.push(...problemsOf(cfg, origins));
  if (problems.length) throw new ConfigError([...new Set(problems)]);
  return cfg as unknown as PlrcConfig;
}

/** Reads and parses a YAML configuration file; unreadable or malformed files are a {@link ConfigError}. */
export async function readConfigFile(path: string): Promise<Obj | null> {
  let text: string;
  try {
    text = await Deno.readTextFile(path);
  } catch (e) {
    throw new ConfigError([`cannot read ${path}: ${(e as Error).message}`]);
  }
  return parseConfigText(text, path);
}

/** Parses configuration YAML (a file's, or the one a checkpoint holds); `name` says where it came from. */
export function parseConfigText(text: string, name: string): Obj | null {
  let doc: unknown;
  try {
    doc = parseYaml(text);
  } catch (e) {
    throw new ConfigError([`${name} is not valid YAML: ${(e as Error).message}`]);
  }
  if (doc !== null && !isObj(doc)) {
    throw new ConfigError([`${name}: the configuration must be a mapping of keys to values, got ${show(doc)}`]);
  }
  return doc;
}

/** The keys whose values differ between two resolved configurations, in schema order. */
export function configChanges(from: PlrcConfig, to: PlrcConfig): { path: ConfigPath; from: unknown; to: unknown }[] {
  return CONFIG_PATHS.map((path) => ({ path, from: getPath(from, path), to: getPath(to, path) }))
    .filter((c) => JSON.stringify(c.from) !== JSON.stringify(c.to));
}

/** The resolved configuration as YAML, every key in schema order, with a header comment. */
export function configToYaml(cfg: PlrcConfig): string {
  const o: Obj = {};
  for (const p of CONFIG_PATHS) setPath(o, p, getPath(cfg, p));
  const doc = new Document(o);
  visit(doc, { Seq: (_, node) => void (node.flow = true) });
  doc.commentBefore = [
    ` plrc ${VERSION}: resolved pre-training configuration (every key; see docs/config.md).`,
    ` Reuse it with: plrc pretrain --config <this file>. Its preset is applied first, then these values.`,
  ].join("\n");
  return doc.toString({ lineWidth: 0 });
}

// ---------------------------------------------------------------- derived values and schedules

/** Values that follow from the configuration, computed here and nowhere else. */
export interface Derived {
  /** Mask and pair grid S = R/4. */
  maskSize: number;
  /** C5 feature map side h = R/32. */
  featureSize: number;
  /** Learning rate actually used at the peak: optim.lr, scaled by batch / lrReferenceBatch when linear. */
  lr: number;
  /** Channels of C5 (the heads' input). */
  c5: number;
  /** Head widths with auto resolved. */
  pointHidden: number;
  dinoHidden: number;
  /** Distillation vector length E = S² + K. */
  distillDim: number;
  /** Ghost-BN group size actually used (at most the batch) and the number of groups. */
  bnGroup: number;
  bnGroups: number;
  /** Felzenszwalb-Huttenlocher minimum size with auto resolved. */
  fhMinSize: number;
  /** Data workers with auto resolved. */
  workers: number;
  /** Steps per epoch and in all (min of epochs × steps and maxSteps); null when the dataset size is unknown. */
  stepsPerEpoch: number | null;
  totalSteps: number | null;
  /** Steps the schedules span (all epochs, ignoring maxSteps); null as above. */
  scheduleSteps: number | null;
}

/**
 * Computes the derived values. `datasetSize` is the number of images of a folder source; the built-in
 * scenes use data.scenes.count.
 */
export function deriveConfig(cfg: PlrcConfig, opts: { datasetSize?: number; cores?: number } = {}): Derived {
  const R = cfg.data.resolution, S = R / 4, B = cfg.train.batchSize;
  const c5 = resnetOutChannels(resnetConfigOf(cfg)).c5;
  const size = cfg.data.source === "scenes" ? cfg.data.scenes.count : opts.datasetSize;
  const stepsPerEpoch = cfg.train.stepsPerEpoch !== "auto"
    ? cfg.train.stepsPerEpoch
    : size === undefined
    ? null
    : Math.max(1, Math.floor(size / B));
  const scheduleSteps = stepsPerEpoch === null ? null : stepsPerEpoch * cfg.train.epochs;
  const totalSteps = scheduleSteps === null ? null : Math.min(scheduleSteps, cfg.train.maxSteps ?? Infinity);
  const bnGroup = Math.min(cfg.model.bnGroup, B / cfg.train.accumulate);
  const cores = opts.cores ?? navigator.hardwareConcurrency ?? 1;
  return {
    maskSize: S,
    featureSize: R / 32,
    lr: cfg.optim.lrScaling === "linear" ? cfg.optim.lr * B / cfg.optim.lrReferenceBatch : cfg.optim.lr,
    c5,
    pointHidden: cfg.model.pointHidden === "auto" ? c5 : cfg.model.pointHidden,
    dinoHidden: cfg.model.dinoHidden === "auto" ? c5 : cfg.model.dinoHidden,
    distillDim: S * S + cfg.model.prototypes,
    bnGroup,
    bnGroups: Math.ceil(B / bnGroup),
    fhMinSize: cfg.data.regions.fhMinSize === "auto"
      ? defaultMinSize(cfg.data.cacheShortSide)
      : cfg.data.regions.fhMinSize,
    workers: cfg.data.workers === "auto" ? Math.max(0, Math.min(15, cores - 1)) : cfg.data.workers,
    stepsPerEpoch,
    totalSteps,
    scheduleSteps,
  };
}

/** The backbone of a configuration. */
export function resnetConfigOf(cfg: PlrcConfig): ResNetConfig {
  return { depth: cfg.model.depth, width: cfg.model.width };
}

/** The data pipeline's configuration (src/data/batch.ts) of a configuration. */
export function dataConfigOf(cfg: PlrcConfig): DataConfig {
  return dataConfig({
    resolution: cfg.data.resolution,
    maskSize: cfg.data.resolution / 4,
    grid: cfg.data.regions.grid,
    regions: cfg.data.regions.count,
    points: cfg.data.points,
    seed: cfg.seed,
    crop: { scale: [...cfg.data.cropScale], ratio: DEFAULT_DATA_CONFIG.crop.ratio },
    minOverlap: cfg.data.minOverlap,
    flipP: cfg.data.flipP,
    photometric: cfg.data.photometric ? DEFAULT_PHOTOMETRIC : false,
  });
}

/** Per-step schedules (step counts from 0). */
export interface Schedules {
  /** Learning rate at a step. */
  lr(step: number): number;
  /** Distillation teacher temperature at a step. */
  teacherTemperature(step: number): number;
  /** Key-encoder EMA momentum at a step. */
  emaMomentum(step: number): number;
}

/**
 * The schedules, with the formulas of `schedule.ts`. They span all epochs (maxSteps does not shorten
 * them). With granularity epoch the step they see is rounded down to the start of its epoch (as
 * released); with step they advance every step. The learning-rate warm-up (the first schedule.warmup of
 * training) is linear per step either way, then cosine or constant. The teacher temperature goes
 * linearly from teacherStartTemperature to teacherTemperature over the first teacherWarmup of training;
 * a cosine EMA goes from ema.momentum to 1.
 */
export function schedules(cfg: PlrcConfig, d: Derived): Schedules {
  if (d.stepsPerEpoch === null || d.scheduleSteps === null) {
    throw new Error("schedules need the steps per epoch: pass datasetSize to deriveConfig");
  }
  const spe = d.stepsPerEpoch, total = d.scheduleSteps;
  const at = (step: number) => cfg.schedule.granularity === "epoch" ? Math.floor(step / spe) * spe : step;
  const warm = Math.round(cfg.schedule.warmup * total);
  const dist = cfg.loss.distill;
  return {
    lr(step) {
      if (cfg.schedule.lr === "constant") return step < warm ? d.lr * (step + 1) / warm : d.lr;
      return cosineLr(d.lr, step < warm ? step : Math.max(warm, at(step)), total, warm);
    },
    teacherTemperature: (step) =>
      teacherTemperature(dist.teacherStartTemperature, dist.teacherTemperature, at(step), total, dist.teacherWarmup),
    emaMomentum: (step) => emaMomentum(cfg.ema.momentum, at(step), total, cfg.ema.schedule === "cosine"),
  };
}

// ---------------------------------------------------------------- documentation

const WIDTH = 120;

/** Greedy paragraph fill to the formatter's line width. */
function fill(text: string, first = "", rest = ""): string {
  const lines: string[] = [];
  let line = first;
  let empty = true;
  for (const w of text.split(/\s+/).filter(Boolean)) {
    if (!empty && line.length + 1 + w.length > WIDTH) lines.push(line), line = rest + w;
    else line += (empty ? "" : " ") + w;
    empty = false;
  }
  lines.push(line);
  return lines.join("\n");
}

function table(head: string[], rows: string[][]): string {
  const esc = (s: string) => s.replace(/\|/g, "\\|");
  const all = [head, ...rows].map((r) => r.map(esc));
  const w = head.map((_, i) => Math.max(3, ...all.map((r) => r[i].length)));
  const line = (r: string[]) => `| ${r.map((c, i) => c.padEnd(w[i])).join(" | ")} |`;
  return [line(all[0]), `| ${w.map((n) => "-".repeat(n)).join(" | ")} |`, ...all.slice(1).map(line)].join("\n");
}

const code = (v: unknown) => "`" + (Array.isArray(v) ? `[${v.join(", ")}]` : String(v)) + "`";

/** `docs/config.md`, generated from the schema and the presets. */
export function generateConfigDoc(): string {
  const out: string[] = [];
  const p = (s: string) => out.push(fill(s), "");
  out.push("# Configuration", "");
  out.push(
    "<!-- Generated from src/train/config.ts by `deno run -A src/train/config.ts docs/config.md`; do not edit. -->",
    "",
  );
  p(
    "`plrc pretrain` reads its settings from a YAML file (`--config FILE.yaml`) and from `--set key.path=value` " +
      "options. This page lists every key with its default and its allowed values; it is generated from the " +
      "schema in `src/train/config.ts`, which is also what validates configurations.",
  );
  out.push("## How a configuration is resolved", "");
  for (
    const item of [
      "Layers, last wins: the defaults below ← the preset ← the file ← each `--set` in order ← `--data DIR` " +
      "(which sets `data.source`).",
      "The preset is the last one named (the file's `preset:` key, then `--set preset=NAME`); without one it " +
      "is `cpu-tiny`, so `plrc pretrain` with no options is a short CPU run on the built-in scenes. The " +
      "preset is always applied first, whichever layer names it.",
      "Keys are camelCase and nested by section; in a file write sections as mappings (`optim: {lr: 0.1}`), " +
      "in `--set` join them with dots (`--set optim.lr=0.1`).",
      "`--set` values are YAML scalars (`0.1`, `1e-4`, `true`, `null`, `auto`) or flow sequences " +
      "(`[0.2, 1]`); keys whose value is a string take the text as is unless it is quoted.",
      "Unknown keys are rejected with the closest known key; wrong types and out-of-range values are " +
      "reported with the key path, the value and what is allowed. All problems are reported together and " +
      "the command exits with code 2.",
      "The resolved configuration, every key included, is saved as `config.yaml` in the run directory; " +
      "passing it back with `--config` gives the same configuration.",
    ]
  ) out.push(fill(item, "- ", "  "));
  out.push("");
  out.push("## Presets", "");
  out.push(table(["preset", "what it is"], PRESET_NAMES.map((n) => [code(n), PRESETS[n].doc])), "");
  p(
    "The keys each preset sets (the defaults are the paper's setting, so `paper` restates them, and runs its " +
      "batch as micro-batches); " +
      "a key not listed here has its default under every preset.",
  );
  const presetKeys = CONFIG_PATHS.filter((k) => PRESET_NAMES.some((n) => k in PRESETS[n].values));
  out.push(
    table(
      ["key", ...PRESET_NAMES],
      presetKeys.map((k) => [
        code(k),
        ...PRESET_NAMES.map((n) => code((PRESETS[n].values as Record<string, unknown>)[k] ?? SCHEMA[k].default)),
      ]),
    ),
    "",
  );
  out.push("## Keys", "");
  const groups = new Map<string, ConfigPath[]>();
  for (const k of CONFIG_PATHS) {
    const g = k.split(".").slice(0, -1).join(".");
    groups.set(g, [...(groups.get(g) ?? []), k]);
  }
  for (const [g, keys] of groups) {
    out.push(`### ${g ? code(g) + ": " : ""}${SECTION_DOCS[g] ?? g}`, "");
    out.push(
      table(
        ["key", "default", "allowed", "meaning"],
        keys.map((k) => [code(k), code(SCHEMA[k].default), describeRule(specOf(k)), SCHEMA[k].doc]),
      ),
      "",
    );
  }
  out.push("## Rules across keys", "");
  for (
    const item of [
      "`data.regions.labelmaps` is required when `data.regions.source` is `labelmaps`, and label maps need a " +
      "folder `data.source`.",
      "With grid regions, `data.regions.count` is at most `data.regions.grid`².",
      "`data.regions.source: gt` needs `data.source: scenes` (only the built-in scenes have ground-truth masks).",
      "`model.bnGroup` divides `train.batchSize`, or is at least the batch (then the whole batch is one group).",
      "`loss.image.queue` is at least `train.batchSize` (methods plrc and moco).",
      "With method plrc the three loss weights are not all 0.",
      "On the built-in scenes with automatic steps per epoch, `data.scenes.count` is at least `train.batchSize`.",
      "`eval.knnEvery` > 0 with a folder `data.source` needs `eval.knnAnn` (labelled images for the k-NN monitor).",
      "`device.f16Storage` is false (f16 activation storage is not built).",
    ]
  ) out.push(fill(item, "- ", "  "));
  out.push("");
  out.push("## Derived values", "");
  p("Computed in one place (`deriveConfig` and `schedules` in `src/train/config.ts`), never configured:");
  for (
    const item of [
      "Mask and pair grid S = R/4 and C5 map side h = R/32, with R = `data.resolution` (56 and 7 at 224).",
      "Learning rate: `optim.lr` × `train.batchSize` / `optim.lrReferenceBatch` with `optim.lrScaling: " +
      "linear` (0.03 at batch 256, as released; 0.0009375 at batch 8), `optim.lr` itself with `none`.",
      "Head widths `auto`: the C5 channel count (512 × width for ResNet-18/34, 2048 × width for ResNet-50).",
      "Distillation vector length E = S² + K (7232 at the paper's setting).",
      "Ghost-BN groups: ⌈B / min(`model.bnGroup`, B)⌉.",
      "Steps per epoch `auto`: ⌊dataset size / B⌋, at least 1; total steps: that × `train.epochs`, capped by " +
      "`train.maxSteps`. The schedules span all epochs even when `train.maxSteps` stops training earlier.",
      "Schedules span all epochs and advance once per epoch (`schedule.granularity: epoch`, as released) or " +
      "every step. The learning rate warms up linearly per step over the first `schedule.warmup` of training, " +
      "then follows lr·½(1 + cos πq) over the rest (q from 0 to 1 after the warm-up) or stays constant. The teacher temperature rises linearly from " +
      "`loss.distill.teacherStartTemperature` to `loss.distill.teacherTemperature` over the first " +
      "`loss.distill.teacherWarmup` of training (0.3 = the released 30 of 100 epochs), then stays. A cosine " +
      "EMA momentum is m = 1 − (1 − m₀)·½(1 + cos πp), p from 0 to 1 over training.",
      "Loss: plrc uses L = w_img·L_img + w_point·L_point + w_distill·L_distill with the `loss.*.weight` " +
      "keys; moco uses L_img alone and detcon the region contrast alone (weights unused).",
    ]
  ) out.push(fill(item, "- ", "  "));
  return out.join("\n") + "\n";
}

if (import.meta.main) {
  const path = Deno.args[0] ?? "docs/config.md";
  await Deno.writeTextFile(path, generateConfigDoc());
  console.log(`wrote ${path}`);
}
