/**
 * `plrc compare`: the method comparison and the region-quality ablation (see `src/eval/compare.ts`), run
 * as `plrc pretrain` / `plrc eval` subprocesses whose results are kept in the output folder, then a
 * Markdown table, a JSON file and a PNG bar chart.
 *
 * @module
 */
import { getGpu } from "../gpu/device.ts";
import {
  ablationRecords,
  ablationSeeds,
  ablationTable,
  aggregate,
  type Baseline,
  type BottleneckReading,
  collapseLine,
  comparePlan,
  distillCollapseStep,
  divergedLine,
  type EvalRecord,
  isVariant,
  mainTable,
  type Method,
  METHODS,
  NO_DISTILL,
  orderingLines,
  PAIRED_CAPTION,
  pairedDifferences,
  pairedTable,
  poolOrder,
  type PretrainJob,
  runPool,
  runSelf,
  sizeForData,
  SIZES,
  variantMetrics,
  VARIANTS,
  workersPerJob,
} from "../eval/compare.ts";
import { resolve } from "node:path";
import { readCoco } from "../data/coco.ts";
import { readTorchvisionBackbone } from "../export/import.ts";
import { configToYaml, readConfigFile, resolveConfig } from "../train/config/mod.ts";
import { renderBarChart } from "../viz/charts.ts";
import { VERSION } from "../version.ts";
import { parseOptions, UsageError } from "./usage.ts";

export const COMPARE_HELP =
  `plrc compare [--size smoke|reduced|medium|full] [--out DIR] [--no-ablation] [--methods LIST] [--set k=v ...]
             [--protocols LIST] [--distill-control | --no-distill-control]
             [--data DIR --ann COCO.json [--eval-data DIR]] [--baseline NAME=FILE ...] [--jobs N]
             [--keep-going] [--plan] [--report]

Pre-trains moco, detcon and plrc with the same data, steps and batch for several seeds, evaluates them
and a random initialisation with the transfer protocols, and runs the region-quality ablation (detcon
vs plrc with grid, Felzenszwalb and ground-truth masks, and ground-truth masks degraded by block noise
and by shifted boundaries). Every run is a plrc subprocess; finished runs and evaluations are kept in
the output folder, so running the same command again continues an interrupted comparison. The table
gives each method's mean ± std over seeds per protocol variant, and the differences between methods
paired by seed, each marked by whether it exceeds its error (seed-to-seed and test-set).

  --size smoke     ${SIZES.smoke.doc}
  --size reduced   ${SIZES.reduced.doc}
  --size medium    ${SIZES.medium.doc}
  --size full      ${SIZES.full.doc}
  --out DIR        output folder (default compare-<size>); gets runs/, evals/, results.json, table.md
                   and chart.png, and scene-cache/ (the rendered scenes the runs share; safe to delete)
  --data DIR       pre-train on this image folder instead of the built-in scenes; then --ann is
                   required and every protocol runs on its COCO set (--train/--test scaled down in
                   proportion if the set is smaller), and the ablation's ground-truth masks become
                   Felzenszwalb masks (fh, fh+noise0.3, fh+shift6)
  --ann FILE       COCO instances JSON of the labelled evaluation images
  --eval-data DIR  the folder its file_names are relative to (default: --data); the labelled images
                   may be among the pre-training images, as in a self-supervised benchmark's train split
  --baseline NAME=FILE
                   also evaluate an outside backbone, a torchvision ResNet from PyTorch (.pth or
                   .safetensors, e.g. ImageNet weights; see plrc eval --ckpt), as row NAME of the main
                   table, with every seed (repeatable)
  --no-ablation    the main comparison only
  --protocols LIST evaluate with these protocol variants (comma-separated) instead of the size's, in the
                   main comparison and the ablation alike; each is plrc eval --protocol with options:
${variantHelp()}
  --distill-control, --no-distill-control
                   also pre-train plrc with loss.distill.weight=0 (runs plrc-nodistill-*), evaluated
                   like the main comparison, to report plrc − plrc-nodistill paired by seed (default: on
                   for medium, off for the other sizes)
  --methods LIST   only these of random,moco,detcon,plrc (comma-separated; default all), e.g. to try
                   one method with other settings beside a kept comparison
  --set k=v        extra configuration for every pre-training run (repeatable)
  --jobs N         run N pre-trainings / evaluations side by side (default: 8 for full, else 1), each
                   a process with its own GPU device and an equal share of the cores for data workers;
                   their progress goes to <out>/logs/<job>.log (one small run leaves a large GPU idle)
  --keep-going     after a failed run or evaluation, go on with everything that does not need it (by
                   default nothing new starts); the command still exits 1, and --report tables the rest
  --plan           print the jobs and exit
  --report         run nothing: write the table, JSON and chart from the runs and evaluations already in
                   --out (after a comparison was cut off, say); missing cells show – or a smaller n`;

/** The help's lines for the protocol variants: name, base protocol and options, and what it measures. */
function variantHelp(): string {
  return Object.entries(VARIANTS).map(([name, v]) =>
    `                     ${name.padEnd(14)}${[`--protocol ${v.protocol}`, ...v.args].join(" ")} (${v.doc})`
  ).join("\n");
}

/** Runs `plrc compare`. */
export async function compareCommand(argv: string[]): Promise<number> {
  const { values } = parseOptions(argv, {
    size: { type: "string" },
    out: { type: "string" },
    "no-ablation": { type: "boolean" },
    set: { type: "string", multiple: true },
    plan: { type: "boolean" },
    report: { type: "boolean" },
    "keep-going": { type: "boolean" },
    jobs: { type: "string" },
    methods: { type: "string" },
    protocols: { type: "string" },
    "distill-control": { type: "boolean" },
    "no-distill-control": { type: "boolean" },
    data: { type: "string" },
    "eval-data": { type: "string" },
    ann: { type: "string" },
    baseline: { type: "string", multiple: true },
    help: { type: "boolean", short: "h" },
  }, COMPARE_HELP);
  if (values.help) return console.log(COMPARE_HELP), 0;
  const sizeName = values.size ?? "reduced";
  if (!Object.hasOwn(SIZES, sizeName)) {
    throw new UsageError(`--size must be ${Object.keys(SIZES).join(", ")}; got "${sizeName}"`, COMPARE_HELP);
  }
  let size = SIZES[sizeName as keyof typeof SIZES];
  if (values.protocols !== undefined) {
    const list = values.protocols.split(",").map((v) => v.trim());
    const bad = list.filter((v) => !isVariant(v));
    if (bad.length || !list.length || list.some((v, i) => list.indexOf(v) !== i)) {
      throw new UsageError(
        `--protocols takes distinct names from ${Object.keys(VARIANTS).join(", ")}; got "${values.protocols}"`,
        COMPARE_HELP,
      );
    }
    const variants = list.filter(isVariant);
    size = { ...size, protocols: variants, ablationProtocols: variants };
  }
  if (values["distill-control"] && values["no-distill-control"]) {
    throw new UsageError("--distill-control and --no-distill-control: give one of them", COMPARE_HELP);
  }
  if (values["distill-control"] || values["no-distill-control"]) {
    size = { ...size, distillControl: values["distill-control"] === true };
  }
  if (values.data !== undefined && values.data !== "scenes") {
    if (values.ann === undefined) {
      throw new UsageError("--data DIR needs --ann COCO.json: the protocols need labelled images", COMPARE_HELP);
    }
    const images = resolve(values.data), evalImages = resolve(values["eval-data"] ?? values.data);
    for (const [flag, dir] of [["--data", images], ["--eval-data", evalImages]]) {
      if (!(await Deno.stat(dir).catch(() => null))?.isDirectory) {
        throw new UsageError(`${flag} ${dir} is not a folder`, COMPARE_HELP);
      }
    }
    const ann = resolve(values.ann);
    const coco = await readCoco(ann).catch((e) => {
      throw new UsageError(`cannot use --ann ${values.ann}: ${(e as Error).message}`, COMPARE_HELP);
    });
    try {
      size = sizeForData(size, { images, evalImages, ann, evalCount: coco.images.length });
    } catch (e) {
      throw new UsageError((e as Error).message, COMPARE_HELP);
    }
  } else if (values.ann !== undefined || values["eval-data"] !== undefined) {
    throw new UsageError(
      "--ann and --eval-data go with --data DIR (the built-in scenes bring their labels)",
      COMPARE_HELP,
    );
  }
  const methods = (values.methods ?? METHODS.join(",")).split(",").map((m) => m.trim()) as Method[];
  const unknown = methods.filter((m) => !(METHODS as readonly string[]).includes(m));
  if (unknown.length || !methods.length) {
    throw new UsageError(`--methods takes names from ${METHODS.join(", ")}; got "${unknown.join(",")}"`, COMPARE_HELP);
  }
  const baselines: Baseline[] = [];
  for (const b of values.baseline ?? []) {
    const eq = b.indexOf("="), name = b.slice(0, eq), file = resolve(b.slice(eq + 1));
    if (eq < 1 || !/^[A-Za-z0-9_.+-]+$/.test(name) || (METHODS as readonly string[]).includes(name)) {
      throw new UsageError(
        `--baseline takes NAME=FILE with a NAME of letters, digits and _.+- other than ${METHODS.join(", ")}; ` +
          `got "${b}"`,
        COMPARE_HELP,
      );
    }
    if (baselines.some((x) => x.name === name)) throw new UsageError(`--baseline ${name} given twice`, COMPARE_HELP);
    // read now, so that a bad file stops the comparison before anything runs
    await readTorchvisionBackbone(file).catch((e) => {
      throw new UsageError(`--baseline ${name}: ${(e as Error).message}`, COMPARE_HELP);
    });
    baselines.push({ name, file });
  }
  const plan = comparePlan(size, {
    ablation: !values["no-ablation"],
    extraSets: values.set ?? [],
    methods,
    baselines,
  });
  const control = plan.evals.some((e) => e.method === NO_DISTILL) ? [NO_DISTILL] : [];
  const shown = [...METHODS.filter((m) => methods.includes(m)), ...control, ...baselines.map((b) => b.name)];
  if (values.plan) {
    for (const p of plan.pretrain) console.log(`pretrain ${p.name}: --set ${p.sets.join(" --set ")}`);
    for (const e of plan.evals) {
      console.log(
        `eval ${e.name}: --ckpt ${e.ckpt ?? e.run ?? "random"} --protocol ${e.protocol} ${e.args.join(" ")}`.trim(),
      );
    }
    return 0;
  }
  const out = values.out ?? `compare-${sizeName}`;
  await Deno.mkdir(`${out}/runs`, { recursive: true });
  await Deno.mkdir(`${out}/evals`, { recursive: true });
  const jobs = values.jobs === undefined ? size.jobs : Number(values.jobs);
  if (!Number.isInteger(jobs) || jobs < 1) {
    throw new UsageError(`--jobs must be a whole number ≥ 1, got "${values.jobs}"`, COMPARE_HELP);
  }
  if (jobs > 1) await Deno.mkdir(`${out}/logs`, { recursive: true });
  // side by side, each run gets its share of the cores for data workers (unless the user set them)
  const userSets = values.set ?? [];
  const runtimeSets: string[] = jobs > 1 && !userSets.some((s) => s.startsWith("data.workers="))
    ? ["--set", `data.workers=${workersPerJob(navigator.hardwareConcurrency ?? 1, jobs, await cpuAdapter())}`]
    : [];
  // every run renders the same scenes: they share one scene cache (it changes no result, so it is not part
  // of a run's identity in the plan)
  if (!userSets.some((s) => s.startsWith("data.scenes.cache="))) {
    runtimeSets.push("--set", `data.scenes.cache=${out}/scene-cache`);
  }
  const logOf = (name: string) => jobs > 1 ? `${out}/logs/${name}.log` : undefined;
  const total = plan.pretrain.length + plan.evals.length;
  const made = { runs: 0, evals: 0 };
  let done = 0, reused = 0;
  const t0 = performance.now();
  const progress = (what: string, secs: number | null) => {
    done++;
    if (secs === null) reused++;
    // the time left at the mean pace of the jobs made so far (kept ones cost nothing)
    const min = (performance.now() - t0) / 60000, made = done - reused;
    const left = made > 0 && done < total ? `, ~${((total - done) * min / made).toFixed(1)} min left` : "";
    console.log(
      `[${done}/${total}] ${what}${secs === null ? " (kept from an earlier run)" : ` ${secs.toFixed(0)} s`}` +
        `  (elapsed ${min.toFixed(1)} min${left})`,
    );
  };
  const failed = (what: string, code: number, stdout: string, log?: string) => {
    console.error(stdout);
    console.error(`plrc compare: ${what} failed (exit ${code})${log ? `, see ${log}` : ""}; run again to continue`);
    return false;
  };

  const pretrain = async (job: (typeof plan.pretrain)[number]) => {
    const dir = `${out}/runs/${job.name}`, marker = `${dir}/done.json`;
    if (await exists(marker)) {
      const done = JSON.parse(await Deno.readTextFile(marker)) as { job: PretrainJob; config?: string };
      const kept = done.job;
      if (!sameList(kept.sets, job.sets)) {
        // resuming it would continue a run of another configuration: never overwrite a finished run
        console.error(
          `plrc compare: ${dir} was pre-trained with --set ${kept.sets.join(" ")}, but this plan needs ` +
            `--set ${job.sets.join(" ")}; use another --out, or remove that folder to redo it`,
        );
        return false;
      }
      // the same --set list over other defaults or presets (another plrc version) is another configuration
      // too (a marker written before fingerprints were kept is taken as it is)
      if (done.config !== undefined && done.config !== await configFingerprint(job.sets)) {
        console.error(
          `plrc compare: ${dir} was pre-trained with --set ${kept.sets.join(" ")} when those resolved to another ` +
            "configuration (the defaults or a preset have changed since); use another --out, or remove that " +
            "folder and its evaluations to redo it",
        );
        return false;
      }
      return progress(`pretrain ${job.name}`, null), true;
    }
    const t = performance.now();
    const args = ["pretrain", "--out", dir, "--auto-resume", ...job.sets.flatMap((s) => ["--set", s]), ...runtimeSets];
    const r = await runSelf(args, logOf(job.name));
    if (r.code !== 0 || !/finished after/.test(r.stdout)) {
      return failed(`pre-training ${job.name}`, r.code, r.stdout, logOf(job.name));
    }
    const secs = (performance.now() - t) / 1000;
    const config = await configFingerprint(job.sets);
    await writeAtomic(
      marker,
      JSON.stringify({ job, seconds: secs, config, log: r.stdout.split("\n").slice(-6) }, null, 1),
    );
    progress(`pretrain ${job.name}`, secs);
    made.runs++;
    madeNow.add(job.name);
    return true;
  };
  const records = new Map<string, EvalRecord>();
  // a kept result counts only if it was made with this plan's arguments (a size's may have changed)
  // runs pre-trained by this invocation: an evaluation kept from before cannot be of them
  const madeNow = new Set<string>();
  // the run an evaluation scored, by its done.json (a run made again gets another)
  const runStamp = async (run: string | null) =>
    run === null
      ? undefined
      : await fingerprint(await Deno.readTextFile(`${out}/runs/${run}/done.json`).catch(() => ""));
  const keptEval = async (job: (typeof plan.evals)[number]) => {
    const file = `${out}/evals/${job.name}.json`;
    const kept: (EvalRecord & { run_done?: string }) | null = (await exists(file))
      ? JSON.parse(await Deno.readTextFile(file))
      : null;
    const sameRun = job.run === null ||
      (kept?.run_done !== undefined ? kept.run_done === await runStamp(job.run) : !madeNow.has(job.run));
    const usable = kept !== null && sameList(kept.job.args, job.args) && kept.job.ckpt === job.ckpt && sameRun;
    return { file, kept, usable };
  };
  const evaluate = async (job: (typeof plan.evals)[number]) => {
    const { file, kept, usable } = await keptEval(job);
    if (usable) {
      records.set(job.name, kept!);
      return progress(`eval ${job.name}`, null), true;
    }
    if (kept) {
      console.log(
        `eval ${job.name}: kept result used ${kept.job.args.join(" ")}; redoing it with ${job.args.join(" ")}`,
      );
    }
    const t = performance.now();
    const ckpt = job.ckpt ?? (job.run ? `${out}/runs/${job.run}/checkpoints/last.safetensors` : "random");
    const sets = job.run ? [] : ["--set", `preset=${size.preset}`, "--set", `seed=${job.seed}`];
    const args = ["eval", "--ckpt", ckpt, "--protocol", job.protocol, "--json", ...sets, ...job.args];
    const r = await runSelf(args, logOf(job.name));
    const line = r.stdout.split("\n").filter((l) => l.startsWith("{")).pop();
    if (r.code !== 0 || !line) return failed(`evaluation ${job.name}`, r.code, r.stdout, logOf(job.name));
    const rec: EvalRecord & { run_done?: string } = {
      job,
      run_done: await runStamp(job.run),
      result: JSON.parse(line),
    };
    await writeAtomic(file, JSON.stringify(rec, null, 1));
    records.set(job.name, rec);
    progress(`eval ${job.name}`, (performance.now() - t) / 1000);
    made.evals++;
    return true;
  };
  const report = values.report === true;
  if (report) {
    // only what is kept: finished runs, and evaluations made with this plan's arguments
    for (const p of plan.pretrain) if (await exists(`${out}/runs/${p.name}/done.json`)) made.runs++;
    for (const job of plan.evals) {
      const { kept, usable } = await keptEval(job);
      if (usable) records.set(job.name, kept!), made.evals++;
    }
  } else if (
    !(await runPool(poolOrder(plan, pretrain, evaluate, { runsFirst: jobs > 1 }), jobs, values["keep-going"]))
  ) return 1;

  // the adapter the evaluations ran on (a report may be made elsewhere, kept results may come from elsewhere)
  const seen = [...new Set([...records.values()].map((r) => r.result.adapter).filter((a) => typeof a === "string"))];
  const gpu = seen.length ? null : await getGpu();
  const adapter = gpu ? `${gpu.summary.description} (${gpu.summary.backend})` : seen.join(" + ");
  // in plan order, whichever order they finished in
  const ordered = plan.evals.flatMap((e) => records.get(e.name) ?? []);
  const cells = aggregate(ordered);
  const ablationCells = aggregate(ablationRecords(ordered, size));
  const pairs = pairedDifferences(ordered, size.protocols, size.ablation[0].name);
  const orderings = orderingLines(pairs, size.protocols);
  // did plrc's distillation bottleneck collapse? (replayed from each run's metrics, as the trainer's warning)
  const collapse: Record<string, BottleneckReading> = {};
  for (const job of plan.pretrain.filter((p) => p.method === "plrc")) {
    const dir = `${out}/runs/${job.name}`;
    if (!(await exists(`${dir}/done.json`))) continue; // only in a report on an unfinished comparison
    // resolved like `plrc pretrain --config` would (a run written before a key existed lacks it)
    const cfg = resolveConfig({ file: await readConfigFile(`${dir}/config.yaml`), fileName: `${dir}/config.yaml` });
    if (cfg.loss.distill.weight === 0) continue;
    const lines = (await Deno.readTextFile(`${dir}/metrics.jsonl`)).split("\n").filter((l) => l.startsWith("{"));
    const reading = distillCollapseStep(lines.map((l) => JSON.parse(l)));
    if (reading) collapse[job.name] = reading;
  }
  const date = new Date().toISOString().slice(0, 10);
  const minutes = (performance.now() - t0) / 60000;
  await writeAtomic(
    `${out}/results.json`,
    JSON.stringify(
      {
        plrc: VERSION,
        date,
        adapter,
        size: sizeName,
        sizeDoc: size.doc,
        protocols: size.protocols.map((v) => ({ name: v, ...VARIANTS[v] })),
        jobs,
        methods: shown,
        baselines,
        extraSets: values.set ?? [],
        cells,
        ablationCells,
        pairedDifferences: pairs,
        distillCollapseStep: collapse,
        complete: records.size === plan.evals.length,
        missing: plan.evals.filter((e) => !records.has(e.name)).map((e) => e.name),
        records: ordered,
      },
      null,
      1,
    ),
  );
  const table = [
    `# plrc compare --size ${sizeName}`,
    "",
    `${date}, plrc ${VERSION}, ${adapter}. ${size.doc}. Mean ± sample std over seeds ${size.seeds.join(", ")}.`,
    report
      ? `A report of the kept results (\`--report\`, nothing run): ${made.runs} of the ${plan.pretrain.length} ` +
        `pre-training runs and ${made.evals} of the ${plan.evals.length} evaluations are done` +
        (made.evals < plan.evals.length ? "; the missing cells show – or a smaller n." : ".")
      : `This invocation took ${minutes.toFixed(1)} min${jobs > 1 ? ` with ${jobs} jobs side by side` : ""} and ` +
        `made ${made.runs} of the ${plan.pretrain.length} pre-training runs and ${made.evals} of the ` +
        `${plan.evals.length} evaluations; the rest were kept from earlier invocations.`,
    ...(values.set?.length
      ? [`Every pre-training run also had ${values.set.map((x) => `--set ${x}`).join(" ")}.`]
      : []),
    ...(baselines.length
      ? [`Outside backbones, evaluated as they are: ${baselines.map((b) => `${b.name} = \`${b.file}\``).join(", ")}.`]
      : []),
    ...(Object.keys(collapse).length ? [collapseLine(collapse)] : []),
    ...(divergedLine(ordered) ? [divergedLine(ordered)] : []),
    "",
    mainTable(cells, size, shown),
    "",
    ...(pairs.length
      ? [
        `Paired differences (${PAIRED_CAPTION})`,
        "",
        pairedTable(pairs, size.protocols),
        "",
        ...(orderings.length
          ? ["Does plrc > detcon > moco > random hold beyond the error?", "", ...orderings, ""]
          : []),
      ]
      : []),
    ...(!values["no-ablation"] && size.ablation.length > 1 && size.ablationProtocols.length > 0
      ? [
        `Region-quality ablation (seed${ablationSeeds(size).length > 1 ? "s" : ""} ${
          ablationSeeds(size).join(", ")
        }; ` +
        "the grid row is the main comparison's runs of the same seeds):",
        "",
        ablationTable(ablationCells, size),
        "",
      ]
      : []),
  ].join("\n");
  await writeAtomic(`${out}/table.md`, table);
  console.log(table);
  const groups = size.protocols.flatMap((v) =>
    variantMetrics(v).map((m) => ({
      label: `${v} ${m}`,
      bars: shown.map((method) => {
        const c = cells.find((x) =>
          x.method === method && x.variant === v && x.metric === m && x.regions === size.ablation[0].name
        );
        return { mean: 100 * (c?.mean ?? 0), std: 100 * (c?.std ?? 0) };
      }),
    }))
  );
  const chart = renderBarChart(`plrc compare --size ${sizeName}, ${date}, ${adapter}`, [...shown], groups, {
    yLabel: "% (mean +- std over seeds)",
  });
  await Deno.writeFile(`${out}/chart.png`, chart.png());
  console.log(`wrote ${out}/table.md, ${out}/results.json, ${out}/chart.png`);
  return 0;
}

/** Whether this process's adapter is a CPU one (lavapipe, llvmpipe). */
async function cpuAdapter(): Promise<boolean> {
  return (await getGpu()).summary.adapterClass === "cpu";
}

const sameList = (a: readonly string[], b: readonly string[]) => a.length === b.length && a.every((x, i) => x === b[i]);

async function exists(path: string): Promise<boolean> {
  try {
    await Deno.stat(path);
    return true;
  } catch {
    return false;
  }
}

/** The first 16 hex digits of the SHA-256 of `text`. */
async function fingerprint(text: string): Promise<string> {
  const hash = await crypto.subtle.digest("SHA-256", new TextEncoder().encode(text));
  return Array.from(new Uint8Array(hash).subarray(0, 8), (b) => b.toString(16).padStart(2, "0")).join("");
}

/** What a run's `--set` list resolves to now, fingerprinted: a kept run must have been made from the same. */
async function configFingerprint(sets: string[]): Promise<string> {
  return await fingerprint(configToYaml(resolveConfig({ sets })));
}

async function writeAtomic(path: string, text: string): Promise<void> {
  await Deno.writeTextFile(`${path}.tmp`, text);
  await Deno.rename(`${path}.tmp`, path);
}
