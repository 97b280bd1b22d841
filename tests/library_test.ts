/**
 * The library imports from outside the repository: a script in another folder (no deno.json of its own, so
 * none of this repository's import map) imports mod.ts by path and uses it, with npm packages named in full.
 */
import assert from "node:assert/strict";

Deno.test("mod.ts imports from a script outside the repository", async () => {
  const dir = await Deno.makeTempDir();
  try {
    const mod = new URL("../mod.ts", import.meta.url).href;
    await Deno.writeTextFile(
      `${dir}/main.ts`,
      // importing mod.ts loads its whole module graph, yaml and imagescript included
      `import { decodeImage, loadEncoder, VERSION } from "${mod}";\n` +
        `console.log(VERSION, typeof decodeImage, typeof loadEncoder);\n`,
    );
    const out = await new Deno.Command(Deno.execPath(), { args: ["run", "-A", "main.ts"], cwd: dir }).output();
    const text = new TextDecoder().decode(out.stdout) + new TextDecoder().decode(out.stderr);
    assert.equal(out.code, 0, text);
    assert.match(text, /^\d+\.\d+\.\d+ function function$/m);
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("a deno bench file in another project, with its own deno.json, benchmarks a plrc kernel through mod.ts", async () => {
  const dir = await Deno.makeTempDir();
  try {
    // an import map of its own, which plrc's bare specifiers must not need
    await Deno.writeTextFile(
      `${dir}/deno.json`,
      JSON.stringify({ imports: { "plrc/": new URL("../", import.meta.url).href } }),
    );
    // the README's example (Library), with this repository's path for "plrc/"
    await Deno.writeTextFile(
      `${dir}/gemm_bench.ts`,
      `import { getGpu, matmul, Recorder, sync, Tensor } from "plrc/mod.ts";

const gpu = await getGpu();
const n = 256;
const a = Tensor.from(gpu, [n, n], new Float32Array(n * n).fill(1));
const b = Tensor.from(gpu, [n, n], new Float32Array(n * n).fill(1));
const c = Tensor.empty(gpu, [n, n]);
const gemm = await matmul(gpu, a, b, c, n, n, n);

Deno.bench(\`plrc GEMM \${n}³\`, async () => {
  new Recorder(gpu).run(gemm).submit();
  await sync(gpu);
});
`,
    );
    const out = await new Deno.Command(Deno.execPath(), { args: ["bench", "-A", "gemm_bench.ts"], cwd: dir }).output();
    const text = new TextDecoder().decode(out.stdout) + new TextDecoder().decode(out.stderr);
    assert.equal(out.code, 0, text);
    assert.match(text, /plrc GEMM 256³/);
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("a script that imports only mod.ts pre-trains two steps on the scenes and evaluates the checkpoint", async () => {
  const dir = await Deno.makeTempDir();
  try {
    const mod = new URL("../mod.ts", import.meta.url).href;
    // the same calls as mod.ts's example, with the results printed as JSON for the checks below
    await Deno.writeTextFile(
      `${dir}/pretrain.ts`,
      `import {
  dataConfigOf,
  getGpu,
  heldOutScenes,
  knnEval,
  loadEncoder,
  makePlan,
  regionModeOf,
  resolveConfig,
  scenesSource,
  train,
} from "${mod}";

const gpu = await getGpu();
const cfg = resolveConfig({ sets: ["preset=cpu-tiny", "train.maxSteps=2", "data.workers=0"] });
const plan = makePlan(cfg, scenesSource(cfg.data.scenes, regionModeOf(cfg)), "${dir}/run", { quiet: true });
const lines: string[] = [];
const result = await train(gpu, plan, (line) => lines.push(line));

const { store, encoder, prefix } = await loadEncoder(gpu, result.checkpoint);
const images = heldOutScenes(cfg.data.scenes, cfg.data.resolution, 12).images;
const { mean, std } = dataConfigOf(cfg);
const knn = await knnEval(gpu, store, encoder.backbone, images.slice(0, 8), images.slice(8), { prefix, mean, std });
console.log(JSON.stringify({ result, knn, totalSteps: plan.totalSteps, logged: lines.length }));
`,
    );
    const out = await new Deno.Command(Deno.execPath(), { args: ["run", "-A", "pretrain.ts"], cwd: dir }).output();
    const text = new TextDecoder().decode(out.stdout) + new TextDecoder().decode(out.stderr);
    assert.equal(out.code, 0, text);
    const json = text.split("\n").find((l) => l.startsWith('{"result"'));
    assert.ok(json, text);
    const { result, knn, totalSteps } = JSON.parse(json);
    assert.equal(totalSteps, 2);
    assert.equal(result.steps, 2);
    assert.equal(result.stoppedBy, "done");
    assert.equal(result.checkpoint, `${dir}/run/checkpoints/last.safetensors`);
    assert.ok((await Deno.stat(result.checkpoint)).size > 100_000, "the checkpoint holds the encoders");
    // two metric records, each with a finite loss
    const records = (await Deno.readTextFile(`${dir}/run/metrics.jsonl`)).trim().split("\n").map((l) => JSON.parse(l));
    assert.deepEqual(records.map((r) => r.step), [0, 1]);
    for (const r of records) assert.ok(Number.isFinite(r.loss) && r.loss > 0, `loss ${r.loss}`);
    // the k-NN evaluation of the saved backbone: 8 bank images, 4 scored, regions found in both
    assert.equal(knn.protocol, "knn");
    assert.equal(knn.train_images, 8);
    assert.equal(knn.test_images, 4);
    assert.ok(knn.trainRegions > 0 && knn.testRegions > 0, JSON.stringify(knn));
    assert.ok(knn.accuracy >= 0 && knn.accuracy <= 1 && Number.isFinite(knn.accuracy_se), JSON.stringify(knn));
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("the README's scripting example is mod.ts's @example (which deno task test:doc runs)", async () => {
  const mod = await Deno.readTextFile(new URL("../mod.ts", import.meta.url));
  const readme = await Deno.readTextFile(new URL("../README.md", import.meta.url));
  const example = mod.match(/ \* @example [^\n]*\n \* ```ts\n([\s\S]*?) \* ```\n/);
  assert.ok(example, "mod.ts has an @example with a ts block");
  const code = example[1].split("\n").map((l) => l.replace(/^ \* ?/, "")).join("\n");
  assert.match(code, /train\(gpu, plan/);
  const library = readme.slice(readme.indexOf("## Library"));
  assert.ok(library.includes("```ts\n" + code + "```\n"), "README's Library section shows mod.ts's example");
});
