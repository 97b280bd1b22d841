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
