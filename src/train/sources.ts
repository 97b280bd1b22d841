/**
 * Training image sources: the built-in procedural scenes, or a folder of JPEG/PNG files (decoded once in
 * worker threads into the decode cache; corrupt files are skipped, counted and listed).
 *
 * @module
 */
import { join } from "node:path";
import { loadImage } from "../data/cache.ts";
import { felzenszwalb } from "../data/felzenszwalb.ts";
import { formatSkipReport, scanFolder, type Skipped } from "../data/folder.ts";
import type { LabelMap } from "../data/image.ts";
import { WorkerPool } from "../data/pool.ts";
import { SceneGenerator } from "../data/scenes.ts";
import type { ImageSource } from "./trainer.ts";

/** Region maps per image: the default grid (none supplied), or Felzenszwalb–Huttenlocher computed once. */
export type RegionMode = { kind: "grid" } | { kind: "fh"; scale: number; sigma: number; minSize: number };

function withRegions(
  get: (i: number) => Promise<{ image: import("../data/image.ts").RgbImage }>,
  mode: RegionMode,
): (i: number) => Promise<{ image: import("../data/image.ts").RgbImage; regions?: LabelMap }> {
  if (mode.kind === "grid") return get;
  const cache = new Map<number, LabelMap>();
  return async (i) => {
    const { image } = await get(i);
    let regions = cache.get(i);
    if (!regions) {
      regions = felzenszwalb(image, { scale: mode.scale, sigma: mode.sigma, minSize: mode.minSize });
      cache.set(i, regions);
    }
    return { image, regions };
  };
}

/** The built-in scenes: deterministic from the seed, generated on demand. */
export function scenesSource(
  o: { count: number; size: number; classes: number; seed: number },
  regions: RegionMode = { kind: "grid" },
): ImageSource {
  const gen = new SceneGenerator(o.seed, { size: o.size, classes: o.classes });
  return {
    count: o.count,
    description: `${o.count} built-in scenes (${o.size}×${o.size}, ${o.classes} classes, seed ${o.seed})`,
    get: withRegions((i) => Promise.resolve({ image: gen.scene(i).image }), regions),
  };
}

/** A folder source and the report of what was skipped. */
export interface FolderSource extends ImageSource {
  report: string;
  skipped: Skipped[];
}

/**
 * Scans `root`, decodes every image once (in `workers` threads) into the cache under `root/.plrc/cache`,
 * and serves the good ones from the cache. Fails when no image is usable.
 */
export async function folderSource(
  root: string,
  o: { maxShort: number; workers: number },
  regions: RegionMode = { kind: "grid" },
): Promise<FolderSource> {
  const scan = await scanFolder(root);
  const cacheDir = join(root, ".plrc", "cache");
  const good: string[] = [];
  const skipped: Skipped[] = [...scan.skipped];
  const pool = new WorkerPool(Math.max(1, o.workers));
  try {
    const tasks = scan.images.map((rel) => ({
      kind: "load" as const,
      root,
      rel,
      opts: { cacheDir, maxShort: o.maxShort },
    }));
    for await (const r of pool.map(tasks)) {
      if (r.ok) good.push(r.rel);
      else skipped.push({ path: r.rel, reason: r.reason });
    }
  } finally {
    pool.close();
  }
  good.sort();
  const report = formatSkipReport({ seen: scan.images.length + scan.skipped.length, used: good.length, skipped });
  if (!good.length) throw new Error(`no usable image in ${root}\n${report}`);
  const get = async (i: number) => {
    const r = await loadImage(root, good[i], { cacheDir, maxShort: o.maxShort });
    if (!r.ok) throw new Error(`${good[i]} became unreadable during training: ${r.reason}`);
    return { image: r.image };
  };
  return {
    count: good.length,
    description: `${good.length} images from ${root}`,
    get: withRegions(get, regions),
    report,
    skipped,
  };
}
