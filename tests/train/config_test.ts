/** Configuration: schema defaults, presets, precedence, --set, validation messages, YAML round trip, docs. */
import assert from "node:assert/strict";
import { parse as parseYaml } from "yaml";
import { UsageError } from "../../src/cli/usage.ts";
import {
  CONFIG_PATHS,
  ConfigError,
  configToYaml,
  dataConfigOf,
  DEFAULTS,
  deriveConfig,
  generateConfigDoc,
  parseSet,
  type PlrcConfig,
  PRESET_NAMES,
  PRESETS,
  readConfigFile,
  resolveConfig,
  schedules,
  validateConfig,
} from "../../src/train/config/mod.ts";

/** The problems of a call that must fail with a ConfigError. */
function problems(f: () => unknown): string[] {
  try {
    f();
  } catch (e) {
    assert.ok(e instanceof ConfigError, `expected a ConfigError, got ${e}`);
    assert.ok(e instanceof UsageError, "a ConfigError is a UsageError (exit code 2)");
    return e.problems;
  }
  assert.fail("expected a ConfigError");
}

const clone = (c: PlrcConfig): PlrcConfig => structuredClone(c);

Deno.test("defaults are valid, complete and the paper's setting", () => {
  validateConfig(clone(DEFAULTS));
  assert.equal(DEFAULTS.preset, "cpu-tiny");
  assert.equal(DEFAULTS.model.depth, 50);
  assert.equal(DEFAULTS.data.resolution, 224);
  assert.equal(DEFAULTS.model.prototypes, 4096);
  assert.equal(DEFAULTS.loss.image.queue, 65536);
  assert.deepEqual(
    [DEFAULTS.loss.image.weight, DEFAULTS.loss.point.weight, DEFAULTS.loss.distill.weight],
    [0.7, 0.3, 0.3],
  );
  assert.equal(DEFAULTS.loss.distill.affinityScale, 1 / 128);
  assert.equal(DEFAULTS.ema.momentum, 0.999);
  assert.equal(DEFAULTS.model.bnGroup, 32);
  const d = deriveConfig(clone(DEFAULTS));
  assert.equal(d.maskSize, 56);
  assert.equal(d.featureSize, 7);
  assert.equal(d.c5, 2048);
  assert.equal(d.pointHidden, 2048);
  assert.equal(d.distillDim, 7232);
  assert.ok(Math.abs(d.lr - 0.03) < 1e-12);
  assert.equal(d.stepsPerEpoch, Math.floor(10000 / 256));
});

Deno.test("every preset resolves to a valid configuration, and the default is cpu-tiny", () => {
  for (const name of PRESET_NAMES) {
    const cfg = resolveConfig({ preset: name });
    assert.equal(cfg.preset, name);
    for (const [k, v] of Object.entries(PRESETS[name].values)) {
      assert.deepEqual(k.split(".").reduce((o: unknown, s) => (o as Record<string, unknown>)[s], cfg), v, k);
    }
    validateConfig(cfg);
    const d = deriveConfig(cfg);
    assert.ok(Number.isInteger(d.maskSize) && Number.isInteger(d.featureSize), name);
    dataConfigOf(cfg); // the data pipeline accepts it
  }
  const tiny = resolveConfig();
  assert.equal(tiny.preset, "cpu-tiny");
  assert.equal(tiny.model.depth, 18);
  assert.equal(tiny.model.width, 0.125);
  assert.equal(tiny.data.resolution, 64);
  assert.equal(tiny.train.batchSize, 8);
  assert.equal(tiny.model.prototypes, 64);
  assert.equal(tiny.loss.image.queue, 64);
  assert.ok(tiny.loss.image.queue < tiny.data.scenes.count, "the queue never holds two keys of one image");
  assert.equal(tiny.data.source, "scenes");
  assert.equal(deriveConfig(tiny).totalSteps, 128);
  const paper = resolveConfig({ preset: "paper" });
  assert.equal(paper.model.depth, 50);
  assert.equal(paper.train.epochs, 100);
  // the release's 8 GPUs × 32 images as 8 micro-batches of 32
  assert.equal(paper.train.accumulate, 8);
  assert.equal(deriveConfig(paper).bnGroup, 32);
});

Deno.test("precedence: defaults ← preset ← file ← --set ← overrides; the file may name the preset", () => {
  const file = { preset: "cpu-small", optim: { lr: 0.5, momentum: 0.8 }, train: { epochs: 3 } };
  const cfg = resolveConfig({
    preset: "paper",
    file,
    sets: ["optim.lr=0.25", "train.epochs=4", "train.epochs=5"],
    overrides: [{ path: "data.source", value: "/images", origin: "--data" }],
  });
  assert.equal(cfg.preset, "cpu-small"); // the file's preset beats the option
  assert.equal(cfg.model.width, 0.25); // from the preset
  assert.equal(cfg.optim.momentum, 0.8); // file over default
  assert.equal(cfg.optim.lr, 0.25); // --set over file
  assert.equal(cfg.train.epochs, 5); // the last --set wins
  assert.equal(cfg.data.source, "/images");
  assert.equal(cfg.optim.weightDecay, 1e-4); // untouched default
  // --set preset=... beats the file's preset, and is still applied before the file's keys
  const c2 = resolveConfig({ file, sets: ["preset=gpu-small"] });
  assert.equal(c2.preset, "gpu-small");
  assert.equal(c2.model.width, 0.5);
  assert.equal(c2.optim.lr, 0.5);
  // a file key beats the preset's value for it
  assert.equal(resolveConfig({ file: { preset: "cpu-tiny", train: { batchSize: 16 } } }).train.batchSize, 16);
  // null or empty file = no file
  assert.deepEqual(resolveConfig({ file: null }), resolveConfig());
});

Deno.test("--set parses numbers, booleans, strings, null, auto, sequences and nested keys", () => {
  assert.deepEqual(parseSet("optim.lr=0.1"), { path: "optim.lr", value: 0.1 });
  assert.deepEqual(parseSet("optim.weightDecay=1e-5"), { path: "optim.weightDecay", value: 1e-5 });
  assert.deepEqual(parseSet("train.batchSize=32"), { path: "train.batchSize", value: 32 });
  assert.deepEqual(parseSet("optim.nesterov=true"), { path: "optim.nesterov", value: true });
  assert.deepEqual(parseSet("method=moco"), { path: "method", value: "moco" });
  assert.deepEqual(parseSet("loss.distill.teacherWarmup=0.5"), { path: "loss.distill.teacherWarmup", value: 0.5 });
  assert.deepEqual(parseSet("train.maxSteps=null"), { path: "train.maxSteps", value: null });
  assert.deepEqual(parseSet("train.maxSteps=20"), { path: "train.maxSteps", value: 20 });
  assert.deepEqual(parseSet("data.workers=auto"), { path: "data.workers", value: "auto" });
  assert.deepEqual(parseSet("data.cropScale=[0.3, 0.9]"), { path: "data.cropScale", value: [0.3, 0.9] });
  assert.deepEqual(parseSet(" model.depth = 34 "), { path: "model.depth", value: 34 });
  // string keys take the text as is (a folder named 2024 stays a string); quotes are removed
  assert.deepEqual(parseSet("data.source=2024"), { path: "data.source", value: "2024" });
  assert.deepEqual(parseSet("data.source=/a b/c=d"), { path: "data.source", value: "/a b/c=d" });
  assert.deepEqual(parseSet(`data.source="quoted dir"`), { path: "data.source", value: "quoted dir" });
  assert.deepEqual(parseSet("data.regions.labelmaps=null"), { path: "data.regions.labelmaps", value: null });
  // bad syntax
  for (const bad of ["optim.lr", "=3", "optim..lr=1", "1x=2", "optim lr=1"]) {
    const [p] = problems(() => parseSet(bad));
    assert.match(p, /--set expects key\.path=value/, bad);
  }
  assert.match(problems(() => parseSet("optim.lr=[1, 2"))[0], /optim\.lr: cannot read/);
  // type-checked against the schema
  assert.match(problems(() => parseSet("optim.nesterov=yes"))[0], /optim\.nesterov: got "yes".*allowed: true or false/);
  assert.match(problems(() => parseSet("train.batchSize=1.5"))[0], /train\.batchSize: got 1\.5.*an integer ≥ 1/);
  assert.match(problems(() => parseSet("optim.lr={a: 1}"))[0], /optim\.lr: got/);
  assert.match(problems(() => parseSet("model=3"))[0], /model: is a section.*depth, width/);
  assert.match(
    problems(() => parseSet("optim.lR=3"))[0],
    /optim\.lR: unknown key \(from --set\); did you mean optim\.lr\?/,
  );
});

Deno.test("unknown keys are rejected with a suggestion, or the list of keys", () => {
  const ps = problems(() =>
    resolveConfig({
      fileName: "run.yaml",
      file: {
        train: { batch_size: 8, epocs: 2 },
        model: { dpeth: 18 },
        optimizer: { lr: 1 },
        lr: 0.1,
        zzzzzz: 1,
        data: { regions: { qqqqqqqq: 1 } },
      },
    })
  );
  const has = (re: RegExp) => assert.ok(ps.some((p) => re.test(p)), `${re} in\n${ps.join("\n")}`);
  has(/^train\.batch_size: unknown key \(from run\.yaml\); did you mean train\.batchSize\?/);
  has(/^train\.epocs: unknown key .*did you mean train\.epochs\?/);
  has(/^model\.dpeth: unknown key .*did you mean model\.depth\?/);
  has(/^optimizer: unknown key .*did you mean optim\?/);
  has(/^lr: unknown key .*did you mean optim\.lr\?/);
  has(/^zzzzzz: unknown key .*keys at the top level: preset, method, seed, model, data/);
  has(/^data\.regions\.qqqqqqqq: unknown key .*keys of data\.regions: source, labelmaps, grid/);
  assert.equal(ps.length, 7);
  // the same for a complete config checked on its own
  const cfg = clone(DEFAULTS) as unknown as Record<string, unknown>;
  (cfg.optim as Record<string, unknown>).learningRate = 1;
  assert.match(problems(() => validateConfig(cfg))[0], /optim\.learningRate: unknown key/);
});

Deno.test("wrong types, out-of-range and enum values name the key, the value and what is allowed", () => {
  const p1 = problems(() => resolveConfig({ sets: ["model.depth=20"] }));
  assert.deepEqual(p1, ["model.depth: got 20 (from --set); allowed: 18, 34, 50"]);
  assert.match(
    problems(() => resolveConfig({ file: { method: "simclr" }, fileName: "a.yaml" }))[0],
    /^method: got "simclr" \(from a\.yaml\); allowed: plrc, moco, detcon$/,
  );
  assert.match(
    problems(() => resolveConfig({ file: { optim: { lr: -1 } } }))[0],
    /^optim\.lr: got -1 .*allowed: a number > 0 and ≤ 10$/,
  );
  assert.match(
    problems(() => resolveConfig({ file: { optim: { momentum: 1 } } }))[0],
    /^optim\.momentum: got 1 .*allowed: a number ≥ 0 and < 1$/,
  );
  assert.match(
    problems(() => resolveConfig({ file: { train: { epochs: "ten" } } }))[0],
    /^train\.epochs: got "ten" .*allowed: an integer ≥ 1$/,
  );
  assert.match(
    problems(() => resolveConfig({ file: { data: { resolution: 100 } } }))[0],
    /^data\.resolution: got 100 .*a multiple of 32/,
  );
  // a reserved key whose feature is not built refuses to be turned on rather than doing nothing
  assert.match(
    problems(() => resolveConfig({ sets: ["device.f16Storage=true"] }))[0],
    /^device\.f16Storage: got true .*allowed: false \(f16 activation storage is not built yet/,
  );
  assert.match(
    problems(() => resolveConfig({ file: { data: { cropScale: [0.9, 0.2] } } }))[0],
    /^data\.cropScale: got \[0\.9,0\.2\] .*\[low, high\] with 0 < low ≤ high ≤ 1$/,
  );
  assert.match(problems(() => resolveConfig({ file: { model: 3 } }))[0], /^model: got 3 .*a mapping with keys depth/);
  assert.match(
    problems(() => resolveConfig({ file: { preset: "cpu_tiny" } }))[0],
    /^preset: got "cpu_tiny" .*allowed: paper, cpu-tiny, cpu-small, gpu-small$/,
  );
  assert.match(problems(() => resolveConfig({ file: [1, 2] }))[0], /must be a mapping/);
  // rules across keys
  assert.match(
    problems(() => resolveConfig({ sets: ["data.regions.source=labelmaps"] }))[0],
    /^data\.regions\.labelmaps: got null.*required when data\.regions\.source is labelmaps/,
  );
  assert.match(
    problems(() => resolveConfig({ sets: ["model.bnGroup=3"] }))[0],
    /^model\.bnGroup: got 3 .*a divisor of train\.batchSize \(8\)/,
  );
  assert.match(
    problems(() => resolveConfig({ sets: ["data.regions.count=17"] }))[0],
    /^data\.regions\.count: got 17 .*at most data\.regions\.grid² = 16/,
  );
  assert.match(problems(() => resolveConfig({ sets: ["loss.image.queue=4"] }))[0], /at least train\.batchSize/);
  resolveConfig({ sets: ["method=detcon", "loss.image.queue=4"] }); // no queue for detcon
  resolveConfig({ sets: ["model.bnGroup=64"] }); // one group
  // accumulation: micro-batches divide the batch, and BN groups divide the micro-batch
  assert.match(
    problems(() => resolveConfig({ sets: ["train.accumulate=3"] }))[0],
    /^train\.accumulate: got 3 .*a divisor of train\.batchSize \(8\)/,
  );
  assert.match(
    problems(() => resolveConfig({ sets: ["train.accumulate=2", "train.batchSize=12", "model.bnGroup=4"] }))[0],
    /^model\.bnGroup: got 4 .*a divisor of the micro-batch train\.batchSize \/ train\.accumulate \(6\)/,
  );
  const micro = resolveConfig({ sets: ["train.accumulate=2", "model.bnGroup=32"] });
  assert.equal(deriveConfig(micro).bnGroup, 4); // at most the micro-batch
  assert.equal(deriveConfig(micro).lr, deriveConfig(resolveConfig({})).lr); // the lr follows the whole batch
});

Deno.test("several problems from every layer are reported together", () => {
  let err: ConfigError | undefined;
  try {
    resolveConfig({
      fileName: "bad.yaml",
      file: { model: { depth: 20, widht: 1 }, optim: { lr: "fast" } },
      sets: ["train.batchSize=0", "nonsense", "schedule.lr=linear"],
    });
  } catch (e) {
    err = e as ConfigError;
  }
  assert.ok(err instanceof ConfigError);
  assert.equal(err.problems.length, 6, err.problems.join("\n"));
  assert.match(err.message, /^6 configuration errors:\n {2}/);
  for (const key of ["model.depth", "model.widht", "optim.lr", "train.batchSize", "nonsense", "schedule.lr"]) {
    assert.ok(err.message.includes(key), key);
  }
});

Deno.test("YAML round trip: save, load, same configuration", async () => {
  for (const name of PRESET_NAMES) {
    const cfg = resolveConfig({
      preset: name,
      sets: ["optim.weightDecay=1e-5", "data.cropScale=[0.25, 1]", "train.maxSteps=7", "data.regions.labelmaps=/m"],
    });
    const text = configToYaml(cfg);
    assert.match(text, /^# plrc .*resolved pre-training configuration/);
    assert.match(text, /cropScale: \[ 0\.25, 1 \]|cropScale: \[0\.25, 1\]/);
    assert.deepEqual(resolveConfig({ file: parseYaml(text) }), cfg);
    // saved keys are exactly the schema's, in order
    const flat: string[] = [];
    const walk = (o: Record<string, unknown>, pre: string) => {
      for (const [k, v] of Object.entries(o)) {
        if (v && typeof v === "object" && !Array.isArray(v)) walk(v as Record<string, unknown>, pre + k + ".");
        else flat.push(pre + k);
      }
    };
    walk(parseYaml(text), "");
    assert.deepEqual(flat, CONFIG_PATHS);
  }
  const dir = await Deno.makeTempDir();
  try {
    const path = `${dir}/config.yaml`;
    const cfg = resolveConfig({ preset: "cpu-small" });
    await Deno.writeTextFile(path, configToYaml(cfg));
    assert.deepEqual(resolveConfig({ file: await readConfigFile(path), fileName: path }), cfg);
    await Deno.writeTextFile(path, "a: [1\n");
    await assert.rejects(() => readConfigFile(path), /not valid YAML/);
    await Deno.writeTextFile(path, "- 1\n");
    await assert.rejects(() => readConfigFile(path), ConfigError);
    await assert.rejects(() => readConfigFile(`${dir}/missing.yaml`), /cannot read/);
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("derived values and schedules", () => {
  const cfg = resolveConfig({
    sets: [
      "schedule.warmup=0.25",
      "schedule.granularity=step",
      "ema.schedule=cosine",
      "ema.momentum=0.999",
      "train.maxSteps=5",
      "data.scenes.count=64",
      "train.epochs=2",
      "optim.lr=0.03",
      "optim.lrScaling=linear",
    ],
  });
  const d = deriveConfig(cfg, { cores: 2 });
  assert.equal(d.maskSize, 16);
  assert.equal(d.featureSize, 2);
  assert.equal(d.c5, 64);
  assert.ok(Math.abs(d.lr - 0.03 * 8 / 256) < 1e-15);
  assert.equal(d.bnGroup, 4);
  assert.equal(d.bnGroups, 2);
  assert.equal(d.workers, 1);
  assert.equal(deriveConfig(cfg, { cores: 32 }).workers, 15);
  assert.equal(deriveConfig(cfg, { cores: 1 }).workers, 0);
  assert.equal(d.stepsPerEpoch, 8);
  assert.equal(d.scheduleSteps, 16);
  assert.equal(d.totalSteps, 5);
  assert.equal(d.distillDim, 16 * 16 + 64);
  const s = schedules(cfg, d);
  assert.ok(Math.abs(s.lr(0) - d.lr / 4) < 1e-15); // warm-up over 4 steps
  assert.ok(Math.abs(s.lr(3) - d.lr) < 1e-15);
  assert.ok(s.lr(10) < s.lr(5));
  assert.ok(Math.abs(s.teacherTemperature(0) - 0.04) < 1e-12);
  assert.ok(Math.abs(s.teacherTemperature(15) - 0.07) < 1e-12);
  assert.equal(s.emaMomentum(0), 0.999);
  assert.ok(s.emaMomentum(15) > 0.9999);
  // folder sources need the dataset size for the step counts
  const folder = resolveConfig({ overrides: [{ path: "data.source", value: "/imgs", origin: "--data" }] });
  assert.equal(deriveConfig(folder).stepsPerEpoch, null);
  assert.equal(deriveConfig(folder, { datasetSize: 100 }).stepsPerEpoch, 12);
  // epoch granularity: constant within an epoch
  const e = resolveConfig({ sets: ["schedule.granularity=epoch", "data.scenes.count=64", "train.epochs=2"] });
  const se = schedules(e, deriveConfig(e));
  assert.equal(se.lr(8), se.lr(15));
  assert.ok(se.lr(8) < se.lr(7));
});

Deno.test("docs/config.md is generated from the schema and up to date", async () => {
  const doc = generateConfigDoc();
  for (const k of CONFIG_PATHS) assert.ok(doc.includes("`" + k + "`"), k);
  const onDisk = await Deno.readTextFile(new URL("../../docs/config.md", import.meta.url));
  assert.equal(
    onDisk,
    doc,
    "docs/config.md is stale: run `deno run -A src/train/config/doc.ts docs/config.md`",
  );
});

Deno.test("eval.knnEvery with a folder data.source needs eval.knnAnn", () => {
  assert.match(
    problems(() => resolveConfig({ sets: ["eval.knnEvery=10", "data.source=/d"] }))[0],
    /^eval\.knnAnn: got null; allowed: a COCO instances file when eval\.knnEvery > 0 with a folder data\.source/,
  );
  assert.equal(resolveConfig({ sets: ["eval.knnEvery=10"] }).eval.knnEvery, 10); // the scenes bring labels
  assert.equal(
    resolveConfig({ sets: ["eval.knnEvery=10", "data.source=/d", "eval.knnAnn=/a.json"] }).eval.knnAnn,
    "/a.json",
  );
});
