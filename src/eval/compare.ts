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

/** Transfer protocols and the metric each one is compared by. */
export const PROTOCOL_METRICS = { linear: ["miou"], detect: ["ap", "ap50"], knn: ["accuracy"] } as const;
export type Protocol = keyof typeof PROTOCOL_METRICS;

/** What a comparison size fixes. */
export interface CompareSize {
  doc: string;
  /** Configuration preset of every pre-training run, and of the random-init architecture. */
  preset: string;
  /** Extra `--set` assignments for every pre-training run. */
  pretrainSets: string[];
  seeds: number[];
  protocols: Protocol[];
  /** Extra `plrc eval` options per protocol. */
  evalArgs: Partial<Record<Protocol, string[]>>;
  /** Region settings of the ablation (the first is the main comparison's own setting). */
  ablation: { name: string; sets: string[] }[];
  /** Seeds of the ablation (default: the first seed only). */
  ablationSeeds?: number[];
  /** Protocols the ablation is evaluated with. */
  ablationProtocols: Protocol[];
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

/**
 * The sizes: `smoke` to check a setup, `reduced` for a 2-core CPU adapter (under an hour), `medium` the same
 * 6× longer with a smaller ablation (about 2 h there; long enough for the frozen-feature probes to separate),
 * `full` for one large GPU.
 */
export const SIZES: Record<"smoke" | "reduced" | "medium" | "full", CompareSize> = {
  smoke: {
    doc: "a check that the whole pipeline runs, in about a minute: cpu-tiny pre-training for 2 steps, 2 seeds, " +
      "linear on 8/4 scenes, ablation grid vs gt masks; the numbers mean nothing",
    preset: "cpu-tiny",
    pretrainSets: ["data.scenes.count=16", "train.epochs=1"],
    seeds: [0, 1],
    protocols: ["linear"],
    evalArgs: { linear: ["--train", "8", "--test", "4"] },
    ablation: [ABLATION[0], ABLATION[2]],
    ablationProtocols: ["linear"],
    jobs: 1,
  },
  reduced: {
    doc: "cpu-tiny pre-training (ResNet-18 ×0.125, 64 px, batch 8, 128 steps), 3 seeds; linear and detect " +
      "on 200/100 held-out scenes (linear at 128 px, detect 6 epochs at 96 px), k-NN on 1000/1000; ablation " +
      "with seed 0, linear only",
    preset: "cpu-tiny",
    pretrainSets: [],
    seeds: [0, 1, 2],
    protocols: ["linear", "knn", "detect"],
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
    doc: "cpu-tiny pre-training 6× longer than reduced (768 steps), 3 seeds; linear and detect on 200/100 " +
      "held-out scenes as in reduced, k-NN on 1000/1000 (~3000 test regions); ablation grid / gt / gt+noise0.3 " +
      "with the same 3 seeds, linear and k-NN",
    preset: "cpu-tiny",
    pretrainSets: ["train.epochs=6"],
    seeds: [0, 1, 2],
    protocols: ["linear", "knn", "detect"],
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
    ablationProtocols: ["linear", "knn"],
    jobs: 1,
  },
  full: {
    doc: "gpu-small pre-training (ResNet-50 ×0.5, 128 px, batch 64) for one epoch of 4096 scenes (64 steps), " +
      "3 seeds; linear and detect at 128 px on 400/200 held-out scenes, k-NN on 500/500; ablation with seed 0, " +
      "linear and detect; 8 jobs side by side",
    preset: "gpu-small",
    pretrainSets: ["data.scenes.count=4096", "train.epochs=1"],
    seeds: [0, 1, 2],
    protocols: ["linear", "knn", "detect"],
    evalArgs: {
      linear: ["--train", "400", "--test", "200", "--resolution", "128"],
      // the held-out scenes are generated on the CPU (18 ms each at 192 px, measured on the 2-core machine):
      // 500 + 500 keeps each k-NN under ~20 s of generation, for ~1500 test regions (±1.1 points)
      knn: ["--train", "500", "--test", "500"],
      detect: ["--train", "400", "--test", "200", "--resolution", "128"],
    },
    ablation: ABLATION,
    ablationProtocols: ["linear", "detect"],
    // one gpu-small run is data-bound (~35 img/s per data thread) and uses ~4 GiB of GPU memory: eight side
    // by side, each with its share of the cores for data workers (measured on an H200, 2026-11-27)
    jobs: 8,
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
  const EVAL_DEFAULT = { train: 200, test: 100 }; // plrc eval's own defaults
  const evalArgs: CompareSize["evalArgs"] = {};
  const protocols = new Set([...size.protocols, ...size.ablationProtocols]);
  for (const p of protocols) {
    const args = [...(size.evalArgs[p] ?? [])];
    const get = (flag: "train" | "test") => {
      const i = args.indexOf(`--${flag}`);
      return i >= 0 ? Number(args[i + 1]) : EVAL_DEFAULT[flag];
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
    const rest: string[] = [];
    for (let i = 0; i < args.length; i += 2) {
      if (args[i] !== "--train" && args[i] !== "--test") rest.push(args[i], args[i + 1]);
    }
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
export type Method = (typeof METHODS)[number];

/** One pre-training run. */
export interface PretrainJob {
  name: string;
  method: Exclude<Method, "random">;
  seed: number;
  regions: string;
  sets: string[];
}

/** A backbone from outside (a torchvision ResNet file), evaluated beside the methods as a row of its own. */
export interface Baseline {
  name: string;
  /** The file `plrc eval --ckpt` reads (src/export/import.ts). */
  file: string;
}

/** One evaluation: of a run's last checkpoint, of a random initialisation, or of a baseline's file. */
export interface EvalJob {
  name: string;
  run: string | null;
  /** A method's name, or a baseline's. */
  method: string;
  /** A baseline's file (absent for runs and random initialisations). */
  ckpt?: string;
  seed: number;
  regions: string;
  protocol: Protocol;
  args: string[];
}

/** Every job of a comparison, pre-training before evaluation. */
export interface ComparePlan {
  pretrain: PretrainJob[];
  evals: EvalJob[];
}

/** The seeds the ablation runs with. */
export function ablationSeeds(size: CompareSize): number[] {
  return size.ablationSeeds ?? [size.seeds[0]];
}

/** The jobs of `size`: the main comparison over methods × seeds, then the ablation over its seeds. */
export function comparePlan(
  size: CompareSize,
  o: { ablation?: boolean; extraSets?: string[]; methods?: readonly Method[]; baselines?: readonly Baseline[] } = {},
): ComparePlan {
  const pretrain: PretrainJob[] = [], evals: EvalJob[] = [];
  const extra = o.extraSets ?? [];
  const methods = METHODS.filter((m) => (o.methods ?? METHODS).includes(m));
  const addRun = (method: PretrainJob["method"], seed: number, regions: string, regionSets: string[]) => {
    const name = `${method}-${regions}-s${seed}`;
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
    protocol: Protocol,
    ckpt?: string,
  ) => {
    const name = `${run ?? `${method}-s${seed}`}.${protocol}`;
    if (!evals.some((e) => e.name === name)) {
      const args = size.evalArgs[protocol] ?? [];
      evals.push({ name, run, method, ...(ckpt ? { ckpt } : {}), seed, regions, protocol, args });
    }
  };
  const main = size.ablation[0];
  for (const seed of size.seeds) {
    for (const method of methods) {
      const run = method === "random" ? null : addRun(method, seed, main.name, main.sets);
      for (const p of size.protocols) addEval(run, method, seed, main.name, p);
    }
    // an outside backbone is evaluated with each seed too: the protocols' own randomness (heads, sampling)
    for (const b of o.baselines ?? []) {
      for (const p of size.protocols) addEval(null, b.name, seed, main.name, p, b.file);
    }
  }
  if (o.ablation !== false) {
    for (const a of size.ablation) {
      for (const method of (["detcon", "plrc"] as const).filter((m) => methods.includes(m))) {
        for (const seed of ablationSeeds(size)) {
          const run = addRun(method, seed, a.name, a.sets);
          for (const p of size.ablationProtocols) addEval(run, method, seed, a.name, p);
        }
      }
    }
  }
  return { pretrain, evals };
}

/** An evaluation's result as stored: the job and the JSON that `plrc eval --json` printed. */
export interface EvalRecord {
  job: EvalJob;
  result: Record<string, unknown>;
}

/** Mean and sample standard deviation (0 for one value). */
export function meanStd(v: number[]): { mean: number; std: number; n: number } {
  const n = v.length, mean = v.reduce((s, x) => s + x, 0) / Math.max(n, 1);
  const std = n > 1 ? Math.sqrt(v.reduce((s, x) => s + (x - mean) ** 2, 0) / (n - 1)) : 0;
  return { mean, std, n };
}

/** One cell of a results table: a metric of one (method or baseline, regions) over seeds. */
export interface Cell {
  method: string;
  regions: string;
  protocol: Protocol;
  metric: string;
  mean: number;
  std: number;
  n: number;
  values: number[];
}

/** Groups records by (method, regions, protocol, metric) over seeds. */
export function aggregate(records: EvalRecord[]): Cell[] {
  const cells = new Map<string, Cell>();
  for (const { job, result } of records) {
    for (const metric of PROTOCOL_METRICS[job.protocol]) {
      const v = result[metric];
      if (typeof v !== "number" || !Number.isFinite(v)) continue;
      const key = `${job.method}|${job.regions}|${job.protocol}|${metric}`;
      const c = cells.get(key) ??
        { method: job.method, regions: job.regions, protocol: job.protocol, metric, mean: 0, std: 0, n: 0, values: [] };
      c.values.push(v);
      cells.set(key, c);
    }
  }
  for (const c of cells.values()) Object.assign(c, meanStd(c.values));
  return [...cells.values()];
}

const pct = (c: Cell | undefined) => c ? `${(100 * c.mean).toFixed(1)} ± ${(100 * c.std).toFixed(1)} (n=${c.n})` : "–";

/** The main table (methods × protocol metrics, regions = the main setting) in Markdown. */
export function mainTable(cells: Cell[], size: CompareSize, methods: readonly string[] = METHODS): string {
  const main = size.ablation[0].name;
  const cols = size.protocols.flatMap((p) => PROTOCOL_METRICS[p].map((m) => ({ p, m })));
  const lines = [
    `| method | ${cols.map((c) => `${c.p} ${c.m} (%)`).join(" | ")} |`,
    `|---|${cols.map(() => "---:").join("|")}|`,
  ];
  for (const method of methods) {
    const row = cols.map((c) =>
      pct(cells.find((x) => x.method === method && x.protocol === c.p && x.metric === c.m && x.regions === main))
    );
    lines.push(`| ${method} | ${row.join(" | ")} |`);
  }
  return lines.join("\n");
}

/**
 * The ablation table (region settings × detcon/plrc, one metric per protocol) in Markdown, from the cells of
 * the ablation seeds' records only (see {@link ablationRecords}): one seed shows its value, several mean ± std.
 */
export function ablationTable(cells: Cell[], size: CompareSize): string {
  const cols = size.ablationProtocols.flatMap((p) =>
    (["detcon", "plrc"] as const).map((method) => ({ p, m: PROTOCOL_METRICS[p][0], method }))
  );
  const lines = [
    `| regions | ${cols.map((c) => `${c.method} ${c.p} ${c.m} (%)`).join(" | ")} |`,
    `|---|${cols.map(() => "---:").join("|")}|`,
  ];
  for (const a of size.ablation) {
    const row = cols.map((c) => {
      const cell = cells.find((x) =>
        x.method === c.method && x.protocol === c.p && x.metric === c.m && x.regions === a.name
      );
      if (!cell) return "–";
      return cell.n > 1 ? pct(cell) : (100 * cell.mean).toFixed(1);
    });
    lines.push(`| ${a.name} | ${row.join(" | ")} |`);
  }
  return lines.join("\n");
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
 * the runs still start back to back, and each run is evaluated as soon as it is done.
 */
export function poolOrder(
  plan: ComparePlan,
  pretrain: (job: PretrainJob) => Promise<boolean>,
  evaluate: (job: EvalJob) => Promise<boolean>,
): PoolTask[] {
  const tasks: PoolTask[] = plan.evals.filter((e) => e.run === null).map((e) => ({ run: () => evaluate(e) }));
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
