/**
 * The method comparison behind `plrc compare`: random init, `moco`, `detcon` and `plrc` pre-trained on the
 * same data with the same steps and batch, several seeds each, evaluated with the transfer protocols; plus
 * the region-quality ablation (detcon vs plrc with grid, Felzenszwalb and ground-truth masks, and with the
 * ground-truth masks degraded on purpose). Each pre-training and each evaluation is a `plrc` subprocess,
 * so a comparison is exactly what a user could run by hand, and results land in files as they finish:
 * an interrupted comparison continues where it stopped. This module holds the plan (pure), the runner and
 * the aggregation (pure); pictures are in `src/viz/charts.ts`.
 *
 * @module
 */
import { DistillCollapseMonitor } from "../losses/distill.ts";
import { detectDiverged } from "./detect.ts";

/** Transfer protocols (`plrc eval --protocol`) and the metrics each one is compared by. */
export const PROTOCOL_METRICS = { linear: ["miou"], detect: ["ap", "ap50"], knn: ["accuracy"] } as const;
/** A base transfer protocol. */
export type Protocol = keyof typeof PROTOCOL_METRICS;

/**
 * A protocol variant: a named column of the comparison, evaluated as `plrc eval --protocol <protocol>` with
 * the size's options for that protocol and then the variant's own `args`, and compared by the protocol's
 * metrics. A variant's option replaces the size's, except `--train` and `--test`, which can only lower the
 * size's number (a variant asks for fewer labels, e.g. a low-label regime on the same held-out images; never
 * more than a user's COCO set was scaled to). Each base protocol is the variant of itself without options,
 * so records made before variants existed (`job.protocol` only) read as those.
 */
export interface Variant {
  protocol: Protocol;
  args: readonly string[];
  /** What it measures, in a few words (for the help). */
  doc: string;
}

/** The protocol variants a comparison can evaluate with. */
export const VARIANTS = {
  knn: { protocol: "knn", args: [], doc: "C4 region features" },
  linear: { protocol: "linear", args: [], doc: "C4" },
  "linear-ml": { protocol: "linear", args: ["--level", "c3+c4"], doc: "C3 and C4 together" },
  detect: { protocol: "detect", args: [], doc: "backbone fine-tuned" },
  "detect-50": { protocol: "detect", args: ["--train", "50"], doc: "fine-tuned on 50 images" },
  "detect-frozen": {
    protocol: "detect",
    args: ["--freeze-backbone"],
    doc: "backbone frozen, C3 centred and scaled",
  },
} as const satisfies Record<string, Variant>;
/** A protocol variant's name. */
export type VariantName = keyof typeof VARIANTS;

/** Whether `name` is a protocol variant's name. */
export function isVariant(name: string): name is VariantName {
  return Object.hasOwn(VARIANTS, name);
}

/** The variant an evaluation job ran: its own field, or for records made before variants, its protocol. */
export function variantOf(job: { protocol: Protocol; variant?: string }): string {
  return job.variant ?? job.protocol;
}

/** The metrics of a variant (those of its base protocol); a name that is no variant has none. */
export function variantMetrics(name: string): readonly string[] {
  return isVariant(name) ? PROTOCOL_METRICS[VARIANTS[name].protocol] : [];
}

/** `plrc eval`'s own numbers of training and held-out images, where an option leaves them out. */
const EVAL_DEFAULT = { train: 200, test: 100 };

/** `plrc eval` options as [flag, value] pairs; a flag followed by another flag (or nothing) is a switch. */
export function parseEvalArgs(args: readonly string[]): [string, string | null][] {
  const out: [string, string | null][] = [];
  for (let i = 0; i < args.length; i++) {
    if (!args[i].startsWith("--")) throw new Error(`eval options: expected a --flag, got "${args[i]}"`);
    const flag = args[i];
    const value = i + 1 < args.length && !args[i + 1].startsWith("--") ? args[++i] : null;
    out.push([flag, value]);
  }
  return out;
}

/** The `plrc eval` options of `variant` under `size` (see {@link Variant} for how they combine). */
export function variantArgs(size: CompareSize, variant: VariantName): string[] {
  const v: Variant = VARIANTS[variant];
  const merged = parseEvalArgs(size.evalArgs[v.protocol] ?? []);
  for (const [flag, value] of parseEvalArgs(v.args)) {
    const at = merged.findIndex(([f]) => f === flag);
    let x = value;
    if ((flag === "--train" || flag === "--test") && value !== null) {
      const base = at >= 0 ? Number(merged[at][1]) : EVAL_DEFAULT[flag === "--train" ? "train" : "test"];
      x = `${Math.min(Number(value), base)}`;
    }
    if (at >= 0) merged[at] = [flag, x];
    else merged.push([flag, x]);
  }
  return merged.flatMap(([f, x]) => x === null ? [f] : [f, x]);
}

/** What a comparison size fixes. */
export interface CompareSize {
  /** What the size is for. */
  doc: string;
  /** Configuration preset of every pre-training run, and of the random-init architecture. */
  preset: string;
  /** Extra `--set` assignments for every pre-training run. */
  pretrainSets: string[];
  /** Seeds of the main comparison. */
  seeds: number[];
  /** Protocol variants of the main comparison, in the tables' column order. */
  protocols: VariantName[];
  /** Extra `plrc eval` options per base protocol (the variants of a protocol add theirs). */
  evalArgs: Partial<Record<Protocol, string[]>>;
  /** Region settings of the ablation (the first is the main comparison's own setting). */
  ablation: { name: string; sets: string[] }[];
  /** Seeds of the ablation (default: the first seed only). */
  ablationSeeds?: number[];
  /** Protocol variants the ablation is evaluated with. */
  ablationProtocols: VariantName[];
  /**
   * Also pre-train plrc without its distillation term (`loss.distill.weight=0`), as method `plrc-nodistill`,
   * for each seed of the main comparison, evaluated with its protocols: the paired control for that term.
   */
  distillControl?: boolean;
  /** Jobs side by side unless `--jobs` says otherwise: 1 where one run already fills the adapter. */
  jobs: number;
}

const ABLATION = [
  { name: "grid", sets: [] },
  { name: "fh", sets: ["data.regions.source=fh"] },
  { name: "gt", sets: ["data.regions.source=gt"] },
  { name: "gt+noise0.3", sets: ["data.regions.source=gt", "data.regions.noise=0.3"] },
  { name: "gt+shift6", sets: ["data.regions.source=gt", "data.regions.shift=6"] },
];

/** The main comparison's protocol variants in `reduced`, `medium` and `full`. */
const ALL_VARIANTS: VariantName[] = ["knn", "linear", "linear-ml", "detect", "detect-50", "detect-frozen"];

/**
 * The sizes: `smoke` to check a setup, `reduced` for a 2-core CPU adapter (about an hour), `medium` the same
 * 6× longer with a smaller ablation and the distillation control (a few hours there; long enough for the
 * frozen-feature probes to separate), `full` for one large GPU.
 */
export const SIZES: Record<"smoke" | "reduced" | "medium" | "full", CompareSize> = {
  smoke: {
    doc: "a check that the whole pipeline runs, in about a minute: cpu-tiny pre-training for 2 steps, 2 seeds, " +
      "linear C3+C4 on 8/4 scenes, ablation grid vs gt masks; the numbers mean nothing",
    preset: "cpu-tiny",
    pretrainSets: ["data.scenes.count=16", "train.epochs=1"],
    seeds: [0, 1],
    // one evaluation takes ~7 s on the 2-core machine (startup and scenes), a 1-epoch detection on 8 images
    // as long: a second variant would double the evaluations' time, so it is left to `--protocols`
    protocols: ["linear-ml"],
    // every base protocol is sized, so that `--protocols` can pick any variant and stay this small
    evalArgs: {
      // a converged probe takes ~1 min per evaluation on the 2-core machine: a check needs no converged fit
      linear: ["--train", "8", "--test", "4", "--probe-iterations", "256"],
      knn: ["--train", "8", "--test", "4"],
      detect: ["--train", "8", "--test", "4", "--epochs", "1"],
    },
    ablation: [ABLATION[0], ABLATION[2]],
    ablationProtocols: ["linear-ml"],
    jobs: 1,
  },
  reduced: {
    doc: "cpu-tiny pre-training (ResNet-18 ×0.125, 64 px, batch 8, 128 steps), 3 seeds; k-NN on 1000/1000 " +
      "held-out scenes, linear (C4, and C3+C4) on 200/100 at 128 px, detect 6 epochs at 96 px on 200/100 " +
      "(fine-tuned; fine-tuned on 50; backbone frozen); ablation with seed 0, linear only",
    preset: "cpu-tiny",
    pretrainSets: [],
    seeds: [0, 1, 2],
    protocols: ALL_VARIANTS,
    evalArgs: {
      linear: ["--train", "200", "--test", "100"],
      knn: ["--train", "1000", "--test", "1000"],
      detect: ["--train", "200", "--test", "100", "--epochs", "6"],
    },
    ablation: ABLATION,
    ablationProtocols: ["linear"],
    jobs: 1,
  },
  medium: {
    doc: "cpu-tiny pre-training 6× longer than reduced (768 steps), 3 seeds; the protocols of reduced (k-NN " +
      "on 1000/1000, ~3000 test regions); plrc without distillation as a paired control; ablation grid / gt / " +
      "gt+noise0.3 with the same 3 seeds, linear C3+C4 and k-NN",
    preset: "cpu-tiny",
    pretrainSets: ["train.epochs=6"],
    seeds: [0, 1, 2],
    protocols: ALL_VARIANTS,
    evalArgs: {
      linear: ["--train", "200", "--test", "100"],
      // k-NN is cheap, and with 100 test images (~300 regions) its binomial error (±2.6 points) was as
      // large as the differences between methods: 10× the images bring it to ±0.8
      knn: ["--train", "1000", "--test", "1000"],
      detect: ["--train", "200", "--test", "100", "--epochs", "6"],
    },
    ablation: [ABLATION[0], ABLATION[2], ABLATION[3]],
    // one seed left every ablation difference inside the main table's seed-to-seed spread
    ablationSeeds: [0, 1, 2],
    ablationProtocols: ["linear-ml", "knn"],
    // the distillation term collapsed to uniform in every medium plrc run: is it doing anything at all?
    distillControl: true,
    jobs: 1,
  },
  full: {
    doc: "gpu-small pre-training (ResNet-50 ×0.5, 128 px) for 256 steps of batch 16 (2 epochs of 2048 scenes; " +
      "lr 0.03 unscaled, EMA 0.99, queue 1024), 3 seeds; linear (C4, and C3+C4) and detect (fine-tuned; on 50; " +
      "frozen) at 128 px on 400/200 held-out scenes, k-NN on 500/500; ablation with seed 0, k-NN and C3+C4 " +
      "linear; 12 jobs side by side, runs first; planned to finish in 8 min on one H200",
    preset: "gpu-small",
    // 4× the steps of a 64-step epoch at batch 64 for the same images: one run is data-bound on the host
    // (~35 images/s per data thread), so the images, not the steps, set its time. At batch 16 the lr is not
    // scaled down (linear scaling would leave 0.002) and the key encoder follows faster, as cpu-tiny's do;
    // the queue stays shorter than an epoch so that it never holds a second key of the same image.
    pretrainSets: [
      "data.scenes.count=2048",
      "train.epochs=2",
      "train.batchSize=16",
      "model.bnGroup=16",
      "optim.lrScaling=none",
      "optim.lr=0.03",
      "ema.momentum=0.99",
      "loss.image.queue=1024",
    ],
    seeds: [0, 1, 2],
    protocols: ALL_VARIANTS,
    evalArgs: {
      linear: ["--train", "400", "--test", "200", "--resolution", "128"],
      // the held-out scenes are generated on the CPU (18 ms each at 192 px, measured on the 2-core machine):
      // 500 + 500 keeps each k-NN under ~20 s of generation, for ~1500 test regions (±1.1 points)
      knn: ["--train", "500", "--test", "500"],
      detect: ["--train", "400", "--test", "200", "--resolution", "128"],
    },
    ablation: ABLATION,
    // the two cheapest protocols with the most power on the CPU sizes
    ablationProtocols: ["knn", "linear-ml"],
    // on the H200's 16 cores, 8 jobs left the load at 5-8 and the plan's 17 runs (~110 s each) and 88
    // evaluations (16-45 s) need ~4300 lane-seconds, more than 8 lanes have in 8 minutes: 12 lanes have 5760
    jobs: 12,
  },
};

/** Labelled images of the user's own for a comparison: pre-train on `images`, evaluate on a COCO set. */
export interface CompareData {
  /** Folder of pre-training images (`data.source`). */
  images: string;
  /** Folder the COCO file's `file_name`s are relative to. */
  evalImages: string;
  /** COCO instances JSON of the labelled images. */
  ann: string;
  /** How many images the COCO file lists. */
  evalCount: number;
}

/**
 * `size` on the user's data instead of the built-in scenes: every run pre-trains on `d.images` (the scene
 * settings dropped), every evaluation reads the COCO set, with --train/--test scaled down in proportion
 * where the set is smaller than they ask, and the ablation's ground-truth masks (only the scenes have them)
 * become Felzenszwalb masks, degraded the same way. Fails when the set cannot hold one image of each split.
 */
export function sizeForData(size: CompareSize, d: CompareData): CompareSize {
  const evalArgs: CompareSize["evalArgs"] = {};
  // every sized protocol, used or not, so that picking other variants later still reads the COCO set
  const protocols = new Set<Protocol>([
    ...[...size.protocols, ...size.ablationProtocols].map((v) => VARIANTS[v].protocol),
    ...(Object.keys(size.evalArgs) as Protocol[]),
  ]);
  for (const p of protocols) {
    const args = parseEvalArgs(size.evalArgs[p] ?? []);
    const get = (flag: "train" | "test") => {
      const a = args.find(([f]) => f === `--${flag}`);
      return a ? Number(a[1]) : EVAL_DEFAULT[flag];
    };
    const want = { train: get("train"), test: get("test") };
    let { train, test } = want;
    if (train + test > d.evalCount) {
      train = Math.floor((d.evalCount * want.train) / (want.train + want.test));
      test = d.evalCount - train;
    }
    if (train < 1 || test < 1) {
      throw new Error(`${d.ann} lists ${d.evalCount} images: too few to train and test ${p} on (at least 2)`);
    }
    const rest = args.filter(([f]) => f !== "--train" && f !== "--test").flatMap(([f, x]) => x === null ? [f] : [f, x]);
    evalArgs[p] = ["--data", d.evalImages, "--ann", d.ann, "--train", `${train}`, "--test", `${test}`, ...rest];
  }
  const ablation: CompareSize["ablation"] = [];
  const gt = size.ablation.some((a) => a.sets.includes("data.regions.source=gt"));
  for (const a of size.ablation) {
    const name = a.name.replace(/^gt/, "fh");
    const sets = a.sets.map((x) => x === "data.regions.source=gt" ? "data.regions.source=fh" : x);
    if (!ablation.some((x) => x.name === name)) ablation.push({ name, sets });
  }
  return {
    ...size,
    doc: `${size.doc}; on ${d.images}, evaluated on the ${d.evalCount} images of ${d.ann}` +
      (gt ? " (ablation: Felzenszwalb masks where the scenes use ground truth)" : ""),
    pretrainSets: [...size.pretrainSets.filter((x) => !x.startsWith("data.scenes.")), `data.source=${d.images}`],
    evalArgs,
    ablation,
  };
}

/** Methods of the main comparison; `random` is the untrained backbone. */
export const METHODS = ["random", "moco", "detcon", "plrc"] as const;
/** A method of the comparison. */
export type Method = (typeof METHODS)[number];

/** The method name of plrc's runs without the distillation term (see {@link CompareSize.distillControl}). */
export const NO_DISTILL = "plrc-nodistill";

/** One pre-training run. */
export interface PretrainJob {
  /** The run's name (its folder). */
  name: string;
  /** The configuration's method (`plrc` for the distillation control's runs too). */
  method: Exclude<Method, "random">;
  /** Seed of the run. */
  seed: number;
  /** Name of the region setting. */
  regions: string;
  /** `--set` assignments of the run. */
  sets: string[];
}

/** A backbone from outside (a torchvision ResNet file), evaluated beside the methods as a row of its own. */
export interface Baseline {
  /** The baseline's name in the tables. */
  name: string;
  /** The file `plrc eval --ckpt` reads (src/export/import.ts). */
  file: string;
}

/** One evaluation: of a run's last checkpoint, of a random initialisation, or of a baseline's file. */
export interface EvalJob {
  /** The evaluation's name. */
  name: string;
  /** The pre-training run evaluated, or null for a random initialisation or a baseline. */
  run: string | null;
  /** A method's name, or a baseline's. */
  method: string;
  /** A baseline's file (absent for runs and random initialisations). */
  ckpt?: string;
  /** Seed of the run (or of the random initialisation). */
  seed: number;
  /** Name of the region setting. */
  regions: string;
  /** The base protocol (`plrc eval --protocol`). */
  protocol: Protocol;
  /** The protocol variant (absent in records made before variants: then the protocol's name). */
  variant?: string;
  /** Arguments of `plrc eval`. */
  args: string[];
}

/** Every job of a comparison, pre-training before evaluation. */
export interface ComparePlan {
  /** Pre-training runs. */
  pretrain: PretrainJob[];
  /** Evaluations. */
  evals: EvalJob[];
}

/** The seeds the ablation runs with. */
export function ablationSeeds(size: CompareSize): number[] {
  return size.ablationSeeds ?? [size.seeds[0]];
}

/**
 * The jobs of `size`: the main comparison over methods × seeds (with the distillation control's plrc runs,
 * if the size has it), then the ablation over its seeds. An evaluation is named `<run>.<variant>`.
 */
export function comparePlan(
  size: CompareSize,
  o: { ablation?: boolean; extraSets?: string[]; methods?: readonly Method[]; baselines?: readonly Baseline[] } = {},
): ComparePlan {
  const pretrain: PretrainJob[] = [], evals: EvalJob[] = [];
  const extra = o.extraSets ?? [];
  const methods = METHODS.filter((m) => (o.methods ?? METHODS).includes(m));
  const addRun = (
    method: PretrainJob["method"],
    seed: number,
    regions: string,
    regionSets: string[],
    label: string = method,
    after: string[] = [],
  ) => {
    const name = `${label}-${regions}-s${seed}`;
    if (!pretrain.some((p) => p.name === name)) {
      pretrain.push({
        name,
        method,
        seed,
        regions,
        sets: [
          `preset=${size.preset}`,
          ...size.pretrainSets,
          `method=${method}`,
          `seed=${seed}`,
          ...regionSets,
          ...extra,
          ...after,
        ],
      });
    }
    return name;
  };
  const addEval = (
    run: string | null,
    method: string,
    seed: number,
    regions: string,
    variant: VariantName,
    ckpt?: string,
  ) => {
    const name = `${run ?? `${method}-s${seed}`}.${variant}`;
    if (!evals.some((e) => e.name === name)) {
      const protocol = VARIANTS[variant].protocol, args = variantArgs(size, variant);
      evals.push({ name, run, method, ...(ckpt ? { ckpt } : {}), seed, regions, protocol, variant, args });
    }
  };
  const main = size.ablation[0];
  for (const seed of size.seeds) {
    for (const method of methods) {
      const run = method === "random" ? null : addRun(method, seed, main.name, main.sets);
      for (const v of size.protocols) addEval(run, method, seed, main.name, v);
    }
    if (size.distillControl && methods.includes("plrc")) {
      // after the user's --set, so that the control stays without the term whatever they set
      const run = addRun("plrc", seed, main.name, main.sets, NO_DISTILL, ["loss.distill.weight=0"]);
      for (const v of size.protocols) addEval(run, NO_DISTILL, seed, main.name, v);
    }
    // an outside backbone is evaluated with each seed too: the protocols' own randomness (heads, sampling)
    for (const b of o.baselines ?? []) {
      for (const v of size.protocols) addEval(null, b.name, seed, main.name, v, b.file);
    }
  }
  if (o.ablation !== false) {
    for (const a of size.ablation) {
      for (const method of (["detcon", "plrc"] as const).filter((m) => methods.includes(m))) {
        for (const seed of ablationSeeds(size)) {
          const run = addRun(method, seed, a.name, a.sets);
          for (const v of size.ablationProtocols) addEval(run, method, seed, a.name, v);
        }
      }
    }
  }
  return { pretrain, evals };
}

/** An evaluation's result as stored: the job and the JSON that `plrc eval --json` printed. */
export interface EvalRecord {
  /** The evaluation. */
  job: EvalJob;
  /** What it printed, parsed. */
  result: Record<string, unknown>;
}

/** Mean and sample standard deviation (0 for one value). */
export function meanStd(v: number[]): { mean: number; std: number; n: number } {
  const n = v.length, mean = v.reduce((s, x) => s + x, 0) / Math.max(n, 1);
  const std = n > 1 ? Math.sqrt(v.reduce((s, x) => s + (x - mean) ** 2, 0) / (n - 1)) : 0;
  return { mean, std, n };
}

/** One cell of a results table: a metric of one (method or baseline, regions, protocol variant) over seeds. */
export interface Cell {
  /** Method or baseline name. */
  method: string;
  /** Name of the region setting. */
  regions: string;
  /** Base protocol. */
  protocol: Protocol;
  /** Protocol variant. */
  variant: string;
  /** Metric name. */
  metric: string;
  /** Mean over the seeds. */
  mean: number;
  /** Sample standard deviation over the seeds. */
  std: number;
  /** Number of values. */
  n: number;
  /** The values, one per seed. */
  values: number[];
  /** The seed of each value. */
  seeds: number[];
  /** Mean over the records that report it of the test set's standard error (`<metric>_se`), else null. */
  se: number | null;
  /** The numbers of training and of held-out images the records report (`train_images`, `test_images`), distinct. */
  trainImages: number[];
  /** Held-out image counts the records report, distinct. */
  testImages: number[];
}

/** A record's test-set standard error of `metric` (`<metric>_se`), if it reports one. */
function seOf(result: Record<string, unknown>, metric: string): number | null {
  const v = result[`${metric}_se`];
  return typeof v === "number" && Number.isFinite(v) && v >= 0 ? v : null;
}

/** Groups records by (method, regions, protocol variant, metric) over seeds. */
export function aggregate(records: EvalRecord[]): Cell[] {
  const cells = new Map<string, Cell & { ses: number[] }>();
  for (const { job, result } of records) {
    const variant = variantOf(job);
    for (const metric of PROTOCOL_METRICS[job.protocol]) {
      const v = result[metric];
      if (typeof v !== "number" || !Number.isFinite(v)) continue;
      const key = `${job.method}|${job.regions}|${variant}|${metric}`;
      const c = cells.get(key) ?? {
        method: job.method,
        regions: job.regions,
        protocol: job.protocol,
        variant,
        metric,
        mean: 0,
        std: 0,
        n: 0,
        values: [],
        seeds: [],
        se: null,
        ses: [],
        trainImages: [],
        testImages: [],
      };
      c.values.push(v);
      c.seeds.push(job.seed);
      const se = seOf(result, metric);
      if (se !== null) c.ses.push(se);
      for (const [key, list] of [["train_images", c.trainImages], ["test_images", c.testImages]] as const) {
        const k = result[key];
        if (typeof k === "number" && !list.includes(k)) list.push(k), list.sort((a, b) => a - b);
      }
      cells.set(key, c);
    }
  }
  return [...cells.values()].map(({ ses, ...c }) => ({
    ...c,
    ...meanStd(c.values),
    se: ses.length ? meanStd(ses).mean : null,
  }));
}

const pct = (c: Cell | undefined) => c ? `${(100 * c.mean).toFixed(1)} ± ${(100 * c.std).toFixed(1)} (n=${c.n})` : "–";

/** The columns of a table over `variants`: each variant's metrics. */
function metricColumns(variants: readonly string[]): { v: string; m: string }[] {
  return variants.flatMap((v) => variantMetrics(v).map((m) => ({ v, m })));
}

/**
 * The main table (methods × protocol variant metrics, regions = the main setting) in Markdown: mean ± sample
 * std over seeds. Below it, one line per variant whose records report the test set's standard error or their
 * numbers of images: that error (the mean over seeds, per method) and the numbers of training and held-out
 * images (each value seen, where the records differ).
 */
export function mainTable(cells: Cell[], size: CompareSize, methods: readonly string[] = METHODS): string {
  const main = size.ablation[0].name;
  const cols = metricColumns(size.protocols);
  const find = (method: string, v: string, m: string) =>
    cells.find((x) => x.method === method && x.variant === v && x.metric === m && x.regions === main);
  const lines = [
    `| method | ${cols.map((c) => `${c.v} ${c.m} (%)`).join(" | ")} |`,
    `|---|${cols.map(() => "---:").join("|")}|`,
  ];
  for (const method of methods) {
    lines.push(`| ${method} | ${cols.map((c) => pct(find(method, c.v, c.m))).join(" | ")} |`);
  }
  const notes: string[] = [];
  for (const v of size.protocols) {
    const own = cells.filter((x) => x.variant === v && x.regions === main && methods.includes(x.method));
    const count = (pick: (c: Cell) => number[]) => [...new Set(own.flatMap(pick))].sort((a, b) => a - b).join("/");
    const images = count((c) => c.trainImages) && count((c) => c.testImages)
      ? ` (${count((c) => c.trainImages)} training, ${count((c) => c.testImages)} held-out images)`
      : "";
    const parts = variantMetrics(v).flatMap((m) => {
      const ses = methods.flatMap((method) => {
        const se = find(method, v, m)?.se;
        return se === null || se === undefined ? [] : [`${method} ${(100 * se).toFixed(1)}`];
      });
      return ses.length ? [`${m} ${ses.join(", ")}`] : [];
    });
    if (parts.length || images) notes.push(`- ${v}${images}: ${parts.join("; ") || "no error reported"}`);
  }
  if (notes.length) {
    lines.push(
      "",
      "Test-set standard error of one evaluation (points; mean over seeds; k-NN binomial, the others " +
        "bootstrapped over test images) and the images each variant used:",
      ...notes,
    );
  }
  return lines.join("\n");
}

/**
 * The ablation table (region settings × detcon/plrc, one metric per protocol variant) in Markdown, from the
 * cells of the ablation seeds' records only (see {@link ablationRecords}): one seed shows its value, several
 * mean ± std.
 */
export function ablationTable(cells: Cell[], size: CompareSize): string {
  const cols = size.ablationProtocols.flatMap((v) =>
    (["detcon", "plrc"] as const).map((method) => ({ v, m: variantMetrics(v)[0], method }))
  );
  const lines = [
    `| regions | ${cols.map((c) => `${c.method} ${c.v} ${c.m} (%)`).join(" | ")} |`,
    `|---|${cols.map(() => "---:").join("|")}|`,
  ];
  for (const a of size.ablation) {
    const row = cols.map((c) => {
      const cell = cells.find((x) =>
        x.method === c.method && x.variant === c.v && x.metric === c.m && x.regions === a.name
      );
      if (!cell) return "–";
      return cell.n > 1 ? pct(cell) : (100 * cell.mean).toFixed(1);
    });
    lines.push(`| ${a.name} | ${row.join(" | ")} |`);
  }
  return lines.join("\n");
}

/** The pairs of the paired-difference table, a − b: plrc against each, then the others in their order. */
export const PAIRS: readonly (readonly [string, string])[] = [
  ["plrc", "random"],
  ["plrc", "moco"],
  ["plrc", "detcon"],
  ["detcon", "moco"],
  ["moco", "random"],
  ["plrc", NO_DISTILL],
];

/** 97.5% quantiles of Student's t with 1–30 degrees of freedom (beyond 30, that of 30: a little wide). */
const T975 = [
  12.706,
  4.303,
  3.182,
  2.776,
  2.571,
  2.447,
  2.365,
  2.306,
  2.262,
  2.228,
  2.201,
  2.179,
  2.160,
  2.145,
  2.131,
  2.120,
  2.110,
  2.101,
  2.093,
  2.086,
  2.080,
  2.074,
  2.069,
  2.064,
  2.060,
  2.056,
  2.052,
  2.048,
  2.045,
  2.042,
];

/** The 97.5% quantile of Student's t with `df` ≥ 1 degrees of freedom. */
export function t975(df: number): number {
  return T975[Math.min(df, T975.length) - 1];
}

/**
 * How one method's metric differs from another's under one protocol variant, paired by seed. The difference
 * counts as beyond its error when |mean| > error, where error = max(t · std / √n, 2 · √(se_a² + se_b²)):
 * t is the 97.5% Student-t quantile with n − 1 degrees of freedom (4.30 for n = 3), std the sample std of the
 * per-seed differences, and se_a, se_b the two methods' test-set standard errors (each the mean over the
 * paired seeds' records). Both terms are ~95% half-widths: the first of the seed-to-seed spread, the second of
 * the held-out images' sampling (which several seeds on the same images do not average away).
 */
export interface PairedDifference {
  a: string;
  b: string;
  variant: string;
  protocol: Protocol;
  metric: string;
  regions: string;
  /** The seeds both methods have a record for, and a − b for each. */
  seeds: number[];
  values: number[];
  mean: number;
  std: number;
  n: number;
  /** t · std / √n; null under 2 seeds. */
  seedError: number | null;
  /** 2 · √(se_a² + se_b²); null where a record lacks `<metric>_se`. */
  testError: number | null;
  /** The larger of the two, null under 2 seeds (one seed says nothing of the seed-to-seed spread). */
  error: number | null;
  /** ">" a above b beyond the error, "<" below it, "≈" within it, "?" under 2 seeds. */
  verdict: ">" | "<" | "≈" | "?";
}

/** The caption of the paired-difference table: how its verdicts are decided (as {@link PairedDifference}). */
export const PAIRED_CAPTION = "a − b per seed, mean ± std of the differences over the seeds both have (n); " +
  "> or < marks a difference beyond its error, |mean| > max(t · std / √n, 2 · √(se_a² + se_b²)) with t the " +
  "97.5% Student-t quantile for n − 1 degrees of freedom (4.30 for n = 3) and se the test-set standard errors " +
  "(where the records report them); ≈ one within it; ? one of fewer than 2 seeds.";

/**
 * The paired differences a − b of `pairs` for every metric of `variants` in the records of `regions` (a method
 * missing there gives no entry). A seed with several records of one method counts its last.
 */
export function pairedDifferences(
  records: EvalRecord[],
  variants: readonly string[],
  regions: string,
  pairs: readonly (readonly [string, string])[] = PAIRS,
): PairedDifference[] {
  const at = new Map<string, { value: number; se: number | null }>();
  for (const { job, result } of records) {
    if (job.regions !== regions) continue;
    for (const metric of PROTOCOL_METRICS[job.protocol]) {
      const v = result[metric];
      if (typeof v !== "number" || !Number.isFinite(v)) continue;
      at.set(`${job.method}|${variantOf(job)}|${metric}|${job.seed}`, { value: v, se: seOf(result, metric) });
    }
  }
  const allSeeds = [...new Set(records.map((r) => r.job.seed))].sort((x, y) => x - y);
  const out: PairedDifference[] = [];
  for (const variant of variants) {
    for (const metric of variantMetrics(variant)) {
      const protocol = VARIANTS[variant as VariantName].protocol;
      for (const [a, b] of pairs) {
        const seeds: number[] = [], values: number[] = [], seA: (number | null)[] = [], seB: (number | null)[] = [];
        for (const seed of allSeeds) {
          const x = at.get(`${a}|${variant}|${metric}|${seed}`), y = at.get(`${b}|${variant}|${metric}|${seed}`);
          if (!x || !y) continue;
          seeds.push(seed), values.push(x.value - y.value), seA.push(x.se), seB.push(y.se);
        }
        if (!seeds.length) continue;
        const { mean, std, n } = meanStd(values);
        const seedError = n > 1 ? t975(n - 1) * std / Math.sqrt(n) : null;
        const known = [...seA, ...seB].every((x) => x !== null);
        const sq = (v: (number | null)[]) => meanStd(v as number[]).mean ** 2;
        const testError = known ? 2 * Math.sqrt(sq(seA) + sq(seB)) : null;
        const error = seedError === null ? null : Math.max(seedError, testError ?? 0);
        const verdict = error === null ? "?" : Math.abs(mean) <= error ? "≈" : mean > 0 ? ">" : "<";
        out.push({
          a,
          b,
          variant,
          protocol,
          metric,
          regions,
          seeds,
          values,
          mean,
          std,
          n,
          seedError,
          testError,
          error,
          verdict,
        });
      }
    }
  }
  return out;
}

const signed = (v: number) => `${v >= 0 ? "+" : "−"}${Math.abs(100 * v).toFixed(1)}`;

/**
 * The paired-difference table in Markdown: a row per pair that has any difference, a column per variant metric
 * (as in the main table), each cell mean ± std (n) in points and the verdict; {@link PAIRED_CAPTION} explains it.
 */
export function pairedTable(diffs: PairedDifference[], variants: readonly string[]): string {
  const cols = metricColumns(variants);
  const lines = [
    `| a − b | ${cols.map((c) => `${c.v} ${c.m} (points)`).join(" | ")} |`,
    `|---|${cols.map(() => "---:").join("|")}|`,
  ];
  for (const [a, b] of PAIRS) {
    const row = cols.map((c) => diffs.find((d) => d.a === a && d.b === b && d.variant === c.v && d.metric === c.m));
    if (row.every((d) => !d)) continue;
    const cell = (d: PairedDifference | undefined) =>
      d ? `${signed(d.mean)} ± ${(100 * d.std).toFixed(1)} (n=${d.n}) ${d.verdict}` : "–";
    lines.push(`| ${a} − ${b} | ${row.map(cell).join(" | ")} |`);
  }
  return lines.join("\n");
}

/** The order the methods are expected in, best first. */
export const EXPECTED_ORDER = ["plrc", "detcon", "moco", "random"] as const;

/**
 * One line per variant: whether plrc > detcon > moco > random holds beyond the error (each neighbouring
 * pair's verdict ">") for each of its metrics; if not, each step's verdict ("cannot tell" where the only
 * failing steps have under 2 seeds). Variants without all three neighbouring pairs get no line.
 */
export function orderingLines(diffs: PairedDifference[], variants: readonly string[]): string[] {
  const lines: string[] = [];
  for (const v of variants) {
    const parts: string[] = [];
    for (const m of variantMetrics(v)) {
      const steps = EXPECTED_ORDER.slice(0, -1).map((a, i) =>
        diffs.find((d) => d.variant === v && d.metric === m && d.a === a && d.b === EXPECTED_ORDER[i + 1])
      );
      if (steps.some((d) => !d)) continue;
      const why = steps.map((d) => `${d!.a} ${d!.verdict} ${d!.b}`).join(", ");
      if (steps.every((d) => d!.verdict === ">")) parts.push(`${m} holds`);
      else if (steps.some((d) => d!.verdict === "≈" || d!.verdict === "<")) parts.push(`${m} does not (${why})`);
      else parts.push(`${m} cannot tell (${why})`);
    }
    if (parts.length) lines.push(`- ${v}: ${parts.join("; ")}`);
  }
  return lines;
}

/** How `plrc` runs itself: the compiled binary, or `deno run -A` on the running module (cli.ts or the bundle). */
export function selfCommand(): string[] {
  const exe = Deno.execPath();
  const base = exe.split(/[\\/]/).pop() ?? "";
  if (/^deno(\.exe)?$/.test(base)) return [exe, "run", "-A", new URL(Deno.mainModule).pathname];
  return [exe];
}

/**
 * Runs `plrc args...` and returns its exit code and stdout. Its stderr (progress) streams through, or into
 * the file `log` when given (for jobs that run side by side and would interleave), followed by its stdout.
 */
export async function runSelf(args: string[], log?: string): Promise<{ code: number; stdout: string }> {
  const [cmd, ...pre] = selfCommand();
  const p = new Deno.Command(cmd, { args: [...pre, ...args], stdout: "piped", stderr: log ? "piped" : "inherit" })
    .spawn();
  const stdout = new Response(p.stdout).text();
  if (log) {
    const file = await Deno.open(log, { write: true, create: true, truncate: true });
    await p.stderr.pipeTo(file.writable);
  }
  const { code } = await p.status;
  const text = await stdout;
  if (log) await Deno.writeTextFile(log, text, { append: true });
  return { code, stdout: text };
}

/** A task for `runPool`: `after` lists the indices of tasks that must have succeeded before it starts. */
export interface PoolTask {
  run: () => Promise<boolean>;
  after?: number[];
}

/**
 * Runs `tasks` at most `jobs` at a time. A free slot takes the first task in list order whose `after` tasks
 * have all succeeded, so a list that puts each evaluation right after its pre-training run evaluates every
 * run as soon as it is done (a comparison cut off early still has whole results) while no slot ever waits.
 * After the first failure no further task starts (those running finish), unless `keepGoing`: then only the
 * failed task's dependants are skipped (like `make -k`). Resolves to whether every task ran and succeeded.
 */
export async function runPool(tasks: PoolTask[], jobs: number, keepGoing = false): Promise<boolean> {
  const state: ("waiting" | "running" | "ok" | "failed")[] = tasks.map(() => "waiting");
  let failed = false;
  return await new Promise<boolean>((resolve) => {
    const fill = () => {
      let running = state.filter((s) => s === "running").length;
      for (let i = 0; !failed && running < Math.max(1, jobs) && i < tasks.length; i++) {
        if (state[i] !== "waiting" || !(tasks[i].after ?? []).every((j) => state[j] === "ok")) continue;
        state[i] = "running";
        running++;
        tasks[i].run().catch(() => false).then((ok) => {
          state[i] = ok ? "ok" : "failed";
          if (!ok && !keepGoing) failed = true;
          fill();
        });
      }
      // done when nothing runs and nothing more can start (all ran, a failure, or an unmet dependency)
      if (running === 0) resolve(state.every((s) => s === "ok"));
    };
    fill();
  });
}

/**
 * The pool's order for a plan: evaluations of the random initialisation first (they need nothing), then
 * each pre-training run followed by its evaluations, which wait for it. With `runPool`'s first-ready rule
 * the runs still start back to back, and each run is evaluated as soon as it is done. With `runsFirst`
 * (several jobs side by side) every run comes before every evaluation, the random ones last: the runs are
 * the longest tasks, so starting them all first keeps the lanes full to the end (on the H200, 18 random
 * evaluations ahead of them cost 1.4 of the 8 minutes before the first run started).
 */
export function poolOrder(
  plan: ComparePlan,
  pretrain: (job: PretrainJob) => Promise<boolean>,
  evaluate: (job: EvalJob) => Promise<boolean>,
  o: { runsFirst?: boolean } = {},
): PoolTask[] {
  const randoms = plan.evals.filter((e) => e.run === null).map((e) => ({ run: () => evaluate(e) }));
  if (o.runsFirst) {
    const tasks: PoolTask[] = plan.pretrain.map((p) => ({ run: () => pretrain(p) }));
    plan.pretrain.forEach((p, at) => {
      for (const e of plan.evals.filter((e) => e.run === p.name)) tasks.push({ run: () => evaluate(e), after: [at] });
    });
    return tasks.concat(randoms);
  }
  const tasks: PoolTask[] = randoms;
  for (const p of plan.pretrain) {
    const at = tasks.push({ run: () => pretrain(p) }) - 1;
    for (const e of plan.evals.filter((e) => e.run === p.name)) tasks.push({ run: () => evaluate(e), after: [at] });
  }
  return tasks;
}

/**
 * Data workers for each of `jobs` runs side by side on `cores` cores. On a GPU a run's main thread mostly
 * waits for the device, so the workers take all the cores (measured on the H200's 16 cores: 8 runs with one
 * worker each kept the load at 8 and ran at the one worker's pace, ~35 images/s). On a CPU adapter the main
 * thread's "GPU" work is CPU work, so each run keeps one core for it.
 */
export function workersPerJob(cores: number, jobs: number, cpuAdapter: boolean): number {
  return Math.max(0, Math.min(15, Math.floor(cores / jobs) - (cpuAdapter ? 1 : 0)));
}

/** The records the ablation table aggregates: those of the ablation's seeds (the grid row's main runs included). */
export function ablationRecords(records: EvalRecord[], size: CompareSize): EvalRecord[] {
  const seeds = ablationSeeds(size);
  return records.filter((r) => r.job.run !== null && seeds.includes(r.job.seed));
}

/** A plrc run's bottleneck as its metrics show it: when it collapsed (or null) and its last alignment. */
export interface BottleneckReading {
  at: number | null;
  last: number;
}

/**
 * Replays a run's metrics (metrics.jsonl records) through the trainer's collapse monitor, with the trainer's
 * patience (10% of the run, at least 16 steps): the step at which its bottleneck alignment had stayed above
 * 0.9 long enough, and the last alignment; null for a run that logged no alignment. A resumed run may repeat
 * steps; the last record of each step counts.
 */
export function distillCollapseStep(records: { step: number; distill_alignment?: number }[]): BottleneckReading | null {
  const byStep = new Map<number, number>();
  for (const r of records) if (typeof r.distill_alignment === "number") byStep.set(r.step, r.distill_alignment);
  const steps = [...byStep.keys()].sort((a, b) => a - b);
  if (!steps.length) return null;
  const monitor = new DistillCollapseMonitor(DistillCollapseMonitor.patienceFor(steps.length));
  for (const s of steps) monitor.observe(s, byStep.get(s)!);
  return { at: monitor.collapsedAt, last: byStep.get(steps[steps.length - 1])! };
}

/**
 * One line for the table naming the detection evaluations whose head diverged (see `detectDiverged`; read
 * from the losses each record keeps, so records written before the flag count too), or "" for none: their
 * AP is no ranking.
 */
export function divergedLine(records: EvalRecord[]): string {
  const bad = records.filter((r) => {
    const loss = r.result.loss as Record<string, number | null | undefined> | undefined;
    const num = (v: number | null | undefined) => v ?? NaN;
    return r.job.protocol === "detect" && loss !== undefined && detectDiverged({
      first: num(loss.first),
      last: num(loss.last),
      initial: loss.initial === undefined ? undefined : num(loss.initial),
      peak: loss.peak === undefined ? undefined : num(loss.peak),
    });
  }).map((r) => r.job.name);
  if (!bad.length) return "";
  return `In ${bad.length} detection evaluation${bad.length > 1 ? "s" : ""} the head's training diverged (its loss ` +
    `ended above where it began, or blew up), so ${bad.length > 1 ? "their" : "its"} AP ranks nothing: ` +
    `${bad.join(", ")}.`;
}

/** One line for the table: the plrc runs' final bottleneck alignment, and in how many it collapsed, when. */
export function collapseLine(collapse: Record<string, BottleneckReading>): string {
  const runs = Object.keys(collapse), last = runs.map((r) => collapse[r].last);
  if (!runs.length) return "";
  const at = runs.map((r) => collapse[r].at).filter((s): s is number => s !== null);
  const range = (v: number[], f: (x: number) => string) => {
    const lo = Math.min(...v), hi = Math.max(...v);
    return lo === hi ? f(lo) : `${f(lo)}–${f(hi)}`;
  };
  const head = `plrc's distillation bottleneck (alignment: the mean cosine of the teacher's and the anchors' ` +
    `bottleneck vectors; collapsed when above 0.9) ended at ${range(last, (x) => x.toFixed(2))}`;
  if (!at.length) return `${head} and collapsed in none of its ${runs.length} runs.`;
  return `${head} and collapsed in ${at.length} of its ${runs.length} runs (detected at step ` +
    `${range(at, (x) => `${x + 1}`)}): there, plrc trained as point-level and image-level contrast.`;
}
