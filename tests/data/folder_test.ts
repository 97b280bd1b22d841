/** Folder scanning, the skip report and loading a mixed folder without crashing. */
import assert from "node:assert/strict";
import { formatSkipReport, hasImageExtension, scanFolder, type Skipped } from "../../src/data/folder.ts";
import { WorkerPool } from "../../src/data/pool.ts";
import { writeMixedFolder } from "./helpers.ts";

Deno.test("scanFolder finds JPEG/PNG recursively in sorted order, skips dot-folders, lists other files", async () => {
  const dir = await Deno.makeTempDir();
  try {
    const { good, bad } = await writeMixedFolder(dir);
    const scan = await scanFolder(dir);
    const imageCandidates = [...good, "broken.jpg", "notes.jpg", "empty.png"].sort();
    assert.deepEqual(scan.images, imageCandidates);
    assert.deepEqual(scan.skipped, [{ path: "readme.txt", reason: "not a .jpg/.jpeg/.png file" }]);
    assert.ok(bad["readme.txt"].test(scan.skipped[0].reason));
    const excluded = await scanFolder(dir, [`${dir}/sub`]);
    assert.deepEqual(excluded.images, ["a.jpg", "broken.jpg", "empty.png", "notes.jpg"]);
    assert.ok(hasImageExtension("X.JPEG") && hasImageExtension("y.jpe") && !hasImageExtension("z.gif"));
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("loading a mixed folder uses the good files and names every bad one with its reason", async () => {
  const dir = await Deno.makeTempDir();
  const pool = new WorkerPool(0);
  try {
    const { good, bad } = await writeMixedFolder(dir);
    const scan = await scanFolder(dir);
    const used: string[] = [], skipped: Skipped[] = [...scan.skipped];
    for await (const r of pool.map(scan.images.map((rel) => ({ kind: "load" as const, root: dir, rel, opts: {} })))) {
      if (r.ok) used.push(r.rel);
      else skipped.push({ path: r.rel, reason: r.reason });
    }
    assert.deepEqual(used, [...good].sort());
    assert.deepEqual(skipped.map((s) => s.path).sort(), Object.keys(bad).sort());
    for (const s of skipped) assert.match(s.reason, bad[s.path], s.path);
    const text = formatSkipReport({ seen: scan.images.length + scan.skipped.length, used: used.length, skipped });
    assert.match(text, /^3 images used, 4 files skipped \(7 seen\)/);
    for (const path of Object.keys(bad)) assert.ok(text.includes(`skipped ${path}: `), path);
    assert.match(formatSkipReport({ seen: 7, used: 3, skipped }, 2), /\.\.\. and 2 more$/);
  } finally {
    pool.close();
    await Deno.remove(dir, { recursive: true });
  }
});
