/**
 * The pre-training configuration's schema: the {@link PlrcConfig} types, one table ({@link SCHEMA}) that gives
 * every key its type, default, allowed values and documentation, and the named {@link PRESETS} laid over the
 * defaults. Validation, the defaults, `--set` parsing (`resolve.ts`) and `docs/config.md` (`doc.ts`) are all
 * derived from it.
 *
 * @module
 */
import { UsageError } from "../../util/errors.ts";

/** The literal that lets a key be computed from other keys. */
export type Auto = "auto";
/**
 * Training method: full PLRC; the image-level MoCo baseline; or the DetCon-style baseline (region
 * features averaged from the points sampled in each region, contrasted region against region).
 */
export type Method = "plrc" | "moco" | "detcon";

/** Backbone and heads. */
export interface ModelConfig {
  /** `model.depth`: ResNet depth (torchvision v1.5 layout). */
  depth: 18 | 34 | 50;
  /** `model.width`: channel multiplier (1 = torchvision widths). */
  width: number;
  /** `model.pointHidden`: hidden width of the point head; auto: C5 channels. */
  pointHidden: number | Auto;
  /** `model.pointDim`: output width D of the point head. */
  pointDim: number;
  /** `model.dinoHidden`: hidden width of the DINO head; auto: C5 channels. */
  dinoHidden: number | Auto;
  /** `model.bottleneck`: the DINO head's L2-normalised bottleneck width. */
  bottleneck: number;
  /** `model.prototypes`: prototypes K of the weight-normalised layer. */
  prototypes: number;
  /** `model.bnGroup`: ghost batch-norm group size (images per BN statistics group). */
  bnGroup: number;
  /** `model.shuffleBn`: emulate shuffle-BN in the key encoder. */
  shuffleBn: boolean;
  /** `model.init`: a torchvision ResNet file whose weights both encoders start from, or null. */
  init: string | null;
}

/** Images, views, regions and points. */
export interface DataSection {
  /** `data.source`: "scenes" (the built-in scenes) or a folder of images. */
  source: string;
  /** `data.scenes.*`: the built-in scenes' count, classes, size, seed and cache folder. */
  scenes: { count: number; classes: number; size: number; seed: number; cache: string | null };
  /** `data.resolution`: view size R in pixels. */
  resolution: number;
  /** `data.regions.*`: where region maps come from, how many region slots, and their degradation. */
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
  /** `data.points`: points per region per view. */
  points: number;
  /** `data.cropScale`: RandomResizedCrop area range. */
  cropScale: [number, number];
  /** `data.minOverlap`: A0/B0 overlap threshold (intersection / larger area). */
  minOverlap: number;
  /** `data.flipP`: horizontal flip probability per view. */
  flipP: number;
  /** `data.photometric`: MoCo v2 colour jitter, grayscale and blur (false: geometry only). */
  photometric: boolean;
  /** `data.cacheShortSide`: decoded images are cached with their short side at most this. */
  cacheShortSide: number;
  /** `data.cacheDir`: where a folder source keeps its decode cache and masks; null: inside the image folder. */
  cacheDir: string | null;
  /** `data.workers`: data worker threads (0: the main thread); auto: from the CPU cores. */
  workers: number | Auto;
  /** `data.prefetch`: batches the data workers make ahead. */
  prefetch: number;
}

/** Loss weights, temperatures and buffers. */
export interface LossConfig {
  /** `loss.image.*`: weight, temperature and queue length of the image-level InfoNCE. */
  image: { weight: number; temperature: number; queue: number };
  /** `loss.point.*`: weight, temperature and base temperature of the point contrast. */
  point: { weight: number; temperature: number; baseTemperature: number };
  /** `loss.distill.*`: weight, temperatures, warm-up, centre momentum and affinity scale of the distillation. */
  distill: {
    weight: number;
    studentTemperature: number;
    teacherTemperature: number;
    teacherStartTemperature: number;
    teacherWarmup: number;
    centerMomentum: number;
    affinityScale: number;
  };
  /** `loss.region.*`: temperature of the region contrast of the `detcon` method. */
  region: { temperature: number };
}

/** The whole configuration; `docs/config.md` documents every key. */
export interface PlrcConfig {
  /** The preset the configuration starts from. */
  preset: PresetName;
  /** The pre-training method. */
  method: Method;
  /** Seed of initialisation, data order and augmentation. */
  seed: number;
  /** Backbone and heads. */
  model: ModelConfig;
  /** Images, views, regions and points. */
  data: DataSection;
  /** Loss weights, temperatures and buffers. */
  loss: LossConfig;
  /** `optim.*`: SGD (optionally with LARS) and the learning-rate scaling with the batch. */
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
  /** `schedule.*`: learning-rate schedule, warm-up and how often it steps. */
  schedule: { lr: "cosine" | "constant"; warmup: number; granularity: "epoch" | "step" };
  /** `ema.*`: momentum encoder update and its schedule. */
  ema: { momentum: number; schedule: "constant" | "cosine" };
  /** `train.*`: epochs, batch, accumulation and step counts. */
  train: {
    epochs: number;
    batchSize: number;
    accumulate: number;
    stepsPerEpoch: number | Auto;
    maxSteps: number | null;
  };
  /** `log.*`: steps between log lines. */
  log: { interval: number };
  /** `eval.*`: the k-NN monitor during training. */
  eval: { knnEvery: number; knnTrain: number; knnTest: number; knnAnn: string | null };
  /** `checkpoint.*`: how often checkpoints are written and how many are kept. */
  checkpoint: { interval: number; unit: "epoch" | "step"; keepLast: number };
  /** `device.*`: device options. */
  device: { f16Storage: boolean };
  /** `distributed.*`: data-parallel training over MPI ranks. */
  distributed: { backend: "none" | "mpi"; timeout: number; shareDevice: boolean };
}

/** The dotted key paths of the leaves of `T` (arrays are leaves), each prefixed with `P`. */
export type Leaves<T, P extends string = ""> = {
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

// ---------------------------------------------------------------- presets

/*
 * Named presets: each one is a set of key paths laid over the schema's defaults. The defaults themselves are
 * the paper's setting, so `paper` restates the keys that define it and adds the micro-batching that lets one
 * GPU run it.
 */

/** A preset: what it is for, and the keys it sets. */
export interface Preset {
  /** What the preset is for. */
  doc: string;
  /** The keys it sets. */
  values: Omit<FlatConfig, "preset">;
}

/** A preset's name. */
export type PresetName = "paper" | "cpu-tiny" | "cpu-small" | "gpu-small";

/** The presets, in the order the documentation lists them. */
export const PRESETS: Readonly<Record<PresetName, Preset>> = {
  paper: {
    doc: "The paper's setting: ResNet-50 ×1, R 224, batch 256, K 4096, queue 65536, 100 epochs (needs a GPU). " +
      "The batch runs as 8 micro-batches of 32 (train.accumulate), as the release's 8 GPUs of 32 images each " +
      "did: BN statistics, point negatives and distillation pairs per 32 images, so one GPU's memory holds it.",
    values: {
      "model.depth": 50,
      "model.width": 1,
      "data.resolution": 224,
      "train.batchSize": 256,
      "train.accumulate": 8,
      "model.prototypes": 4096,
      "loss.image.queue": 65536,
      "train.epochs": 100,
    },
  },
  "cpu-tiny": {
    doc: "The default: finishes in about 40 s on a 2-core CPU adapter: ResNet-18 ×0.125, R 64, " +
      "batch 8, one epoch of 1024 built-in scenes (128 steps); the queue (64) is shorter than the data so " +
      "that it never holds a second key of the same image. Two departures from the paper make 128 steps " +
      "enough to learn (measured: with them the loss falls ~8% after the queue fills; without, it stays " +
      "flat): no colour jitter/grayscale/blur (at 64 px the tiny network cannot become colour-invariant " +
      "in 128 steps) and EMA momentum 0.99 (at 0.999 the key encoder barely leaves its initialisation). " +
      "Its distillation bottleneck is 512, not 256: its lr per image is high, and at 256 the bottleneck's " +
      "alignment passes 0.7 within 768 steps (model.bottleneck).",
    values: {
      "model.depth": 18,
      "model.width": 0.125,
      "model.pointDim": 32,
      "model.prototypes": 64,
      "model.bottleneck": 512,
      "model.bnGroup": 4,
      "data.resolution": 64,
      "data.scenes.count": 1024,
      "data.scenes.size": 96,
      "data.points": 8,
      "loss.image.queue": 64,
      "optim.lr": 0.05,
      "optim.lrScaling": "none",
      "data.photometric": false,
      "ema.momentum": 0.99,
      "train.batchSize": 8,
      "train.epochs": 1,
      "schedule.granularity": "step",
      "log.interval": 16,
      "checkpoint.keepLast": 2,
    },
  },
  "cpu-small": {
    doc: "A longer CPU run: ResNet-18 ×0.25, R 96, batch 16, 5 epochs of 512 built-in scenes (160 steps).",
    values: {
      "model.depth": 18,
      "model.width": 0.25,
      "model.pointDim": 64,
      "model.prototypes": 256,
      "model.bnGroup": 8,
      "data.resolution": 96,
      "data.scenes.count": 512,
      "data.scenes.size": 128,
      "loss.image.queue": 1024,
      "train.batchSize": 16,
      "train.epochs": 5,
      "schedule.granularity": "step",
      "log.interval": 5,
      "checkpoint.keepLast": 2,
    },
  },
  "gpu-small": {
    doc: "A short GPU run: ResNet-50 ×0.5, R 128, batch 64, K 1024, queue 16384, 30 epochs of 8192 scenes.",
    values: {
      "model.depth": 50,
      "model.width": 0.5,
      "model.prototypes": 1024,
      "data.resolution": 128,
      "data.scenes.count": 8192,
      "data.scenes.size": 192,
      "loss.image.queue": 16384,
      "train.batchSize": 64,
      "train.epochs": 30,
      "schedule.granularity": "step",
    },
  },
};

/** Preset names in documentation order. */
export const PRESET_NAMES: readonly PresetName[] = Object.keys(PRESETS) as PresetName[];

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

  "distributed.backend": {
    type: "enum",
    values: ["none", "mpi"],
    default: "none",
    doc: "none: one process. mpi: one process per GPU, launched by mpirun, mpiexec, srun or the Kubernetes MPI " +
      "Operator (plrc pretrain --distributed mpi); the ranks share train.batchSize (each runs batchSize / ranks " +
      "images as train.accumulate micro-batches) and average their gradients, as one process with ranks × " +
      "accumulate micro-batches would. Run by a single process, mpi trains as none. docs/distributed.md.",
  },
  "distributed.timeout": {
    type: "number",
    min: 1,
    default: 600,
    doc: "Seconds a rank waits for the others in one exchange before it ends the job (a rank that hung or " +
      "died); it must cover the first step's kernel compilation and a k-NN monitor run (eval.knnEvery), which " +
      "rank 0 alone makes while the others wait.",
  },
  "distributed.shareDevice": {
    type: "bool",
    default: false,
    doc: "Let several ranks of one machine use the same GPU (otherwise refused: they would only slow each " +
      "other down). CPU adapters are always shared.",
  },
};

/** Every key path, in schema order. */
export const CONFIG_PATHS: readonly ConfigPath[] = Object.keys(SCHEMA) as ConfigPath[];

/** The title of each section in docs/config.md. */
export const SECTION_DOCS: Record<string, string> = {
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
  distributed: "Distributed training (MPI)",
};

/** A configuration problem (or several): a {@link UsageError}, so the CLI exits with code 2. */
export class ConfigError extends UsageError {
  /** `problems` lists each problem found, one line each. */
  constructor(readonly problems: string[]) {
    super(
      problems.length === 1
        ? `configuration error: ${problems[0]}`
        : `${problems.length} configuration errors:\n  ${problems.join("\n  ")}`,
    );
    this.name = "ConfigError";
  }
}
