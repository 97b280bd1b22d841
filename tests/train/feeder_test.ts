/**
 * The batch feeder: batches made in 0, 1 or 2 worker threads are byte-identical to `makeBatch` on the main
 * thread (scenes with grid regions, ground truth with degradation, a folder of PNGs with FH regions), in
 * order and after a jump; worker errors surface with their message; close() stops the workers.
 */
import assert from "node:assert/strict";
import { join } from "node:path";
import { Image } from "imagescript";
import { type DataConfig, dataConfig, makeBatch, type PlrcBatch } from "../../src/data/batch.ts";
import { BatchFeeder, SamplePool, type SampleRequest } from "../../src/data/feeder.ts";
import { labelMap } from "../../src/data/image.ts";
import { encodeLabelMapPng } from "../../src/data/labelmap_png.ts";
import { pngHeader } from "../../src/data/png.ts";
import {
  folderSource,
  type ImageSource,
  type RegionMode,
  scenesSource,
  sourceFromSpec,
} from "../../src/data/sources.ts";
import { batchIndices } from "../../src/train/trainer.ts";
import { benchDataFeeder } from "../../src/bench/data_feeder.ts";
import { freshSeed, Rng } from "../util.ts";

const B = 4;

function requestsOf(seed: number, count: number) {
  return (s: number): SampleRequest[] => {
    const { epoch, indices } = batchIndices(seed, count, B, s);
    return indices.map((i) => ({ index: i, key: epoch * count + i }));
  };
}

/** The serial reference: the trainer's former path. */
async function reference(source: ImageSource, data: DataConfig, reqs: SampleRequest[]): Promise<PlrcBatch> {
  const items = await Promise.all(reqs.map(async (r) => ({ ...(await source.get(r.index)), key: r.key })));
  return makeBatch(items, data);
}

/** Every field equal, typed arrays byte for byte. */
function assertSameBatch(got: PlrcBatch, want: PlrcBatch, what: string): void {
  const keys = Object.keys(want).sort();
  assert.deepEqual(Object.keys(got).sort(), keys, what);
  for (const k of keys) {
    const a = got[k as keyof PlrcBatch], b = want[k as keyof PlrcBatch];
    if (ArrayBuffer.isView(b) && ArrayBuffer.isView(a)) {
      assert.equal(a.constructor, b.constructor, `${what}: ${k} type`);
      const x = new Uint8Array(a.buffer, a.byteOffset, a.byteLength);
      const y = new Uint8Array(b.buffer, b.byteOffset, b.byteLength);
      assert.equal(x.length, y.length, `${what}: ${k} length`);
      const bad = x.findIndex((v, i) => v !== y[i]);
      assert.equal(bad, -1, `${what}: ${k} differs at byte ${bad}`);
    } else assert.equal(a, b, `${what}: ${k}`);
  }
}

/** Feeds steps 0..4 then jumps to 7 and back to 2 with 0, 1 and 2 workers; all must equal the reference. */
async function checkSource(source: ImageSource, data: DataConfig, seed: number, label: string): Promise<void> {
  const requests = requestsOf(seed, source.count);
  const steps = [0, 1, 2, 3, 4, 7, 2];
  const want = new Map<number, PlrcBatch>();
  for (const s of new Set(steps)) want.set(s, await reference(source, data, requests(s)));
  // guard against a vacuous comparison: views carry data and steps differ
  assert.ok(want.get(0)!.viewA0.some((v) => v !== 0));
  assert.ok(want.get(0)!.viewA0.some((v, i) => v !== want.get(1)!.viewA0[i]), "steps 0 and 1 differ");
  for (const workers of [0, 1, 2]) {
    const feeder = new BatchFeeder({ source, data, workers, prefetch: 2, requests, end: 8 });
    try {
      assert.equal(feeder.pool.workers, workers);
      for (const s of steps) {
        assertSameBatch(await feeder.batch(s), want.get(s)!, `${label}, ${workers} workers, step ${s}`);
      }
    } finally {
      feeder.close();
    }
  }
}

function smallData(seed: number): DataConfig {
  return dataConfig({ resolution: 32, regions: 2, points: 4, seed });
}

Deno.test("scenes with grid regions: 0, 1 and 2 workers give batches byte-identical to makeBatch", async () => {
  const seed = freshSeed();
  const source = scenesSource({ count: 12, size: 48, classes: 4, seed }, { kind: "grid", grid: 3 });
  await checkSource(source, smallData(seed + 1), seed, `grid (seed ${seed})`);
});

Deno.test("scenes with degraded ground-truth regions: 0, 1 and 2 workers match makeBatch", async () => {
  const seed = freshSeed();
  const regions: RegionMode = { kind: "gt", degrade: { noise: 0.3, block: 4, shift: 2, seed: seed + 2 } };
  const source = scenesSource({ count: 10, size: 40, classes: 3, seed }, regions);
  // the degradation is really applied (the rebuilt source agrees with the original)
  const plain = scenesSource({ count: 10, size: 40, classes: 3, seed }, { kind: "gt" });
  const [d0, p0, r0] = await Promise.all([source.get(3), plain.get(3), sourceFromSpec(source.spec!).get(3)]);
  assert.ok(d0.regions!.data.some((v, i) => v !== p0.regions!.data[i]), "degraded map differs from the plain one");
  assert.deepEqual(r0.regions!.data, d0.regions!.data);
  await checkSource(source, smallData(seed), seed, `gt+degrade (seed ${seed})`);
});

async function writePngs(dir: string, n: number, rng: Rng): Promise<void> {
  for (let k = 0; k < n; k++) {
    const w = 40 + Math.floor(rng.next() * 30), h = 40 + Math.floor(rng.next() * 30), im = new Image(w, h);
    // a few flat rectangles on noise, so FH finds several regions
    for (let y = 0; y < h; y++) {
      for (let x = 0; x < w; x++) {
        const i = (y * w + x) * 4, band = Math.floor((x * 3) / w) + 3 * Math.floor((y * 2) / h);
        im.bitmap[i] = (band * 40 + rng.next() * 20) | 0, im.bitmap[i + 1] = (255 - band * 30) | 0;
        im.bitmap[i + 2] = (rng.next() * 255) | 0, im.bitmap[i + 3] = 255;
      }
    }
    await Deno.writeFile(join(dir, `img${k}.png`), await im.encode());
  }
}

Deno.test("a folder of PNGs with FH regions: 0, 1 and 2 workers match makeBatch", async () => {
  const seed = freshSeed(), dir = await Deno.makeTempDir();
  try {
    await writePngs(dir, 6, new Rng(seed));
    const regions: RegionMode = { kind: "fh", scale: 300, sigma: 0.5, minSize: 20 };
    const source = await folderSource(dir, { maxShort: 48, workers: 1 }, regions);
    assert.equal(source.count, 6);
    assert.equal(source.spec?.kind, "folder");
    await checkSource(source, smallData(seed), seed, `folder (seed ${seed})`);
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("a folder with label maps, degraded: 0, 1 and 2 workers match makeBatch", async () => {
  const seed = freshSeed(), dir = await Deno.makeTempDir(), maps = await Deno.makeTempDir(), rng = new Rng(seed);
  try {
    await writePngs(dir, 5, rng);
    for (let k = 0; k < 5; k++) {
      const { width: w, height: h } = pngHeader(await Deno.readFile(join(dir, `img${k}.png`)));
      const m = labelMap(w, h);
      for (let p = 0; p < w * h; p++) m.data[p] = 1 + ((p % w) >> 3) + 5 * (Math.floor(p / w) >> 3);
      await Deno.writeFile(join(maps, `img${k}.png`), encodeLabelMapPng(m)); // VOC-style name
    }
    const regions: RegionMode = { kind: "labelmaps", dir: maps, degrade: { noise: 0.2, block: 4, shift: 2, seed } };
    const source = await folderSource(dir, { maxShort: 48, workers: 1 }, regions);
    assert.equal(source.count, 5, source.report);
    await checkSource(source, smallData(seed), seed, `label maps (seed ${seed})`);
  } finally {
    await Deno.remove(dir, { recursive: true });
    await Deno.remove(maps, { recursive: true });
  }
});

Deno.test("a worker error (an image gone during training) rejects the batch with the worker's message", async () => {
  const seed = freshSeed(), dir = await Deno.makeTempDir();
  try {
    await writePngs(dir, 4, new Rng(seed));
    const source = await folderSource(dir, { maxShort: 48, workers: 1 });
    await Deno.remove(join(dir, ".plrc"), { recursive: true });
    for (let k = 0; k < 4; k++) await Deno.remove(join(dir, `img${k}.png`));
    const feeder = new BatchFeeder({ source, data: smallData(seed), workers: 1, requests: requestsOf(seed, 4) });
    try {
      await assert.rejects(feeder.batch(0), /img\d\.png became unreadable during training/);
    } finally {
      feeder.close();
    }
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("a source without a spec runs on the main thread; close() stops the workers", async () => {
  const seed = freshSeed(), data = smallData(seed);
  const scenes = scenesSource({ count: 8, size: 40, classes: 3, seed });
  const custom: ImageSource = { count: scenes.count, description: "custom", get: (i) => scenes.get(i) };
  const serial = new SamplePool(custom, data, 2);
  assert.equal(serial.workers, 0);
  const reqs = requestsOf(seed, 8)(0);
  assertSameBatch(await serial.batch(reqs), await reference(scenes, data, reqs), "custom source");
  serial.close();

  const pool = new SamplePool(scenes, data, 2);
  assert.equal(pool.workers, 2);
  const pending = pool.batch(reqs);
  pool.close();
  await assert.rejects(pending, /ThreadPool closed/);
  await assert.rejects(pool.sample(reqs[0]), /ThreadPool is closed/);
  assert.throws(
    () => new BatchFeeder({ source: scenes, data, workers: 1, prefetch: -1, requests: () => [] }),
    /prefetch/,
  );
});

Deno.test("benchDataFeeder returns one finite measurement per resolution, scene cache or not, and worker count", async () => {
  const r = await benchDataFeeder({ resolutions: [32], workers: [0, 1], batchSize: 2, batches: 1, sceneSize: 48 });
  assert.deepEqual(r.map((m) => [m.resolution, m.sceneCache, m.workers]), [
    [32, false, 0],
    [32, false, 1],
    [32, true, 0],
    [32, true, 1],
  ]);
  for (const m of r) assert.ok(Number.isFinite(m.imagesPerS) && m.imagesPerS > 0, JSON.stringify(m));
});
