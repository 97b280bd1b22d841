/** `plrc masks` end to end (as a subprocess): a folder with a corrupt JPEG and a text file completes and names both. */
import assert from "node:assert/strict";
import { join } from "node:path";
import { masksCommand } from "../../src/cli/masks.ts";
import { UsageError } from "../../src/cli/usage.ts";
import { readLabelMapPng } from "../../src/data/labelmap_png.ts";
import { loadImage } from "../../src/data/cache.ts";
import { felzenszwalb } from "../../src/data/felzenszwalb.ts";
import { writeMixedFolder } from "./helpers.ts";

const MASKS = new URL("../../src/cli/masks.ts", import.meta.url).href;
const USAGE = new URL("../../src/cli/usage.ts", import.meta.url).href;

async function masks(args: string[]) {
  const code = `import { masksCommand } from "${MASKS}"; import { UsageError } from "${USAGE}";
    try { Deno.exit(await masksCommand(JSON.parse(Deno.env.get("PLRC_ARGS")))); }
    catch (e) { if (e instanceof UsageError) { console.error(e.message); Deno.exit(2); } throw e; }`;
  const out = await new Deno.Command(Deno.execPath(), {
    args: ["eval", "--ext=ts", code],
    env: { PLRC_ARGS: JSON.stringify(args) },
    stdout: "piped",
    stderr: "piped",
  }).output();
  const dec = new TextDecoder();
  return { code: out.code, stdout: dec.decode(out.stdout), stderr: dec.decode(out.stderr) };
}

Deno.test("plrc masks --json: computes masks, then reuses them; corrupt JPEG and text file are named", async () => {
  const dir = await Deno.makeTempDir();
  try {
    const { good, bad } = await writeMixedFolder(dir);
    const out = join(dir, "out-masks");
    const args = ["--data", dir, "--out", out, "--min-size", "20", "--workers", "2", "--json"];
    const r = await masks(args);
    assert.equal(r.code, 0, r.stderr);
    const rep = JSON.parse(r.stdout);
    assert.deepEqual([rep.images, rep.computed, rep.reused, rep.workers], [3, 3, 0, 2]);
    assert.deepEqual(rep.skipped.map((s: { path: string }) => s.path), Object.keys(bad).sort());
    for (const s of rep.skipped) assert.match(s.reason, bad[s.path]);
    // each mask equals FH run on the cached image with the same parameters
    for (const rel of good) {
      const { map, meta } = await readLabelMapPng(join(out, `${rel}.png`));
      const img = await loadImage(dir, rel, { cacheDir: join(dir, ".plrc", "cache") });
      assert.ok(img.ok);
      const want = felzenszwalb(img.image, { scale: 1000, sigma: 0.8, minSize: 20 });
      assert.deepEqual(map, want, rel);
      assert.equal((meta as { regions: number }).regions, new Set(want.data).size);
    }
    const again = JSON.parse((await masks(args)).stdout);
    assert.deepEqual([again.computed, again.reused], [0, 3]);
    // changed parameters recompute
    const k = JSON.parse((await masks([...args, "--scale", "300"])).stdout);
    assert.deepEqual([k.computed, k.reused, k.scale], [3, 0, 300]);
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("plrc masks text output names skipped files; the default min size is 466 at short side 256", async () => {
  const dir = await Deno.makeTempDir();
  try {
    await writeMixedFolder(dir);
    const r = await masks(["--data", dir, "--workers", "0"]);
    assert.equal(r.code, 0, r.stderr);
    assert.match(r.stdout, /fh k=1000 σ=0\.8 min size 466, short side ≤ 256/);
    assert.match(r.stdout, /3 images used, 4 files skipped \(7 seen\)/);
    assert.match(r.stdout, /skipped broken\.jpg: truncated JPEG/);
    assert.match(r.stdout, /skipped readme\.txt: not a \.jpg/);
    const st = await Deno.stat(join(dir, ".plrc", "masks-fh", "a.jpg.png"));
    assert.ok(st.isFile);
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("plrc masks usage errors: missing --data, bad numbers, unknown method, missing folder, --help", async () => {
  await assert.rejects(masksCommand([]), (e) => e instanceof UsageError && /--data DIR is required/.test(e.message));
  await assert.rejects(masksCommand(["--data", "x", "--scale=-1"]), /--scale must be a positive number/);
  await assert.rejects(masksCommand(["--data", "x", "--min-size", "2.5"]), /--min-size must be an integer/);
  await assert.rejects(masksCommand(["--data", "x", "--method", "slic"]), /unknown --method "slic"; allowed: fh/);
  await assert.rejects(masksCommand(["--data", "/nonexistent/plrc"]), UsageError);
  await assert.rejects(masksCommand(["--bogus"]), /bogus/);
  const r = await masks(["--help"]);
  assert.equal(r.code, 0);
  assert.match(r.stdout, /^plrc masks --data DIR/);
});

Deno.test("plrc masks on a folder with no usable image fails with exit code 1", async () => {
  const dir = await Deno.makeTempDir();
  try {
    await Deno.writeTextFile(join(dir, "x.jpg"), "nope");
    const r = await masks(["--data", dir, "--workers", "0", "--json"]);
    assert.equal(r.code, 1);
    assert.match(r.stderr, /no usable images/);
    assert.equal(JSON.parse(r.stdout).skipped[0].path, "x.jpg");
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});
