/**
 * Throughput of whole training batches through the {@link BatchFeeder} (source `get`, views, regions,
 * points, pairs and collate) with 0, 1, 2... data workers, on built-in scenes as the gpu-small preset
 * draws them. Used by `plrc bench data`.
 *
 * @module
 */
import { dataConfig } from "../data/batch.ts";
import { BatchFeeder } from "../data/feeder.ts";
import { scenesSource } from "../data/sources.ts";
import { batchRequests } from "../train/trainer.ts";

/** One measurement (one JSON object per line with `--json`). */
export interface DataFeederMeasurement {
  /** Always `feeder`. */
  name: string;
  /** View side R. */
  resolution: number;
  /** Worker threads. */
  workers: number;
  /** Whether the scenes came from a warm scene cache (`data.scenes.cache`) instead of being rendered. */
  sceneCache: boolean;
  /** Images per batch. */
  batchSize: number;
  /** Images per second. */
  imagesPerS: number;
  /** Milliseconds per batch. */
  msPerBatch: number;
}

/** Options; the defaults give a run of several seconds on two cores. */
export interface DataFeederOptions {
  /** View sides to measure. */
  resolutions?: number[];
  /** Worker counts to measure. */
  workers?: number[];
  /** Images per batch. */
  batchSize?: number;
  /** Timed batches per case (after one warm-up batch, which also starts the workers). */
  batches?: number;
  /** Built-in scene side in pixels (gpu-small: 192). */
  sceneSize?: number;
  /** Rendered scenes, scenes read from a warm scene cache, or both (default both, side by side). */
  sceneCache?: boolean[];
}

/** Runs the benchmark: one entry per resolution, scene cache or not, and worker count. */
export async function benchDataFeeder(opts: DataFeederOptions = {}): Promise<DataFeederMeasurement[]> {
  const batchSize = opts.batchSize ?? 16, batches = opts.batches ?? 4, count = 1024;
  const scenes = { count, size: opts.sceneSize ?? 192, classes: 6, seed: 0 };
  const out: DataFeederMeasurement[] = [];
  const cacheDir = await Deno.makeTempDir({ prefix: "plrc-bench-scenes-" });
  try {
    const cached = scenesSource({ ...scenes, cache: cacheDir });
    // warm the cache with every scene the timed batches draw, and those the feeder prefetches beyond them
    for (let s = 0; s <= batches + 3; s++) {
      for (const r of batchRequests(0, count, batchSize, s)) await cached.get(r.index);
    }
    for (const resolution of opts.resolutions ?? [128, 224]) {
      for (const sceneCache of opts.sceneCache ?? [false, true]) {
        const source = sceneCache ? cached : scenesSource(scenes);
        out.push(...await feederCases(source, resolution, sceneCache, opts.workers ?? [0, 1, 2], batchSize, batches));
      }
    }
  } finally {
    await Deno.remove(cacheDir, { recursive: true });
  }
  return out;
}

/** One source at one resolution through the feeder, for each worker count. */
async function feederCases(
  source: ReturnType<typeof scenesSource>,
  resolution: number,
  sceneCache: boolean,
  workerCounts: number[],
  batchSize: number,
  batches: number,
): Promise<DataFeederMeasurement[]> {
  const count = source.count, out: DataFeederMeasurement[] = [], data = dataConfig({ resolution });
  for (const workers of workerCounts) {
    const feeder = new BatchFeeder({
      source,
      data,
      workers,
      requests: (s) => batchRequests(0, count, batchSize, s),
    });
    try {
      await feeder.batch(0);
      const t0 = performance.now();
      for (let s = 1; s <= batches; s++) await feeder.batch(s);
      const msPerBatch = (performance.now() - t0) / batches;
      out.push({
        name: "feeder",
        resolution,
        workers,
        sceneCache,
        batchSize,
        imagesPerS: 1000 * batchSize / msPerBatch,
        msPerBatch,
      });
    } finally {
      feeder.close();
    }
  }
  return out;
}
