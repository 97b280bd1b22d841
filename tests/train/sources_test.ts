/**
 * Folder sources with region maps: user label maps (both naming conventions, any size of the image's
 * aspect, grey/palette/16-bit) are found and checked when the folder is scanned, and bad or missing ones
 * skip their image with a reason; FH maps are computed once into the masks folder `plrc masks` uses and
 * reused; the configuration refuses label maps without a folder.
 */
import assert from "node:assert/strict";
import { join } from "node:path";
import { felzenszwalb } from "../../src/data/felzenszwalb.ts";
import { type LabelMap, labelMap, type RgbImage } from "../../src/data/image.ts";
import { encodeLabelMapPng } from "../../src/data/labelmap_png.ts";
import { cacheEntryPath, loadImage } from "../../src/data/cache.ts";
import { encodePng } from "../../src/data/png.ts";
import { resizeNearest } from "../../src/data/resize.ts";
import { ConfigError, resolveConfig } from "../../src/train/config/mod.ts";
import { fhMasksDir, folderSource, labelMapCandidates } from "../../src/data/sources.ts";
import { regionModeOf } from "../../src/train/config/mod.ts";
import { freshSeed, Rng } from "../util.ts";

/** A W×H RGB PNG of noisy colour bands (so FH finds several regions). */
function imagePng(w: number, h: number, rng: Rng): Uint8Array {
  const s = new Uint8Array(w * h * 3);
  for (let y = 0; y < h; y++) {
    for (let x = 0; x < w; x++) {
      const band = Math.floor((x * 3) / w) + 3 * Math.floor((y * 2) / h), i = (y * w + x) * 3;
      s[i] = (band * 40 + rng.next() * 20) | 0, s[i + 1] = 255 - band * 30, s[i + 2] = (rng.next() * 255) | 0;
    }
  }
  return encodePng({ width: w, height: h, channels: 3, depth: 8, samples: s });
}

/** A random label map with labels 0..n (0 = no region) in blocks of 4 px. */
function randomMap(w: number, h: number, n: number, rng: Rng): LabelMap {
  const m = labelMap(w, h);
  for (let y = 0; y < h; y++) {
    for (let x = 0; x < w; x++) m.data[y * w + x] = ((x >> 2) * 7 + (y >> 2) * 3 + rng.int(2)) % (n + 1);
  }
  return m;
}

/** An 8-bit grey PNG of a map (the form a user's tool may write; 16-bit is what plrc writes). */
function grey8Png(m: LabelMap): Uint8Array {
  return encodePng({ width: m.width, height: m.height, channels: 1, depth: 8, samples: Uint8Array.from(m.data) });
}

Deno.test("label maps: found by both names at any size of the image's aspect; bad or missing ones skip the image", async () => {
  const seed = freshSeed(), rng = new Rng(seed), root = await Deno.makeTempDir();
  try {
    const data = join(root, "data"), maps = join(data, "labels"); // the maps folder inside the data folder
    await Deno.mkdir(join(data, "sub"), { recursive: true });
    await Deno.mkdir(join(maps, "sub"), { recursive: true });
    const W = 60, H = 40; // decoded at short side 32: 48×32
    const names = ["a.png", "sub/b.png", "c.png", "d.png", "e.png", "f.png", "g.png"];
    for (const n of names) await Deno.writeFile(join(data, n), imagePng(W, H, rng));
    const want = new Map<string, LabelMap>();
    // a: plrc's convention and 16-bit grey, at the original size
    want.set("a.png", randomMap(W, H, 300, rng));
    await Deno.writeFile(join(maps, "a.png.png"), encodeLabelMapPng(want.get("a.png")!));
    // sub/b: VOC's convention (extension replaced) and 8-bit grey, at half size
    want.set("sub/b.png", randomMap(W / 2, H / 2, 5, rng));
    await Deno.writeFile(join(maps, "sub/b.png"), grey8Png(want.get("sub/b.png")!));
    // c: exactly the decoded size
    want.set("c.png", randomMap(48, 32, 9, rng));
    await Deno.writeFile(join(maps, "c.png.png"), encodeLabelMapPng(want.get("c.png")!));
    // d: none; e: not a PNG; f: another aspect; g: no label above 0
    await Deno.writeFile(join(maps, "e.png.png"), new TextEncoder().encode("not a png"));
    await Deno.writeFile(join(maps, "f.png.png"), encodeLabelMapPng(randomMap(40, 40, 4, rng)));
    await Deno.writeFile(join(maps, "g.png.png"), encodeLabelMapPng(labelMap(W, H)));

    const source = await folderSource(data, { maxShort: 32, workers: 2 }, { kind: "labelmaps", dir: maps });
    assert.equal(source.count, 3, source.report);
    assert.match(source.description, /label maps from/);
    const reasons = new Map(source.skipped.map((s) => [s.path, s.reason]));
    assert.deepEqual([...reasons.keys()].sort(), ["d.png", "e.png", "f.png", "g.png"], source.report);
    assert.match(reasons.get("d.png")!, /no label map \(looked for .*d\.png\.png, .*d\.png\)/);
    assert.match(reasons.get("e.png")!, /not a usable PNG/);
    assert.match(reasons.get("f.png")!, /40×40, not the image's aspect \(48×32\)/);
    assert.match(reasons.get("g.png")!, /no region/);
    assert.ok(![...reasons.keys()].some((p) => p.startsWith("labels/")), "the maps folder was scanned as images");
    assert.match(source.report, /4/);
    // served in path order, each map resampled to the decoded image by nearest neighbour
    const served = ["a.png", "c.png", "sub/b.png"];
    for (let i = 0; i < served.length; i++) {
      const got = await source.get(i);
      assert.equal(got.image.width, 48);
      assert.equal(got.image.height, 32);
      assert.deepEqual(got.regions!.data, resizeNearest(want.get(served[i])!, 48, 32).data, served[i]);
    }
    // the spec (what workers rebuild from) names the maps in the same order
    const spec = source.spec as { maps?: string[] };
    assert.deepEqual(spec.maps, [join(maps, "a.png.png"), join(maps, "c.png.png"), join(maps, "sub/b.png")]);
    // the image folder itself cannot hold the maps (its PNGs would be images)
    await assert.rejects(
      folderSource(data, { maxShort: 32, workers: 1 }, { kind: "labelmaps", dir: `${data}/` }),
      /is the image folder .* itself/,
    );
    // a map gone during training names itself
    await Deno.remove(join(maps, "c.png.png"));
    await assert.rejects(source.get(1), /c\.png\.png became unreadable during training/);
  } finally {
    await Deno.remove(root, { recursive: true });
  }
});

Deno.test("label maps: the candidates are <rel>.png, then <rel without extension>.png", () => {
  assert.deepEqual(labelMapCandidates("/m", "x/y.jpg"), ["/m/x/y.jpg.png", "/m/x/y.png"]);
  assert.deepEqual(labelMapCandidates("/m", "noext"), ["/m/noext.png"]);
});

Deno.test("FH on a folder: maps computed once into the masks folder plrc masks uses, equal to FH on the image", async () => {
  const seed = freshSeed(), rng = new Rng(seed), data = await Deno.makeTempDir();
  try {
    for (let k = 0; k < 3; k++) await Deno.writeFile(join(data, `img${k}.png`), imagePng(50 + 4 * k, 40, rng));
    const fh = { scale: 300, sigma: 0.5, minSize: 20 };
    const source = await folderSource(data, { maxShort: 32, workers: 1 }, { kind: "fh", ...fh });
    assert.equal(source.count, 3);
    const mask = join(fhMasksDir(data), "img1.png.png");
    const before = (await Deno.stat(mask)).mtime!.getTime();
    const got = await source.get(1);
    const img = await loadImage(data, "img1.png", { cacheDir: join(data, ".plrc", "cache"), maxShort: 32 });
    assert.ok(img.ok);
    const want = felzenszwalb((img as { image: RgbImage }).image, fh);
    assert.ok(new Set(want.data).size > 1, "FH found more than one region");
    assert.deepEqual(got.regions!.data, want.data);
    // a second scan reuses the maps; other parameters recompute them
    await new Promise((r) => setTimeout(r, 20));
    assert.match(source.report, /FH masks in .*: 3 computed, 0 reused/);
    const again = await folderSource(data, { maxShort: 32, workers: 1 }, { kind: "fh", ...fh });
    assert.equal((await Deno.stat(mask)).mtime!.getTime(), before, "reused");
    assert.match(again.report, /0 computed, 3 reused/);
    const other = await folderSource(data, { maxShort: 32, workers: 1 }, { kind: "fh", ...fh, scale: 50 });
    assert.ok((await Deno.stat(mask)).mtime!.getTime() > before, "recomputed for other parameters");
    assert.equal(other.count, 3);
  } finally {
    await Deno.remove(data, { recursive: true });
  }
});

Deno.test("configuration: label maps need a folder and a folder of maps; regionModeOf carries the folder", () => {
  const sets = (s: string[]) => resolveConfig({ sets: s });
  assert.throws(
    () => sets(["data.regions.source=labelmaps", "data.regions.labelmaps=/m"]),
    (e: unknown) => e instanceof ConfigError && /data\.regions\.source/.test(e.message) && /folder/.test(e.message),
  );
  assert.throws(
    () => sets(["data.regions.source=labelmaps", "data.source=/d"]),
    (e: unknown) => e instanceof ConfigError && /data\.regions\.labelmaps/.test(e.message),
  );
  const cfg = sets(["data.regions.source=labelmaps", "data.regions.labelmaps=/m", "data.source=/d"]);
  assert.deepEqual(regionModeOf(cfg), { kind: "labelmaps", dir: "/m" });
  const noisy = sets([
    "data.regions.source=labelmaps",
    "data.regions.labelmaps=/m",
    "data.source=/d",
    "data.regions.noise=0.2",
  ]);
  const mode = regionModeOf(noisy);
  assert.equal(mode.kind, "labelmaps");
  assert.equal(mode.degrade?.noise, 0.2);
});

Deno.test("data.cacheDir: a folder source writes nothing into its image folder; an unwritable cache is one clear error", async () => {
  const seed = freshSeed(), rng = new Rng(seed), data = await Deno.makeTempDir(), cache = await Deno.makeTempDir();
  try {
    for (let k = 0; k < 3; k++) await Deno.writeFile(join(data, `img${k}.png`), imagePng(48, 40, rng));
    const fh = { kind: "fh" as const, scale: 300, sigma: 0.5, minSize: 20 };
    const source = await folderSource(data, { maxShort: 32, workers: 1, cacheDir: cache }, fh);
    assert.equal(source.count, 3);
    assert.deepEqual([...Deno.readDirSync(data)].map((e) => e.name).sort(), ["img0.png", "img1.png", "img2.png"]);
    assert.ok(Deno.statSync(join(fhMasksDir(data, cache), "img2.png.png")).isFile);
    for (let k = 0; k < 3; k++) {
      assert.ok(Deno.statSync(cacheEntryPath(join(cache, "cache"), `img${k}.png`, 32)).isFile, `cache entry ${k}`);
    }
    const first = await source.get(0);
    assert.equal(first.regions!.data.length, first.image.width * first.image.height);
    // a cache folder inside the image folder is not scanned as images
    const inner = join(data, "derived");
    const again = await folderSource(data, { maxShort: 32, workers: 1, cacheDir: inner }, fh);
    assert.equal(again.count, 3, again.report);
    // a cache that cannot be written: one usage error naming the setting
    const file = join(cache, "a-file");
    await Deno.writeTextFile(file, "x");
    await assert.rejects(
      folderSource(data, { maxShort: 32, workers: 1, cacheDir: join(file, "sub") }),
      /cannot write the decode cache in .*a-file\/sub\/cache .*set data\.cacheDir to a writable folder/,
    );
  } finally {
    await Deno.remove(data, { recursive: true });
    await Deno.remove(cache, { recursive: true });
  }
});
