/**
 * Data-source throughput: decoded images per second from JPEG files with N decode workers (decode, EXIF
 * check, area downscale to short side 256, transfer back), and from a warm decode cache, on a generated
 * set of JPEGs (procedural scenes, encoded with imagescript into a temporary folder). Used by
 * `plrc bench data`.
 *
 * @module
 */
import { join } from "node:path";
import { Image } from "npm:imagescript@^1.3.1";
import { DEFAULT_MAX_SHORT } from "../data/cache.ts";
import { type DataTask, WorkerPool } from "../data/pool.ts";
import { SceneGenerator } from "../data/scenes.ts";

/** One measurement (printed as one JSON object by `plrc bench data --json`). */
export interface DataSourceMeasurement {
  /** "jpeg-decode" (no cache) or "cache-read" (every entry already cached). */
  name: string;
  /** Worker threads. */
  workers: number;
  /** Images read. */
  images: number;
  /** Source JPEG size. */
  width: number;
  /** Source JPEG height. */
  height: number;
  /** Short side after downscaling. */
  maxShort: number;
  /** Images per second. */
  imagesPerS: number;
  /** Milliseconds per image. */
  msPerImage: number;
  /** Seconds of the measurement. */
  seconds: number;
}

/** Options of {@link benchDataSources}. */
export interface DataBenchOptions {
  /** JPEGs to generate (default 32). */
  images?: number;
  /** Their side in pixels (square; default 512). */
  size?: number;
  /** Worker counts to measure (default [1, 2]). */
  workers?: number[];
  /** Short side after downscaling. */
  maxShort?: number;
}

/** Writes `count` JPEGs (quality 90) of procedural scenes into `dir`; returns their names. */
export async function writeBenchJpegs(dir: string, count: number, size: number): Promise<string[]> {
  const gen = new SceneGenerator(2024, { size }), names: string[] = [];
  for (let i = 0; i < count; i++) {
    const s = gen.scene(i), im = new Image(size, size);
    for (let p = 0; p < size * size; p++) {
      im.bitmap[p * 4] = s.image.data[p * 3], im.bitmap[p * 4 + 1] = s.image.data[p * 3 + 1];
      im.bitmap[p * 4 + 2] = s.image.data[p * 3 + 2], im.bitmap[p * 4 + 3] = 255;
    }
    const name = `img${String(i).padStart(4, "0")}.jpg`;
    await Deno.writeFile(join(dir, name), await im.encodeJPEG(90));
    names.push(name);
  }
  return names;
}

async function timeRun(pool: WorkerPool, tasks: DataTask[]): Promise<number> {
  const t0 = performance.now();
  let ok = 0;
  for await (const r of pool.map(tasks)) ok += r.ok ? 1 : 0;
  if (ok !== tasks.length) throw new Error(`bench: ${tasks.length - ok} images failed to load`);
  return (performance.now() - t0) / 1000;
}

/** Measures decode throughput for each worker count, then cache reads; removes its temporary folder. */
export async function benchDataSources(opts: DataBenchOptions = {}): Promise<DataSourceMeasurement[]> {
  const count = opts.images ?? 32, size = opts.size ?? 512, maxShort = opts.maxShort ?? DEFAULT_MAX_SHORT;
  const dir = await Deno.makeTempDir({ prefix: "plrc-bench-data-" }), out: DataSourceMeasurement[] = [];
  const record = (name: string, workers: number, seconds: number) =>
    out.push({
      name,
      workers,
      images: count,
      width: size,
      height: size,
      maxShort,
      imagesPerS: count / seconds,
      msPerImage: (seconds * 1000) / count,
      seconds,
    });
  try {
    const names = await writeBenchJpegs(dir, count, size), cacheDir = join(dir, ".cache");
    const tasks = (cache?: string): DataTask[] =>
      names.map((rel) => ({ kind: "load", root: dir, rel, opts: { maxShort, cacheDir: cache } }));
    for (const n of opts.workers ?? [1, 2]) {
      const pool = new WorkerPool(n);
      try {
        await timeRun(pool, tasks().slice(0, Math.max(1, n))); // warm-up: start workers, load the decoder
        record("jpeg-decode", n, await timeRun(pool, tasks()));
      } finally {
        pool.close();
      }
    }
    const pool = new WorkerPool(0);
    await timeRun(pool, tasks(cacheDir)); // fill the cache
    record("cache-read", 0, await timeRun(pool, tasks(cacheDir)));
    pool.close();
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
  return out;
}
