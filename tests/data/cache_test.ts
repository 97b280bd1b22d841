/** Area downscaling, nearest label resize, and the decode cache (hits, invalidation, cached failures, atomic writes). */
import assert from "node:assert/strict";
import { join } from "node:path";
import { cacheEntryPath, loadImage } from "../../src/data/cache.ts";
import { encodePng } from "../../src/data/png.ts";
import { fitShortSide, resizeArea, resizeNearest } from "../../src/data/resize.ts";
import { Rng } from "../../src/util/rng.ts";
import { jpegOf, testPicture } from "./helpers.ts";

Deno.test("resizeArea averages exact pixel areas (2:1 blocks and 3:2 fractional overlaps)", () => {
  const grey = (w: number, h: number, v: number[]) => ({
    width: w,
    height: h,
    data: Uint8Array.from(v.flatMap((x) => [x, x, x])),
  });
  const a = resizeArea(grey(4, 2, [0, 10, 20, 30, 40, 50, 60, 70]), 2, 1);
  assert.deepEqual(Array.from(a.data), [25, 25, 25, 45, 45, 45]); // (0+10+40+50)/4, (20+30+60+70)/4
  const b = resizeArea(grey(3, 1, [0, 90, 180]), 2, 1);
  assert.deepEqual(Array.from(b.data), [30, 30, 30, 150, 150, 150]); // (0 + 0.5·90)/1.5, (0.5·90 + 180)/1.5
  // a uniform image stays uniform at any ratio (weights sum to 1)
  const u = resizeArea(grey(37, 23, Array(37 * 23).fill(201)), 11, 7);
  assert.ok(u.data.every((v) => v === 201));
  assert.deepEqual(fitShortSide(600, 400, 256), { width: 384, height: 256 });
  assert.deepEqual(fitShortSide(300, 1000, 256), { width: 256, height: 853 });
  assert.deepEqual(fitShortSide(200, 100, 256), { width: 200, height: 100 });
});

Deno.test("resizeNearest samples source pixel centres", () => {
  const m = { width: 4, height: 2, data: Int32Array.from([1, 2, 3, 4, 5, 6, 7, 8]) };
  assert.deepEqual(Array.from(resizeNearest(m, 2, 1).data), [6, 8]);
  assert.deepEqual(Array.from(resizeNearest(m, 8, 2).data), [1, 1, 2, 2, 3, 3, 4, 4, 5, 5, 6, 6, 7, 7, 8, 8]);
});

Deno.test("the decode cache: miss then identical hit, short side capped, size/mtime change invalidates", async () => {
  const dir = await Deno.makeTempDir(), cache = join(dir, ".cache");
  try {
    const rng = new Rng(5), samples = Uint8Array.from({ length: 600 * 400 * 3 }, () => rng.int(256));
    await Deno.writeFile(join(dir, "big.png"), encodePng({ width: 600, height: 400, channels: 3, depth: 8, samples }));
    const first = await loadImage(dir, "big.png", { cacheDir: cache });
    assert.ok(first.ok && !first.fromCache);
    assert.deepEqual([first.image.width, first.image.height], [384, 256]);
    const uncached = await loadImage(dir, "big.png", {});
    assert.ok(uncached.ok);
    const second = await loadImage(dir, "big.png", { cacheDir: cache });
    assert.ok(second.ok && second.fromCache);
    assert.deepEqual(second.image.data, first.image.data);
    assert.deepEqual(uncached.image.data, first.image.data);
    // a different short-side limit is a different entry
    const small = await loadImage(dir, "big.png", { cacheDir: cache, maxShort: 64 });
    assert.ok(small.ok && !small.fromCache && small.image.height === 64 && small.image.width === 96);
    // replace the source (same name, different content and mtime): the entry is stale
    await Deno.writeFile(join(dir, "big.png"), await jpegOf(testPicture(300, 200)));
    await Deno.utime(join(dir, "big.png"), 1_000_000, 1_000_000);
    const third = await loadImage(dir, "big.png", { cacheDir: cache });
    assert.ok(third.ok && !third.fromCache);
    assert.deepEqual([third.image.width, third.image.height], [300, 200]);
    const fourth = await loadImage(dir, "big.png", { cacheDir: cache });
    assert.ok(fourth.ok && fourth.fromCache);
    assert.deepEqual(fourth.image.data, third.image.data);
    // same size, only mtime changed: still invalidated
    await Deno.utime(join(dir, "big.png"), 2_000_000, 2_000_000);
    const fifth = await loadImage(dir, "big.png", { cacheDir: cache });
    assert.ok(fifth.ok && !fifth.fromCache);
    // no temporary files are left behind
    const names: string[] = [];
    for await (const e of Deno.readDir(join(cache, "s256", cacheEntryPath(cache, "big.png", 256).split("/").at(-2)!))) {
      names.push(e.name);
    }
    assert.deepEqual(names, [cacheEntryPath(cache, "big.png", 256).split("/").at(-1)]);
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("the decode cache remembers failures and treats a damaged entry as a miss", async () => {
  const dir = await Deno.makeTempDir(), cache = join(dir, ".cache");
  try {
    const jpg = await jpegOf(testPicture(64, 48));
    await Deno.writeFile(join(dir, "cut.jpg"), jpg.subarray(0, 500));
    const a = await loadImage(dir, "cut.jpg", { cacheDir: cache });
    const b = await loadImage(dir, "cut.jpg", { cacheDir: cache });
    assert.ok(!a.ok && !a.fromCache && !b.ok && b.fromCache);
    assert.match(b.reason, /truncated JPEG/);
    assert.equal(b.reason, a.reason);
    await Deno.writeFile(join(dir, "ok.jpg"), jpg);
    const good = await loadImage(dir, "ok.jpg", { cacheDir: cache });
    const entry = cacheEntryPath(cache, "ok.jpg", 256), bytes = await Deno.readFile(entry);
    await Deno.writeFile(entry, bytes.subarray(0, bytes.length - 7));
    const again = await loadImage(dir, "ok.jpg", { cacheDir: cache });
    assert.ok(good.ok && again.ok && !again.fromCache);
    assert.deepEqual(again.image.data, good.image.data);
    assert.equal((await Deno.readFile(entry)).length, bytes.length);
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});
