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
