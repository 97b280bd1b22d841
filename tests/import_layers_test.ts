/** The import-direction check (tools/check_imports.ts): the real tree passes; a synthetic tree's faults are named. */
import assert from "node:assert/strict";
import { join } from "node:path";
import { checkImports, deepImports, formatLayers, isDoor, layerOf, relativeImports } from "../tools/check_imports.ts";

const ROOT = new URL("..", import.meta.url).pathname;

Deno.test("imports: the source tree only imports down the layer table and has no import circle", async () => {
  const report = await checkImports(ROOT);
  assert.deepEqual(report.upward, []);
  assert.deepEqual(report.cycles, []);
  assert.deepEqual(report.problems, []);
  assert.deepEqual(report.deep, []);
  assert.ok(report.files.length > 100, `${report.files.length} files`);
  assert.ok(report.edges.length > 400, `${report.edges.length} imports`);
  // every layer holds files, and the table prints one row per layer
  for (const [name, n] of report.counts) assert.ok(n > 0, `layer ${name} is empty`);
  assert.equal(formatLayers(report).split("\n").length, report.counts.size + 1);
});

Deno.test("imports: an upward import and a cycle in a synthetic tree are both reported", async () => {
  const dir = await Deno.makeTempDir();
  try {
    const write = async (path: string, text: string) => {
      await Deno.mkdir(join(dir, path, ".."), { recursive: true });
      await Deno.writeTextFile(join(dir, path), text);
    };
    // util imports train: upward
    await write("src/util/a.ts", 'import { t } from "../train/t.ts";\nexport const a = t;\n');
    await write("src/train/t.ts", "export const t = 1;\n");
    // a data circle through a worker URL and a dynamic import; a commented import is not an import
    await write("src/data/p.ts", 'export const url = new URL("./w.ts", import.meta.url).href;\n');
    await write("src/data/w.ts", 'export const q = () => import("./q.ts");\n// import "./t.ts";\n');
    await write("src/data/q.ts", 'export type { X } from "./p.ts";\nexport type X = number;\n');
    await write("cli.ts", 'import "./src/util/a.ts";\n');
    const report = await checkImports(dir);
    assert.deepEqual(report.upward, ["src/util/a.ts -> src/train/t.ts (layer util imports higher layer train)"]);
    assert.deepEqual(report.cycles, [["src/data/p.ts", "src/data/w.ts", "src/data/q.ts", "src/data/p.ts"]]);
    assert.deepEqual(report.problems, []);
    const cli = await new Deno.Command(Deno.execPath(), {
      args: ["run", "-A", new URL("../tools/check_imports.ts", import.meta.url).pathname, dir],
      stdout: "piped",
      stderr: "piped",
    }).output();
    assert.equal(cli.code, 1);
    const err = new TextDecoder().decode(cli.stderr);
    assert.match(err, /upward import: src\/util\/a\.ts -> src\/train\/t\.ts/);
    assert.match(err, /import cycle: src\/data\/p\.ts -> src\/data\/w\.ts -> src\/data\/q\.ts -> src\/data\/p\.ts/);
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("imports: specifiers in strings count, those in comments do not; layers go by the longest prefix", () => {
  const src = [
    'import { a } from "./a.ts";',
    "import type {",
    "  B,",
    '} from "../b.ts";',
    'export * from "./c.ts";',
    "/* import { d } from './d.ts'; */",
    'const w = new Worker(new URL("./w.ts", import.meta.url), { type: "module" });',
    'const t = `${await import("./e.ts")}`;',
    'const s = "https://example.com/x.ts"; // import "./f.ts"',
  ].join("\n");
  assert.deepEqual(relativeImports(src).sort(), ["../b.ts", "./a.ts", "./c.ts", "./e.ts", "./w.ts"]);
  assert.equal(layerOf("src/version.ts")?.name, "util");
  assert.equal(layerOf("src/kernels/wgsl/gemm.ts")?.name, "kernels");
  assert.equal(layerOf("src/train/config/schema.ts")?.name, "train");
  assert.equal(layerOf("tests/x_test.ts"), undefined);
});

Deno.test("imports: bench/ and tools/ reach the library only through mod.ts and the src/<area>/mod.ts doors", async () => {
  assert.ok(isDoor("mod.ts") && isDoor("src/train/mod.ts"));
  assert.ok(!isDoor("src/train/config/mod.ts") && !isDoor("src/train/plan.ts"));
  const dir = await Deno.makeTempDir();
  try {
    await Deno.mkdir(join(dir, "bench"));
    await Deno.mkdir(join(dir, "tools"));
    await Deno.writeTextFile(
      join(dir, "bench/a_bench.ts"),
      'import { makeBatch } from "../src/data/mod.ts";\nimport { getGpu } from "../mod.ts";\n' +
        'import { PlrcStep } from "../src/train/step.ts";\n',
    );
    await Deno.writeTextFile(join(dir, "tools/t.ts"), 'import { LAYERS } from "./check_imports.ts";\n');
    assert.deepEqual(await deepImports(dir), [
      "bench/a_bench.ts -> src/train/step.ts (use mod.ts or a src/<area>/mod.ts door)",
    ]);
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});
