import assert from "node:assert/strict";
import {
  ablationRecords,
  ablationSeeds,
  ablationTable,
  aggregate,
  collapseLine,
  type ComparePlan,
  comparePlan,
  type CompareSize,
  distillCollapseStep,
  divergedLine,
  type EvalRecord,
  mainTable,
  meanStd,
  type PairedDifference,
  poolOrder,
  runPool,
  sizeForData,
  SIZES,
  workersPerJob,
} from "../../src/eval/compare.ts";
import { exportScenes, SceneGenerator } from "../../src/data/scenes.ts";
import { getGpu } from "../../src/gpu/device.ts";
import { deriveConfig, resolveConfig } from "../../src/train/config/mod.ts";
import { niceCeil, renderBarChart } from "../../src/viz/charts.ts";
import { glyph, textWidth } from "../../src/viz/font.ts";
import { Canvas } from "../../src/viz/draw.ts";
import { freshSeed } from "../util.ts";

Deno.test("compare plan: every method × seed × protocol once, pre-training shared by the ablation's grid row", () => {
  const size = SIZES.reduced;
  const plan = comparePlan(size);
  const S = size.seeds.length, P = size.protocols.length, A = size.ablation.length;
  // 3 pre-trained methods per seed, plus 2 methods × the ablation settings other than the main one
  assert.equal(plan.pretrain.length, 3 * S + 2 * (A - 1));
  assert.equal(new Set(plan.pretrain.map((p) => p.name)).size, plan.pretrain.length);
  assert.equal(plan.evals.length, 4 * S * P + 2 * (A - 1) * size.ablationProtocols.length);
  for (const p of plan.pretrain) {
    assert.ok(p.sets.includes(`method=${p.method}`) && p.sets.includes(`seed=${p.seed}`), p.name);
    assert.equal(p.sets[0], `preset=${size.preset}`);
  }
  // every evaluation of a run names a planned run; random ones name none
  const names = new Set(plan.pretrain.map((p) => p.name));
  for (const e of plan.evals) assert.ok(e.run === null ? e.method === "random" : names.has(e.run), e.name);
  const noAblation = comparePlan(size, { ablation: false, extraSets: ["train.epochs=2"] });
  assert.equal(noAblation.pretrain.length, 3 * S);
  assert.ok(noAblation.pretrain.every((p) => p.sets.at(-1) === "train.epochs=2"));
  // a subset of methods: only their runs and evaluations, the ablation without the missing one
  const some = comparePlan(size, { methods: ["plrc", "random"] });
  assert.deepEqual(
    some.pretrain.map((p) => p.name),
    [...size.seeds.map((s) => `plrc-grid-s${s}`), ...size.ablation.slice(1).map((a) => `plrc-${a.name}-s0`)],
  );
  assert.equal(some.evals.length, 2 * S * P + (A - 1) * size.ablationProtocols.length);
  assert.deepEqual(some.evals.slice(0, 2 * P).map((e) => e.method), [
    ...Array(P).fill("random"),
    ...Array(P).fill("plrc"),
  ]);
  const cells = aggregate(some.evals.map((job) => ({ job, result: { miou: 0.2, ap: 0.1, ap50: 0.3 } })));
  assert.deepEqual(mainTable(cells, size, ["random", "plrc"]).split("\n").slice(2).map((l) => l.split(" |")[0]), [
    "| random",
    "| plrc",
  ]);
});

Deno.test("compare aggregation: mean and sample std per (method, regions, metric); tables show them", () => {
  assert.deepEqual(meanStd([1, 2, 3]), { mean: 2, std: 1, n: 3 });
  assert.deepEqual(meanStd([5]), { mean: 5, std: 0, n: 1 });
  const size = SIZES.reduced;
  const plan = comparePlan(size);
  const records: EvalRecord[] = plan.evals.map((job) => ({
    job,
    // a made-up result per job: plrc 0.3 + seed/100, others 0.1 + seed/100
    result: { miou: (job.method === "plrc" ? 0.3 : 0.1) + job.seed / 100, accuracy: 0.5, ap: 0.2, ap50: 0.4 },
  }));
  const cells = aggregate(records);
  const plrcMiou = cells.find((c) => c.method === "plrc" && c.regions === "grid" && c.metric === "miou")!;
  assert.equal(plrcMiou.n, 3);
  assert.ok(Math.abs(plrcMiou.mean - 0.31) < 1e-12 && Math.abs(plrcMiou.std - 0.01) < 1e-12);
  const table = mainTable(cells, size);
  // columns: knn accuracy, linear miou, linear-ml miou, then ap and ap50 of detect, detect-50, detect-frozen
  assert.match(
    table,
    /^\| method \| knn accuracy \(%\) \| linear miou \(%\) \| linear-ml miou \(%\) \| detect ap \(%\) \|/,
  );
  assert.match(
    table,
    /\| plrc \| 50\.0 ± 0\.0 \(n=3\) \| 31\.0 ± 1\.0 \(n=3\) \| 31\.0 ± 1\.0 \(n=3\) \| 20\.0 ± 0\.0 \(n=3\) \| 40\.0 ± 0\.0 \(n=3\) \|/,
  );
  // no record reports a test-set error: no such lines
  assert.doesNotMatch(table, /Test-set standard error/);
  assert.match(table, /\| random \| 50\.0 ± 0\.0 \(n=3\) \| 11\.0 ± 1\.0 \(n=3\) \|/);
  const abl = ablationTable(aggregate(ablationRecords(records, size)), size);
  // one ablation seed: the grid row shows seed 0 of the main runs, the others their single seed-0 run
  assert.match(abl, /\| grid \| 10\.0 \| 30\.0 \|/);
  assert.match(abl, /\| gt\+noise0\.3 \| 10\.0 \| 30\.0 \|/);

  // several ablation seeds (medium): every row is mean ± std over them, the grid row from the main runs
  const medium = SIZES.medium;
  assert.deepEqual(ablationSeeds(medium), [0, 1, 2]);
  const mPlan = comparePlan(medium);
  assert.equal(mPlan.pretrain.filter((p) => p.regions === "gt").length, 2 * 3);
  const mRecords: EvalRecord[] = mPlan.evals.map((job) => ({
    job,
    result: { miou: 0.1 + job.seed / 100, accuracy: (job.method === "plrc" ? 0.3 : 0.2) + job.seed / 100 },
  }));
  const mAbl = ablationTable(aggregate(ablationRecords(mRecords, medium)), medium);
  assert.match(
    mAbl,
    /\| grid \| 11\.0 ± 1\.0 \(n=3\) \| 11\.0 ± 1\.0 \(n=3\) \| 21\.0 ± 1\.0 \(n=3\) \| 31\.0 ± 1\.0 \(n=3\) \|/,
  );
  assert.match(mAbl, /\| gt \| 11\.0 ± 1\.0 \(n=3\) \|/);
});

Deno.test("charts: 1-2-5 axis tops, glyphs, text width, a bar chart of the requested size with ink in it", () => {
  assert.equal(niceCeil(0.37), 0.5);
  assert.equal(niceCeil(3), 5);
  assert.equal(niceCeil(31), 50);
  assert.equal(niceCeil(100), 100);
  assert.equal(glyph("A").length, 7);
  assert.ok(glyph("A").every((r) => r.length === 5));
  assert.deepEqual(glyph("a"), glyph("A"));
  assert.equal(textWidth("ab", 2), 22);
  const cv = renderBarChart("t", ["x", "y"], [{ label: "g", bars: [{ mean: 3, std: 1 }, { mean: 5, std: 0 }] }], {
    width: 300,
    height: 200,
  });
  assert.equal(cv.width, 300);
  assert.equal(cv.height, 200);
  const coloured = Array.from({ length: 300 * 200 }, (_, i) => i).filter((i) => {
    const [r, g, b] = cv.data.subarray(3 * i, 3 * i + 3);
    return !(r === g && g === b);
  }).length;
  assert.ok(coloured > 1000, `bars drawn (${coloured} coloured pixels)`);
  const t = new Canvas(20, 10);
  t.text(0, 0, "1", [0, 0, 0]);
  const ink = Array.from({ length: 200 }, (_, i) => t.data[3 * i]).filter((v) => v === 0).length;
  assert.equal(ink, glyph("1").flat().filter(Boolean).length);
});

Deno.test("plrc compare --plan lists the jobs; a bad --size exits 2 naming the allowed values", async () => {
  const run = async (args: string[]) => {
    const out = await new Deno.Command(Deno.execPath(), {
      args: ["run", "-A", new URL("../../cli.ts", import.meta.url).pathname, "compare", ...args],
      stdout: "piped",
      stderr: "piped",
    }).output();
    return { code: out.code, text: new TextDecoder().decode(out.stdout) + new TextDecoder().decode(out.stderr) };
  };
  const plan = await run(["--plan", "--no-ablation"]);
  assert.equal(plan.code, 0, plan.text);
  assert.equal(plan.text.split("\n").filter((l) => l.startsWith("pretrain ")).length, 9);
  assert.match(plan.text, /eval random-s2\.detect: --ckpt random --protocol detect/);
  const bad = await run(["--size", "huge"]);
  assert.equal(bad.code, 2);
  assert.match(bad.text, /--size must be smoke, reduced, medium, full; got "huge"/);
});

Deno.test("runPool: at most N at a time, in order; stops starting after a failure", async () => {
  let running = 0, peak = 0;
  const started: number[] = [];
  const task = (i: number, ok = true) => ({
    run: async () => {
      started.push(i);
      peak = Math.max(peak, ++running);
      await new Promise((r) => setTimeout(r, 5 + (i % 3) * 3));
      running--;
      return ok;
    },
  });
  assert.equal(await runPool([0, 1, 2, 3, 4, 5, 6].map((i) => task(i)), 3), true);
  assert.deepEqual(started, [0, 1, 2, 3, 4, 5, 6]);
  assert.equal(peak, 3);
  started.length = 0;
  assert.equal(await runPool([task(0), task(1, false), task(2), task(3), task(4)], 1), false);
  assert.deepEqual(started, [0, 1]);
  // a throwing task counts as a failure
  assert.equal(await runPool([{ run: () => Promise.reject(new Error("boom")) }, task(9)], 1), false);
  assert.equal(workersPerJob(16, 4, true), 3);
  assert.equal(workersPerJob(16, 8, false), 2);
  assert.equal(workersPerJob(2, 2, true), 0);
  assert.equal(workersPerJob(2, 2, false), 1);
  assert.equal(workersPerJob(64, 1, false), 15);
});

Deno.test("runPool: a task waits for its dependencies, and a ready task goes before a later one", async () => {
  const log: string[] = [];
  const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));
  const task = (name: string, ms: number, after?: number[], ok = true) => ({
    run: async () => {
      log.push(`start ${name}`);
      await sleep(ms);
      log.push(`end ${name}`);
      return ok;
    },
    after,
  });
  // run A (short), its eval, run B (long), its eval, run C: with 2 slots A's eval starts as soon as A ends,
  // ahead of run C, and B's eval only after B
  const ok = await runPool(
    [task("A", 5), task("A.eval", 5, [0]), task("B", 60), task("B.eval", 5, [2]), task("C", 5)],
    2,
  );
  assert.equal(ok, true);
  assert.deepEqual(log.filter((l) => l.startsWith("start")), [
    "start A",
    "start B",
    "start A.eval",
    "start C",
    "start B.eval",
  ]);
  assert.ok(log.indexOf("start B.eval") > log.indexOf("end B"));
  assert.ok(log.indexOf("start A.eval") > log.indexOf("end A"));
  // a failed dependency: its dependant never starts, the pool reports failure
  log.length = 0;
  assert.equal(await runPool([task("A", 1, undefined, false), task("A.eval", 1, [0]), task("B", 1)], 1), false);
  assert.deepEqual(log, ["start A", "end A"]);
  // keepGoing: B, which does not need A, still runs; A's dependant does not; still a failure
  log.length = 0;
  assert.equal(
    await runPool([task("A", 1, undefined, false), task("A.eval", 1, [0]), task("B", 1), task("B.e", 1, [2])], 1, true),
    false,
  );
  assert.deepEqual(log.filter((l) => l.startsWith("start")), ["start A", "start B", "start B.e"]);
});

/** The pool order of `plan`, with tasks that only record their job's name into `names` when they run. */
function recordingOrder(plan: ComparePlan, o: { runsFirst?: boolean } = {}) {
  const names: string[] = [];
  const record = (job: { name: string }) => (names.push(job.name), Promise.resolve(true));
  return { names, tasks: poolOrder(plan, record, record, o) };
}

Deno.test("poolOrder: random evaluations first, each run followed by its evaluations, which wait for it", () => {
  const plan = comparePlan(SIZES.reduced);
  const { names, tasks } = recordingOrder(plan);
  assert.equal(tasks.length, plan.pretrain.length + plan.evals.length);
  for (const t of tasks) t.run();
  const randoms = plan.evals.filter((e) => e.run === null).length;
  assert.ok(names.slice(0, randoms).every((n) => n.startsWith("random-")));
  assert.ok(tasks.slice(0, randoms).every((t) => !t.after));
  for (const [i, t] of tasks.entries()) {
    const run = plan.evals.find((e) => e.name === names[i])?.run;
    if (run) assert.equal(names[t.after![0]], run, names[i]);
    else if (!names[i].startsWith("random-")) assert.equal(t.after, undefined);
  }
  assert.deepEqual(new Set(names), new Set([...plan.pretrain.map((p) => p.name), ...plan.evals.map((e) => e.name)]));
});

Deno.test("poolOrder with runsFirst: every run, then each run's evaluations after it, the random ones last", async () => {
  const plan = comparePlan(SIZES.full);
  const { names: started, tasks } = recordingOrder(plan, { runsFirst: true });
  assert.equal(tasks.length, plan.pretrain.length + plan.evals.length);
  // two lanes: no evaluation starts while a run is still waiting
  assert.equal(await runPool(tasks, 2), true);
  const runs = plan.pretrain.map((p) => p.name);
  assert.deepEqual(started.slice(0, runs.length), runs);
  const randoms = plan.evals.filter((e) => e.run === null).map((e) => e.name);
  assert.deepEqual(started.slice(-randoms.length), randoms);
  for (const e of plan.evals.filter((e) => e.run)) assert.ok(started.indexOf(e.name) > started.indexOf(e.run!));
});

/** The smoke size with the plain linear probe only, as `--protocols linear` makes it. */
const SMOKE_LINEAR = { ...SIZES.smoke, protocols: ["linear"], ablationProtocols: ["linear"] } satisfies CompareSize;

Deno.test({
  name: "plrc compare --size smoke --jobs 2: runs, writes table/JSON/chart, continues an interrupted comparison",
  sanitizeResources: false,
  fn: async () => {
    const out = await Deno.makeTempDir({ prefix: "plrc-compare-" });
    const run = async (args: string[]) => {
      const o = await new Deno.Command(Deno.execPath(), {
        // the smoke size's own variants need `plrc eval --level c3+c4` and `--freeze-backbone`; the plain
        // linear probe keeps this test to what eval runs now
        args: [
          "run",
          "-A",
          new URL("../../cli.ts", import.meta.url).pathname,
          "compare",
          "--out",
          out,
          "--protocols",
          "linear",
          ...args,
        ],
        stdout: "piped",
        stderr: "piped",
      }).output();
      return { code: o.code, text: new TextDecoder().decode(o.stdout) + new TextDecoder().decode(o.stderr) };
    };
    try {
      const badMethods = await run(["--size", "smoke", "--methods", "plrc,simclr"]);
      assert.equal(badMethods.code, 2, badMethods.text);
      assert.match(badMethods.text, /--methods takes names from random, moco, detcon, plrc; got "simclr"/);
      const badJobs = await run(["--size", "smoke", "--jobs", "0"]);
      assert.equal(badJobs.code, 2, badJobs.text);
      assert.match(badJobs.text, /--jobs must be a whole number ≥ 1, got "0"/);

      const first = await run(["--size", "smoke", "--no-ablation", "--jobs", "2"]);
      assert.equal(first.code, 0, first.text);
      // progress lines say how long is left, except the last
      assert.match(first.text, /^\[1\/14\] .* s {2}\(elapsed \d+\.\d min, ~\d+\.\d min left\)$/m);
      assert.match(first.text, /^\[14\/14\] .* s {2}\(elapsed \d+\.\d min\)$/m);
      const results = JSON.parse(await Deno.readTextFile(`${out}/results.json`));
      // 3 methods × 2 seeds pre-trained; 4 methods × 2 seeds evaluated, in plan order
      assert.equal(results.records.length, 8);
      assert.equal(results.complete, true);
      assert.deepEqual(
        results.records.map((r: EvalRecord) => r.job.name),
        comparePlan(SMOKE_LINEAR, { ablation: false }).evals.map((e) => e.name),
      );
      for (const r of results.records) assert.ok(r.result.miou > 0 && r.result.miou < 1, JSON.stringify(r.result));
      // runs side by side got an equal share of the cores for data workers, and logged to files
      const cfg = await Deno.readTextFile(`${out}/runs/plrc-grid-s1/config.yaml`);
      const cores = navigator.hardwareConcurrency ?? 1;
      assert.match(
        cfg,
        new RegExp(`workers: ${workersPerJob(cores, 2, (await getGpu()).summary.adapterClass === "cpu")}\\b`),
      );
      assert.ok((await Deno.stat(`${out}/logs/plrc-grid-s1.log`)).size > 0);
      // and shared one scene cache, which is not part of a run's identity
      assert.match(cfg, new RegExp(`cache: ${out}/scene-cache\\b`));
      assert.ok([...Deno.readDirSync(`${out}/scene-cache`)].length === 1, "one generator's folder");
      assert.ok(
        !JSON.parse(await Deno.readTextFile(`${out}/runs/plrc-grid-s1/done.json`)).job.sets.some((s: string) =>
          s.startsWith("data.scenes.cache")
        ),
      );
      const table = await Deno.readTextFile(`${out}/table.md`);
      assert.match(table, /\| plrc \| \d+\.\d ± \d+\.\d \(n=2\) \|/);
      // the paired differences, from these very records: plrc − random per seed
      const miou = (m: string, seed: number) =>
        results.records.find((r: EvalRecord) => r.job.method === m && r.job.seed === seed).result.miou;
      const d = results.pairedDifferences.find((x: PairedDifference) => x.a === "plrc" && x.b === "random");
      assert.deepEqual(d.seeds, [0, 1]);
      assert.deepEqual(d.values, [0, 1].map((s) => miou("plrc", s) - miou("random", s)));
      assert.equal(results.pairedDifferences.length, 5);
      assert.match(table, /\| plrc − random \| [+−]\d+\.\d ± \d+\.\d \(n=2\) [<>≈] \|/);
      assert.match(
        table,
        /^- linear: miou (holds|does not \(plrc [<>≈] detcon, detcon [<>≈] moco, moco [<>≈] random\))$/m,
      );
      assert.match(table, /with 2 jobs side by side/);
      assert.doesNotMatch(table, /Region-quality ablation/);
      assert.match(table, /made 6 of the 6 pre-training runs and 8 of the 8 evaluations/);
      assert.match(
        table,
        /plrc's distillation bottleneck \(alignment: .*\) ended at [0-9.–]+ and collapsed in none of its 2 runs/,
      );
      assert.ok((await Deno.stat(`${out}/chart.png`)).size > 1000);

      // an interrupted comparison: one evaluation lost; running again redoes only that one, with the same result
      const lost = `${out}/evals/plrc-grid-s1.linear.json`;
      const before = JSON.parse(await Deno.readTextFile(lost));
      await Deno.remove(lost);
      // --report runs nothing and tables what is kept: plrc has one seed's linear probe left
      const report = await run(["--size", "smoke", "--no-ablation", "--report"]);
      assert.equal(report.code, 0, report.text);
      assert.doesNotMatch(report.text, /eval plrc-grid-s1\.linear \d+ s/);
      assert.match(report.text, /6 of the 6 pre-training runs and 7 of the 8 evaluations are done/);
      assert.match(report.text, /\| plrc \| \d+\.\d ± 0\.0 \(n=1\) \|/);
      const partial = JSON.parse(await Deno.readTextFile(`${out}/results.json`));
      assert.equal(partial.complete, false);
      assert.deepEqual(partial.missing, ["plrc-grid-s1.linear"]);
      assert.equal(partial.records.length, 7);
      const again = await run(["--size", "smoke", "--no-ablation"]);
      assert.equal(again.code, 0, again.text);
      assert.equal(again.text.match(/kept from an earlier run/g)?.length, 6 + 7);
      assert.match(again.text, /eval plrc-grid-s1\.linear \d+ s/);
      assert.equal(JSON.parse(await Deno.readTextFile(lost)).result.miou, before.result.miou);

      // a kept result made with other arguments is redone; a finished run of another configuration is an error
      const stale = `${out}/evals/random-s0.linear.json`;
      const rec = JSON.parse(await Deno.readTextFile(stale));
      await Deno.writeTextFile(stale, JSON.stringify({ ...rec, job: { ...rec.job, args: ["--train", "9"] } }));
      const redo = await run(["--size", "smoke", "--no-ablation"]);
      assert.equal(redo.code, 0, redo.text);
      assert.match(redo.text, /eval random-s0\.linear: kept result used --train 9; redoing it with --train 8 --test 4/);
      assert.deepEqual(JSON.parse(await Deno.readTextFile(stale)).job.args, [
        "--train",
        "8",
        "--test",
        "4",
        "--probe-iterations",
        "256",
      ]);
      const marker = await Deno.readTextFile(`${out}/runs/moco-grid-s0/done.json`);
      const other = await run(["--size", "smoke", "--no-ablation", "--set", "optim.lr=0.01"]);
      assert.equal(other.code, 1, other.text);
      assert.match(other.text, /runs\/moco-grid-s0 was pre-trained with --set .*but this plan needs .*optim\.lr=0\.01/);
      assert.equal(await Deno.readTextFile(`${out}/runs/moco-grid-s0/done.json`), marker);

      // the same --set list over other defaults (a newer plrc): the kept run's fingerprint differs, an error
      const done = JSON.parse(marker);
      assert.match(done.config, /^[0-9a-f]{16}$/);
      await Deno.writeTextFile(
        `${out}/runs/moco-grid-s0/done.json`,
        JSON.stringify({ ...done, config: "0".repeat(16) }),
      );
      const newer = await run(["--size", "smoke", "--no-ablation"]);
      assert.equal(newer.code, 1, newer.text);
      assert.match(newer.text, /runs\/moco-grid-s0 was pre-trained .* when those resolved to another configuration/);
      await Deno.writeTextFile(`${out}/runs/moco-grid-s0/done.json`, marker);
      // a run removed to be made again: its kept evaluations scored the old one, so they are redone too
      await Deno.remove(`${out}/runs/plrc-grid-s0`, { recursive: true });
      const remade = await run(["--size", "smoke", "--no-ablation"]);
      assert.equal(remade.code, 0, remade.text);
      assert.match(remade.text, /pretrain plrc-grid-s0 \d+ s/);
      assert.match(remade.text, /eval plrc-grid-s0\.linear \d+ s/);
      assert.match(remade.text, /eval moco-grid-s0\.linear \(kept from an earlier run\)/);
    } finally {
      await Deno.remove(out, { recursive: true });
    }
  },
});

Deno.test("every comparison size's pre-training runs are valid configurations of the stated length", () => {
  const steps: Record<string, number> = { smoke: 2, reduced: 128, medium: 768, full: 256 };
  for (const [name, size] of Object.entries(SIZES)) {
    for (const job of comparePlan(size).pretrain) {
      const cfg = resolveConfig({ sets: job.sets });
      assert.equal(cfg.method, job.method, job.name);
      assert.equal(deriveConfig(cfg).totalSteps, steps[name], `${name} ${job.name}`);
    }
  }
});

Deno.test("distillCollapseStep replays the trainer's monitor over a run's alignment; collapseLine reports it", () => {
  // 200 steps: unaligned for 40, then above 0.9; one step repeated by a resume (its last record counts)
  const records = Array.from({ length: 200 }, (_, step) => ({ step, distill_alignment: step < 40 ? 0.5 : 0.95 }));
  records.push({ step: 45, distill_alignment: 0.2 }, { step: 45, distill_alignment: 0.95 });
  // patience max(16, 200 / 10 = 20): the 20th step above the threshold is step 59
  assert.deepEqual(distillCollapseStep(records), { at: 59, last: 0.95 });
  assert.deepEqual(distillCollapseStep(records.map((r) => ({ ...r, distill_alignment: 0.6 }))), {
    at: null,
    last: 0.6,
  });
  // a run from before the alignment was logged has no reading
  assert.equal(distillCollapseStep([{ step: 0 }, { step: 1 }]), null);
  assert.equal(
    collapseLine({ a: { at: 59, last: 0.97 }, b: { at: null, last: 0.55 }, c: { at: 70, last: 0.99 } }),
    "plrc's distillation bottleneck (alignment: the mean cosine of the teacher's and the anchors' bottleneck " +
      "vectors; collapsed when above 0.9) ended at 0.55–0.99 and collapsed in 2 of its 3 runs (detected at step " +
      "60–71): there, plrc trained as point-level and image-level contrast.",
  );
  assert.equal(collapseLine({}), "");
});

const FIXTURE_PTH = new URL("../fixtures/import_resnet18_w0.0625.pth", import.meta.url).pathname;

Deno.test("comparePlan with baselines: one evaluation per seed and protocol of the file, first in the pool, not in the ablation", () => {
  const b = { name: "imagenet", file: "/w/r50.pth" };
  const plan = comparePlan(SIZES.reduced, { baselines: [b] });
  const evals = plan.evals.filter((e) => e.method === "imagenet");
  assert.deepEqual(
    evals.map((e) => e.name),
    SIZES.reduced.seeds.flatMap((s) => SIZES.reduced.protocols.map((p) => `imagenet-s${s}.${p}`)),
  );
  assert.ok(evals.every((e) => e.ckpt === "/w/r50.pth" && e.run === null && e.regions === "grid"));
  // without baselines the plan is unchanged
  const plain = comparePlan(SIZES.reduced);
  assert.deepEqual(plan.evals.filter((e) => e.method !== "imagenet"), plain.evals);
  assert.deepEqual(plan.pretrain, plain.pretrain);
  // scheduled with the random evaluations, ahead of all pre-training
  const names: string[] = [];
  const tasks = poolOrder(plan, (p) => (names.push(p.name), Promise.resolve(true)), (e) => {
    names.push(e.name);
    return Promise.resolve(true);
  });
  for (const t of tasks) t.run();
  const firstRun = names.indexOf(plan.pretrain[0].name);
  const early = names.slice(0, firstRun);
  assert.equal(early.length, plan.evals.filter((e) => e.run === null).length);
  assert.ok(early.every((n) => n.startsWith("random-") || n.startsWith("imagenet-")), early.join(" "));
  assert.ok(evals.every((e) => early.includes(e.name)));
  // the ablation aggregates pre-trained runs only
  const recs: EvalRecord[] = plan.evals.map((job) => ({
    job,
    result: { miou: 0.5, accuracy: 0.5, ap: 0.1, ap50: 0.2 },
  }));
  assert.ok(ablationRecords(recs, SIZES.reduced).every((r) => r.job.run !== null));
  assert.ok(ablationRecords(recs, SIZES.reduced).length > 0);
});

Deno.test("sizeForData: runs on the folder, protocols on the COCO set (scaled to fit), ground truth becomes FH", () => {
  const d = { images: "/u/img", evalImages: "/u", ann: "/u/ann.json", evalCount: 300 };
  for (const [name, base] of Object.entries(SIZES)) {
    const size = sizeForData(base, d);
    assert.deepEqual(size.ablation.map((a) => a.name)[0], "grid", name);
    assert.ok(size.ablation.every((a) => !a.sets.includes("data.regions.source=gt") && !a.name.startsWith("gt")), name);
    assert.equal(new Set(size.ablation.map((a) => a.name)).size, size.ablation.length, `${name}: no duplicate`);
    for (const job of comparePlan(size).pretrain) {
      assert.ok(job.sets.includes("data.source=/u/img"), job.name);
      assert.ok(!job.sets.some((x) => x.startsWith("data.scenes.")), job.name);
      const cfg = resolveConfig({ sets: job.sets }); // a valid configuration (gt would be refused on a folder)
      assert.equal(cfg.data.source, "/u/img");
    }
    for (const e of comparePlan(size).evals) {
      const a = e.args, at = (f: string) => a[a.indexOf(f) + 1];
      assert.equal(at("--data"), "/u", e.name);
      assert.equal(at("--ann"), "/u/ann.json", e.name);
      assert.ok(Number(at("--train")) + Number(at("--test")) <= 300, `${name} ${e.name}: ${a.join(" ")}`);
      assert.equal(a.filter((x) => x === "--train").length, 1);
    }
  }
  // full asks 400 + 200 for linear and detect and 500 + 500 for k-NN: scaled in proportion to 300 images
  const full = sizeForData(SIZES.full, d);
  assert.deepEqual(full.evalArgs.linear, [
    "--data",
    "/u",
    "--ann",
    "/u/ann.json",
    "--train",
    "200",
    "--test",
    "100",
    "--resolution",
    "128",
  ]);
  assert.deepEqual(full.evalArgs.knn!.slice(4), ["--train", "150", "--test", "150"]);
  assert.deepEqual(full.ablation.map((a) => a.name), ["grid", "fh", "fh+noise0.3", "fh+shift6"]);
  assert.deepEqual(full.ablation[2].sets, ["data.regions.source=fh", "data.regions.noise=0.3"]);
  // a set large enough is used as asked
  assert.deepEqual(sizeForData(SIZES.full, { ...d, evalCount: 5000 }).evalArgs.knn!.slice(4), [
    "--train",
    "500",
    "--test",
    "500",
  ]);
  assert.throws(() => sizeForData(SIZES.full, { ...d, evalCount: 1 }), /lists 1 images: too few/);
});

Deno.test({
  name: "plrc compare --data DIR --ann COCO: pre-trains on the folder and evaluates on the COCO set; bad flags exit 2",
  sanitizeResources: false,
  fn: async () => {
    const dir = await Deno.makeTempDir({ prefix: "plrc-compare-data-" });
    const run = async (args: string[]) => {
      const o = await new Deno.Command(Deno.execPath(), {
        args: [
          "run",
          "-A",
          new URL("../../cli.ts", import.meta.url).pathname,
          "compare",
          "--out",
          `${dir}/out`,
          "--protocols", // as in the smoke test above: what eval runs now
          "linear",
          ...args,
        ],
        stdout: "piped",
        stderr: "piped",
      }).output();
      return { code: o.code, text: new TextDecoder().decode(o.stdout) + new TextDecoder().decode(o.stderr) };
    };
    try {
      const ex = await exportScenes(`${dir}/coco`, new SceneGenerator(freshSeed(), { size: 96, classes: 3 }), 14);
      const noAnn = await run(["--size", "smoke", "--data", `${dir}/coco/images`]);
      assert.equal(noAnn.code, 2, noAnn.text);
      assert.match(noAnn.text, /--data DIR needs --ann COCO\.json/);
      const annAlone = await run(["--size", "smoke", "--ann", ex.annotations]);
      assert.equal(annAlone.code, 2, annAlone.text);
      assert.match(annAlone.text, /--ann and --eval-data go with --data DIR/);
      const badAnn = await run(["--size", "smoke", "--data", `${dir}/coco/images`, "--ann", `${dir}/none.json`]);
      assert.equal(badAnn.code, 2, badAnn.text);
      assert.match(badAnn.text, /cannot use --ann/);

      const badName = await run(["--size", "smoke", "--baseline", `plrc=${FIXTURE_PTH}`]);
      assert.equal(badName.code, 2, badName.text);
      assert.match(badName.text, /NAME of letters, digits and _\.\+- other than random, moco, detcon, plrc/);
      const badFile = await run(["--size", "smoke", "--baseline", `tv=${dir}/none.pth`]);
      assert.equal(badFile.code, 2, badFile.text);
      assert.match(badFile.text, /--baseline tv: .*none\.pth/);

      // the whole comparison on the COCO folder, with an outside backbone as a row of its own
      const args = ["--size", "smoke", "--data", `${dir}/coco/images`, "--eval-data", `${dir}/coco`];
      const baseline = ["--baseline", `tv=${FIXTURE_PTH}`];
      const r = await run([...args, "--ann", ex.annotations, "--no-ablation", "--methods", "random,plrc", ...baseline]);
      assert.equal(r.code, 0, r.text);
      const results = JSON.parse(await Deno.readTextFile(`${dir}/out/results.json`));
      assert.equal(results.records.length, 6);
      assert.deepEqual(results.methods, ["random", "plrc", "tv"]);
      const tv = results.records.filter((x: EvalRecord) => x.job.method === "tv");
      assert.deepEqual(tv.map((x: EvalRecord) => x.job.ckpt), [FIXTURE_PTH, FIXTURE_PTH]);
      assert.deepEqual(tv[0].result.model, { depth: 18, width: 0.0625 });
      assert.match(await Deno.readTextFile(`${dir}/out/table.md`), /\| tv \| \d+\.\d ± \d+\.\d \(n=2\) \|/);
      for (const rec of results.records) {
        assert.equal(rec.result.data, `${dir}/coco`);
        assert.ok(rec.job.args.includes(ex.annotations));
        assert.ok(Number.isFinite(rec.result.miou) && rec.result.miou > 0, JSON.stringify(rec.result));
      }
      const cfg = await Deno.readTextFile(`${dir}/out/runs/plrc-grid-s0/config.yaml`);
      assert.match(cfg, new RegExp(`source: ${dir}/coco/images`));
      assert.match(await Deno.readTextFile(`${dir}/out/table.md`), /evaluated on the 14 images of .*annotations\.json/);
    } finally {
      await Deno.remove(dir, { recursive: true });
    }
  },
});

Deno.test("divergedLine names the detection evaluations whose head diverged, from the losses each record keeps", () => {
  type Loss = { first: number; last: number | null; initial?: number; peak?: number };
  const rec = (name: string, protocol: string, loss?: Loss) => ({
    job: { name, protocol } as EvalRecord["job"],
    result: loss ? { loss } : {},
  });
  assert.equal(divergedLine([rec("a.detect", "detect", { first: 5, last: 2 }), rec("b.knn", "knn")]), "");
  const line = divergedLine([
    rec("a.detect", "detect", { first: 5, last: 2 }),
    rec("b.detect-frozen", "detect", { first: 13.5, last: 2.8e5 }),
    // a NaN loss reads back as null in JSON
    rec("c.detect-50", "detect", { first: 5, last: null }),
    rec("d.linear", "linear", { first: 1, last: 9 }),
    // a blow-up half recovered from: the first epoch's mean far above the untrained head's loss
    rec("e.detect", "detect", { first: 12311, last: 2280, initial: 5.2, peak: 12311 }),
    rec("f.detect", "detect", { first: 5.3, last: 2.1, initial: 5.4, peak: 5.3 }),
  ]);
  assert.match(line, /^In 3 detection evaluations .*diverged.*: b\.detect-frozen, c\.detect-50, e\.detect\.$/);
});
