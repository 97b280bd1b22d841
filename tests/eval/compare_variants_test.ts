import assert from "node:assert/strict";
import {
  aggregate,
  comparePlan,
  type CompareSize,
  type EvalJob,
  type EvalRecord,
  mainTable,
  METHODS,
  NO_DISTILL,
  orderingLines,
  pairedDifferences,
  pairedTable,
  parseEvalArgs,
  sizeForData,
  SIZES,
  t975,
  variantArgs,
  variantOf,
  VARIANTS,
} from "../../src/eval/compare.ts";

const CLI = new URL("../../cli.ts", import.meta.url).pathname;
const MEDIUM = new URL("../../bench/transfer/2026-11-27-medium/", import.meta.url).pathname;

async function compare(args: string[]): Promise<{ code: number; text: string }> {
  const o = await new Deno.Command(Deno.execPath(), {
    args: ["run", "-A", CLI, "compare", ...args],
    stdout: "piped",
    stderr: "piped",
  }).output();
  return { code: o.code, text: new TextDecoder().decode(o.stdout) + new TextDecoder().decode(o.stderr) };
}

Deno.test("parseEvalArgs reads switches; variantArgs adds a variant's options, --train/--test only ever lower", () => {
  assert.deepEqual(parseEvalArgs(["--train", "8", "--freeze-backbone", "--level", "c3+c4", "--json"]), [
    ["--train", "8"],
    ["--freeze-backbone", null],
    ["--level", "c3+c4"],
    ["--json", null],
  ]);
  assert.throws(() => parseEvalArgs(["8"]), /expected a --flag, got "8"/);
  const size = SIZES.reduced;
  assert.deepEqual(variantArgs(size, "detect"), ["--train", "200", "--test", "100", "--epochs", "6"]);
  assert.deepEqual(variantArgs(size, "detect-50"), ["--train", "50", "--test", "100", "--epochs", "6"]);
  assert.deepEqual(variantArgs(size, "detect-frozen"), [
    "--train",
    "200",
    "--test",
    "100",
    "--epochs",
    "6",
    "--freeze-backbone",
  ]);
  assert.deepEqual(variantArgs(size, "linear-ml"), ["--train", "200", "--test", "100", "--level", "c3+c4"]);
  // a size that gives the protocol fewer images than the variant asks keeps its own number
  assert.deepEqual(variantArgs(SIZES.smoke, "detect-50"), ["--train", "8", "--test", "4", "--epochs", "1"]);
  // none given: capped by plrc eval's own default (200 training images)
  assert.deepEqual(variantArgs({ ...size, evalArgs: {} }, "detect-50"), ["--train", "50"]);
  // any other option of the variant replaces the size's
  const lvl = { ...size, evalArgs: { linear: ["--level", "c5", "--train", "10"] } };
  assert.deepEqual(variantArgs(lvl, "linear-ml"), ["--level", "c3+c4", "--train", "10"]);
});

Deno.test("sizes: the variants of each size; medium's ablation and distillation control; full's numbers kept", () => {
  const main = ["knn", "linear", "linear-ml", "detect", "detect-50", "detect-frozen"];
  assert.deepEqual(SIZES.medium.protocols, main);
  assert.deepEqual(SIZES.reduced.protocols, main);
  assert.deepEqual(SIZES.full.protocols, main);
  assert.deepEqual(SIZES.medium.ablationProtocols, ["linear-ml", "knn"]);
  assert.equal(SIZES.medium.distillControl, true);
  assert.ok(!SIZES.smoke.distillControl && !SIZES.reduced.distillControl && !SIZES.full.distillControl);
  assert.deepEqual(SIZES.smoke.protocols, ["linear-ml"]);
  assert.deepEqual(variantArgs(SIZES.smoke, "detect-frozen"), [
    "--train",
    "8",
    "--test",
    "4",
    "--epochs",
    "1",
    "--freeze-backbone",
  ]);
  assert.deepEqual(SIZES.full.evalArgs.detect, ["--train", "400", "--test", "200", "--resolution", "128"]);
  // every variant a size names is one its evaluation options cover
  for (const [name, size] of Object.entries(SIZES)) {
    for (const v of [...size.protocols, ...size.ablationProtocols]) {
      assert.ok(size.evalArgs[VARIANTS[v].protocol], `${name} ${v}`);
    }
  }
});

Deno.test("comparePlan: an evaluation per variant named <run>.<variant>, its base protocol and merged options", () => {
  const size = SIZES.medium;
  const plan = comparePlan(size, { extraSets: ["loss.distill.weight=0.5"] });
  const e = plan.evals.find((x) => x.name === "plrc-grid-s1.detect-frozen")!;
  assert.equal(e.protocol, "detect");
  assert.equal(e.variant, "detect-frozen");
  assert.ok(e.args.includes("--freeze-backbone"));
  const low = plan.evals.find((x) => x.name === "random-s0.detect-50")!;
  assert.deepEqual(low.args, ["--train", "50", "--test", "100", "--epochs", "6"]);
  // the distillation control: plrc's configuration with the term off (after the user's --set), per seed
  const ctl = plan.pretrain.filter((p) => p.name.startsWith(`${NO_DISTILL}-`));
  assert.deepEqual(ctl.map((p) => p.name), size.seeds.map((s) => `${NO_DISTILL}-grid-s${s}`));
  for (const p of ctl) {
    assert.equal(p.method, "plrc");
    assert.equal(p.sets.at(-1), "loss.distill.weight=0");
    assert.ok(p.sets.includes("loss.distill.weight=0.5"));
  }
  const ctlEvals = plan.evals.filter((x) => x.method === NO_DISTILL);
  assert.deepEqual(
    ctlEvals.map((x) => x.name),
    size.seeds.flatMap((s) => size.protocols.map((v) => `${NO_DISTILL}-grid-s${s}.${v}`)),
  );
  // counts: 4 methods + the control over seeds × variants, and the ablation's 2 methods × 2 settings × 3 seeds
  const S = size.seeds.length, V = size.protocols.length;
  assert.equal(plan.pretrain.length, 3 * S + S + 2 * 2 * 3);
  assert.equal(plan.evals.length, 5 * S * V + 2 * 2 * 3 * size.ablationProtocols.length);
  assert.ok(plan.evals.filter((x) => x.regions === "gt").every((x) => ["linear-ml", "knn"].includes(x.variant!)));
  // without plrc, no control
  assert.ok(comparePlan(size, { methods: ["random", "moco"] }).pretrain.every((p) => !p.name.includes(NO_DISTILL)));
});

Deno.test("sizeForData: a variant's own --train stays under the set-scaled number, switches survive", () => {
  const d = { images: "/u/img", evalImages: "/u", ann: "/u/ann.json", evalCount: 60 };
  const medium = sizeForData(SIZES.medium, d);
  const at = (args: string[], f: string) => args[args.indexOf(f) + 1];
  // detect asks 200 + 100: scaled to 40 + 20; detect-50 asks for 50, more than 40: 40
  const plan = comparePlan(medium);
  const low = plan.evals.find((x) => x.name === "plrc-grid-s0.detect-50")!.args;
  assert.equal(at(low, "--train"), "40");
  assert.equal(at(low, "--test"), "20");
  assert.equal(at(low, "--ann"), "/u/ann.json");
  // on a set large enough, the variant's 50 stays below the scaled 200
  const big = comparePlan(sizeForData(SIZES.medium, { ...d, evalCount: 1000 }));
  assert.equal(at(big.evals.find((x) => x.name === "plrc-grid-s0.detect-50")!.args, "--train"), "50");
  const frozen = plan.evals.find((x) => x.name === "plrc-grid-s0.detect-frozen")!.args;
  assert.ok(frozen.includes("--freeze-backbone") && at(frozen, "--epochs") === "6", frozen.join(" "));
  // a base protocol no variant uses is scaled too (so --protocols can pick it later)
  assert.deepEqual(sizeForData(SIZES.smoke, d).evalArgs.knn!.slice(0, 4), ["--data", "/u", "--ann", "/u/ann.json"]);
});

/** A record of `method` under `variant` for `seed` with the given result. */
function rec(method: string, variant: keyof typeof VARIANTS, seed: number, result: Record<string, number>): EvalRecord {
  const job: EvalJob = {
    name: `${method}-s${seed}.${variant}`,
    run: method === "random" ? null : `${method}-grid-s${seed}`,
    method,
    seed,
    regions: "grid",
    protocol: VARIANTS[variant].protocol,
    variant,
    args: [],
  };
  return { job, result };
}

Deno.test("aggregate per variant, with the test-set error; a record without a variant is its protocol's", () => {
  const records = [
    rec("plrc", "linear", 0, { miou: 0.2, miou_se: 0.01, train_images: 200, test_images: 100 }),
    rec("plrc", "linear", 1, { miou: 0.3, miou_se: 0.03, train_images: 200, test_images: 100 }),
    rec("plrc", "linear-ml", 0, { miou: 0.5 }),
  ];
  const old: EvalRecord = { ...records[0], job: { ...records[0].job, variant: undefined } };
  delete old.job.variant;
  assert.equal(variantOf(old.job), "linear");
  const cells = aggregate([old, records[1], records[2]]);
  const lin = cells.find((c) => c.variant === "linear")!;
  assert.deepEqual(lin.values, [0.2, 0.3]);
  assert.deepEqual(lin.seeds, [0, 1]);
  assert.ok(Math.abs(lin.se! - 0.02) < 1e-12);
  assert.equal(cells.find((c) => c.variant === "linear-ml")!.se, null);
  const size = { ...SIZES.reduced, protocols: ["linear", "linear-ml"] } satisfies CompareSize;
  const table = mainTable(cells, size, ["plrc"]);
  assert.match(table, /\| plrc \| 25\.0 ± 7\.1 \(n=2\) \| 50\.0 ± 0\.0 \(n=1\) \|/);
  // the error line lists the variants that report one, in points, with the images used
  assert.match(table, /^- linear \(200 training, 100 held-out images\): miou plrc 2\.0$/m);
  assert.doesNotMatch(table, /^- linear-ml/m);
  // images reported without an error still get their line; differing numbers are all shown
  const images = aggregate([
    rec("plrc", "linear-ml", 0, { miou: 0.5, train_images: 50, test_images: 100 }),
    rec("plrc", "linear-ml", 1, { miou: 0.5, train_images: 40, test_images: 100 }),
  ]);
  assert.match(
    mainTable(images, size, ["plrc"]),
    /^- linear-ml \(40\/50 training, 100 held-out images\): no error reported$/m,
  );
});

Deno.test("pairedDifferences: paired by seed; the seed term (t · std / √n) and the test-set term decide", () => {
  assert.equal(t975(2), 4.303);
  assert.equal(t975(1), 12.706);
  assert.equal(t975(100), 2.042);
  const r: EvalRecord[] = [];
  const knn = {
    plrc: [0.4, 0.42, 0.44],
    detcon: [0.25, 0.28, 0.24],
    moco: [0.3, 0.33, 0.29],
    random: [0.3, 0.31, 0.32],
  };
  for (const [m, v] of Object.entries(knn)) v.forEach((x, s) => r.push(rec(m, "knn", s, { accuracy: x })));
  // linear: plrc 2 points over random at every seed, but each evaluation's test-set error is 2 points
  for (const s of [0, 1, 2]) {
    r.push(rec("plrc", "linear", s, { miou: 0.2 + s / 100, miou_se: 0.02 }));
    r.push(rec("random", "linear", s, { miou: 0.18 + s / 100, miou_se: 0.02 }));
  }
  // detcon's linear has seeds 0 and 2 only; moco's seed 0 only
  r.push(rec("detcon", "linear", 0, { miou: 0.1, miou_se: 0.02 }), rec("detcon", "linear", 2, { miou: 0.1 }));
  r.push(rec("moco", "linear", 0, { miou: 0.1, miou_se: 0.02 }));
  // detect: a strict order at every seed, for both metrics
  const base = { plrc: 0.4, detcon: 0.3, moco: 0.2, random: 0.1 };
  for (const [m, v] of Object.entries(base)) {
    for (const s of [0, 1, 2]) r.push(rec(m, "detect", s, { ap: v + s / 100, ap50: 2 * v + s / 100 }));
  }
  const diffs = pairedDifferences(r, ["knn", "linear", "detect"], "grid");
  const get = (a: string, b: string, v: string, m: string) =>
    diffs.find((d) => d.a === a && d.b === b && d.variant === v && d.metric === m)!;

  const pr = get("plrc", "random", "knn", "accuracy");
  assert.deepEqual(pr.seeds, [0, 1, 2]);
  assert.ok(Math.abs(pr.mean - 0.11) < 1e-12 && Math.abs(pr.std - 0.01) < 1e-12);
  assert.ok(Math.abs(pr.seedError! - (4.303 * 0.01) / Math.sqrt(3)) < 1e-12);
  assert.equal(pr.testError, null);
  assert.equal(pr.verdict, ">");
  assert.equal(get("detcon", "moco", "knn", "accuracy").verdict, "<");
  assert.equal(get("moco", "random", "knn", "accuracy").verdict, "≈");
  // 2 points at every seed (no seed spread), but 2 · √(2² + 2²) = 5.7 points of test-set error: within it
  const lin = get("plrc", "random", "linear", "miou");
  assert.ok(Math.abs(lin.mean - 0.02) < 1e-12 && lin.seedError! < 1e-9);
  assert.ok(Math.abs(lin.testError! - 2 * Math.sqrt(0.02 ** 2 + 0.02 ** 2)) < 1e-12);
  assert.equal(lin.verdict, "≈");
  // the same records without their errors: beyond it
  const bare = r.map((x) => x.job.variant === "linear" ? { ...x, result: { miou: x.result.miou as number } } : x);
  assert.equal(
    pairedDifferences(bare, ["linear"], "grid").find((d) => d.a === "plrc" && d.b === "random")!.verdict,
    ">",
  );
  // pairing: only the seeds both have; one record without an error leaves the test term unknown
  const pd = get("plrc", "detcon", "linear", "miou");
  assert.deepEqual(pd.seeds, [0, 2]);
  assert.deepEqual(pd.values.map((v) => Math.round(v * 1000)), [100, 120]);
  assert.equal(pd.testError, null);
  // one seed: no verdict
  const pm = get("plrc", "moco", "linear", "miou");
  assert.equal(pm.n, 1);
  assert.equal(pm.error, null);
  assert.equal(pm.verdict, "?");
  // no control runs: no such pair; other regions: nothing
  assert.ok(!diffs.some((d) => d.b === NO_DISTILL));
  assert.deepEqual(pairedDifferences(r, ["knn"], "gt"), []);

  const table = pairedTable(diffs, ["knn", "linear", "detect"]);
  const rows = table.split("\n");
  assert.equal(
    rows[0],
    "| a − b | knn accuracy (points) | linear miou (points) | detect ap (points) | detect ap50 (points) |",
  );
  assert.deepEqual(rows.slice(2).map((l) => l.split(" |")[0]), [
    "| plrc − random",
    "| plrc − moco",
    "| plrc − detcon",
    "| detcon − moco",
    "| moco − random",
  ]);
  assert.match(
    table,
    /^\| plrc − random \| \+11\.0 ± 1\.0 \(n=3\) > \| \+2\.0 ± 0\.0 \(n=3\) ≈ \| \+30\.0 ± 0\.0 \(n=3\) > \|/m,
  );
  assert.match(table, /^\| detcon − moco \| −5\.0 ± 0\.0 \(n=3\) < \| \+0\.0 ± 0\.0 \(n=1\) \? \|/m);
  assert.match(table, /^\| plrc − moco \| [^|]+\| \+10\.0 ± 0\.0 \(n=1\) \? \|/m);
  assert.deepEqual(orderingLines(diffs, ["knn", "linear", "detect"]), [
    "- knn: accuracy does not (plrc > detcon, detcon < moco, moco ≈ random)",
    "- linear: miou does not (plrc ≈ detcon, detcon ? moco, moco ? random)",
    "- detect: ap holds; ap50 holds",
  ]);
  // one seed of the strict order: no verdict either way
  const one = pairedDifferences(r.filter((x) => x.job.seed === 0), ["detect"], "grid");
  assert.deepEqual(orderingLines(one, ["detect"]), [
    "- detect: ap cannot tell (plrc ? detcon, detcon ? moco, moco ? random); ap50 cannot tell (plrc ? detcon, " +
    "detcon ? moco, moco ? random)",
  ]);
});

/** The committed medium comparison's records, with its distillation control's plrc runs as plrc-nodistill. */
async function committedMedium(): Promise<{ main: EvalRecord[]; control: EvalRecord[] }> {
  const main = JSON.parse(await Deno.readTextFile(`${MEDIUM}results.json`)).records as EvalRecord[];
  const ctl = JSON.parse(await Deno.readTextFile(`${MEDIUM}no-distill/results.json`)).records as EvalRecord[];
  const control = ctl.filter((r) => r.job.method === "plrc").map((r) => {
    const run = r.job.run!.replace(/^plrc-/, `${NO_DISTILL}-`);
    return { ...r, job: { ...r.job, run, method: NO_DISTILL, name: `${run}.${r.job.protocol}` } };
  });
  return { main, control };
}

Deno.test("committed medium records (no variant field) aggregate and pair as their protocols", async () => {
  const { main, control } = await committedMedium();
  assert.ok(main.every((r) => r.job.variant === undefined && ["linear", "knn", "detect"].includes(r.job.protocol)));
  const size = SIZES.medium;
  const table = mainTable(aggregate(main), size);
  // the committed table's numbers, in the columns of the variants; the variants not run yet show –
  assert.match(
    table,
    /^\| plrc \| 32\.3 ± 1\.6 \(n=3\) \| 16\.2 ± 0\.6 \(n=3\) \| – \| 6\.6 ± 1\.1 \(n=3\) \| 20\.3 ± 2\.1 \(n=3\) \| – \| – \| – \| – \|$/m,
  );
  assert.match(table, /^\| random \| 25\.4 ± 2\.6 \(n=3\) \| 15\.2 ± 0\.9 \(n=3\) \|/m);
  const diffs = pairedDifferences([...main, ...control], size.protocols, "grid");
  // plrc − random under k-NN, recomputed from the raw results
  const acc = (m: string, s: number) =>
    main.find((r) =>
      r.job.method === m && r.job.seed === s &&
      r.job.protocol === "knn" && r.job.regions === "grid"
    )!.result.accuracy as number;
  const pr = diffs.find((d) => d.a === "plrc" && d.b === "random" && d.variant === "knn")!;
  assert.deepEqual(pr.values, [0, 1, 2].map((s) => acc("plrc", s) - acc("random", s)));
  // with / without distillation per seed: 30.5 / 31.1, 33.5 / 30.7, 32.8 / 30.8 (k-NN %)
  const nd = diffs.find((d) => d.a === "plrc" && d.b === NO_DISTILL && d.variant === "knn")!;
  assert.deepEqual(nd.values.map((v) => Math.round(1000 * v) / 10), [-0.6, 2.8, 1.9]);
  assert.equal(nd.verdict, "≈");
  assert.match(pairedTable(diffs, size.protocols), /^\| plrc − plrc-nodistill \| \+1\.4 ± 1\.8 \(n=3\) ≈ \|/m);
  // no variant column for linear-ml or the detect variants: those pairs are absent, not zero
  assert.ok(!diffs.some((d) => d.variant !== "knn" && d.variant !== "linear" && d.variant !== "detect"));
  assert.equal(orderingLines(diffs, size.protocols).length, 3);
});

Deno.test({
  name: "plrc compare --report on the committed medium records: tables, paired differences, JSON and chart",
  sanitizeResources: false,
  fn: async () => {
    const out = await Deno.makeTempDir({ prefix: "plrc-compare-report-" });
    try {
      const { main, control } = await committedMedium();
      await Deno.mkdir(`${out}/evals`, { recursive: true });
      for (const r of [...main, ...control]) {
        await Deno.writeTextFile(`${out}/evals/${r.job.name}.json`, JSON.stringify(r));
      }
      const r = await compare(["--size", "medium", "--out", out, "--report"]);
      assert.equal(r.code, 0, r.text);
      const table = await Deno.readTextFile(`${out}/table.md`);
      assert.match(table, /0 of the 24 pre-training runs and 57 of the 114 evaluations are done/);
      assert.match(table, /^\| plrc-nodistill \| \d+\.\d ± \d+\.\d \(n=3\) \|/m);
      assert.match(table, /^Paired differences \(a − b per seed/m);
      assert.match(table, /^\| plrc − plrc-nodistill \| \+1\.4 ± 1\.8 \(n=3\) ≈ \|/m);
      assert.match(table, /^- knn: accuracy (holds|does not)/m);
      const results = JSON.parse(await Deno.readTextFile(`${out}/results.json`));
      assert.deepEqual(results.methods, [...METHODS, NO_DISTILL]);
      assert.deepEqual(results.protocols.map((p: { name: string }) => p.name), SIZES.medium.protocols);
      // 6 pairs × (knn, linear, detect ap, detect ap50): the variants without records have none
      assert.equal(results.pairedDifferences.length, 6 * 4);
      assert.equal(results.missing.length, 114 - 57);
      assert.ok((await Deno.stat(`${out}/chart.png`)).size > 1000);

      // --protocols picks variants; bad names and both control flags exit 2
      const plan = await compare(["--size", "medium", "--plan", "--protocols", "knn,detect-50", "--no-ablation"]);
      assert.equal(plan.code, 0, plan.text);
      assert.equal(plan.text.split("\n").filter((l) => l.startsWith("eval ")).length, 5 * 3 * 2);
      assert.match(
        plan.text,
        /^eval plrc-nodistill-grid-s2\.detect-50: --ckpt plrc-nodistill-grid-s2 --protocol detect --train 50 /m,
      );
      const off = await compare(["--size", "medium", "--plan", "--no-distill-control", "--no-ablation"]);
      assert.doesNotMatch(off.text, /nodistill/);
      const on = await compare(["--size", "smoke", "--plan", "--distill-control", "--no-ablation"]);
      assert.match(on.text, /^pretrain plrc-nodistill-grid-s1: .*--set loss\.distill\.weight=0$/m);
      const bad = await compare(["--plan", "--protocols", "linear,segment"]);
      assert.equal(bad.code, 2, bad.text);
      assert.match(
        bad.text,
        /--protocols takes distinct names from knn, linear, linear-ml, detect, detect-50, detect-frozen; got "linear,segment"/,
      );
      const both = await compare(["--plan", "--distill-control", "--no-distill-control"]);
      assert.equal(both.code, 2, both.text);
    } finally {
      await Deno.remove(out, { recursive: true });
    }
  },
});
