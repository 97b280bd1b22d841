/**
 * Training image sources: the built-in procedural scenes, or a folder of JPEG/PNG files (decoded once in
 * worker threads into the decode cache; corrupt files are skipped, counted and listed).
 *
 * @module
 */
import { extname, join, resolve } from "node:path";
import { loadImage } from "./cache.ts";
import { felzenszwalb } from "./felzenszwalb.ts";
import { formatSkipReport, scanFolder, type Skipped } from "./folder.ts";
import { type Degradation, degradeLabels, degrades } from "./degrade.ts";
import { type LabelMap, labelMap, type RgbImage } from "./image.ts";
import { readLabelMapPng } from "./labelmap_png.ts";
import { regionLabelMap } from "./regions.ts";
import { resizeNearest } from "./resize.ts";
import { type DataTask, maskPathFor, WorkerPool } from "./pool.ts";
import { SceneGenerator } from "./scenes.ts";
import { SceneCache } from "./scene_cache.ts";
import { Rng } from "../util/rng.ts";
import { UsageError } from "../util/errors.ts";

/** Where training images come from (scenes or a folder); `get` may be called in any order. */
export interface ImageSource {
  /** Number of images; valid indices are 0..count − 1. */
  readonly count: number;
  /** One line for the log: what the images are. */
  readonly description: string;
  /** Image `index`, with its full-image region map where the source supplies one. */
  get(index: number): Promise<{ image: RgbImage; regions?: LabelMap }>;
  /** How to rebuild this source in a worker thread; without it, samples are made on the main thread. */
  readonly spec?: SourceSpec;
}

/** A folder that holds no image the pipeline can read (every file skipped or none found). */
export class NoUsableImagesError extends Error {
  /** `message` says why no image was usable. */
  constructor(message: string) {
    super(message);
    this.name = "NoUsableImagesError";
  }
}

/**
 * Region maps per image: the default grid (none supplied), Felzenszwalb–Huttenlocher computed once, the
 * ground-truth instance masks of the built-in scenes (`gt`: background label 1, instance i label i + 1, so
 * the background is one region like any other and every pixel belongs to one), or label-map PNGs under
 * `dir` (a folder source only: {@link labelMapCandidates}; labels ≤ 0 are no region). `degrade` (shift and
 * block noise, src/data/degrade.ts) is applied to the full-image map, from a generator derived from `seed`
 * and the image index (see {@link degradeSeed}); a degraded grid is the grid's label map, degraded.
 */

export type RegionMode =
  & (
    | { kind: "grid"; grid?: number }
    | {
      kind: "fh";
      scale: number;
      sigma: number;
      minSize: number;
    }
    | { kind: "gt" }
    | { kind: "labelmaps"; dir: string }
  )
  & { degrade?: Degradation & { seed: number } };

/**
 * Where the label map of folder image `rel` may be, in this order: `dir/<rel>.png` (what `plrc masks`
 * writes, so a.jpg and a.png differ) and `dir/<rel without its extension>.png` (the VOC convention:
 * JPEGImages/x.jpg ↔ SegmentationObject/x.png).
 */
export function labelMapCandidates(dir: string, rel: string): string[] {
  const stem = rel.slice(0, rel.length - extname(rel).length);
  return [...new Set([join(dir, `${rel}.png`), join(dir, `${stem}.png`)])];
}

/** Where a folder source keeps what it derives from `root` (`data.cacheDir`, default `root/.plrc`). */
export function derivedDir(root: string, cacheDir?: string | null): string {
  return cacheDir ?? join(root, ".plrc");
}

/**
 * Where a folder source keeps its Felzenszwalb–Huttenlocher maps: by default `plrc masks`'s default folder,
 * so masks precomputed there are reused (each PNG records its parameters and source; a mismatch is
 * recomputed).
 */
export function fhMasksDir(root: string, cacheDir?: string | null): string {
  return join(derivedDir(root, cacheDir), "masks-fh");
}

/** The seed of the degradation stream: apart from the views' `Rng.derive(seed, key)` streams. */
export function degradeSeed(seed: number): number {
  return (seed ^ 0x6a09e667) >>> 0;
}

/** Memory for computed FH maps of the built-in scenes, per thread. */
const FH_CACHE_BYTES = 256 * 2 ** 20;

type Got = { image: RgbImage; gt?: LabelMap; regions?: LabelMap };

function withRegions(
  get: (i: number) => Promise<Got>,
  mode: RegionMode,
): (i: number) => Promise<{ image: RgbImage; regions?: LabelMap }> {
  const d = mode.degrade;
  const degraded = (i: number, m: LabelMap) =>
    degrades(d) ? degradeLabels(m, d, Rng.derive(degradeSeed(d.seed), i)) : m;
  if (mode.kind === "grid") {
    if (!degrades(d)) return async (i) => ({ image: (await get(i)).image });
    const g = mode.grid ?? 4;
    return async (i) => {
      const { image } = await get(i);
      return { image, regions: degraded(i, regionLabelMap({ kind: "grid", grid: g }, image.width, image.height)) };
    };
  }
  if (mode.kind === "gt") {
    return async (i) => {
      const { image, gt } = await get(i);
      if (!gt) throw new Error("data.regions.source gt needs ground-truth masks: only the built-in scenes have them");
      const m = labelMap(gt.width, gt.height);
      for (let p = 0; p < m.data.length; p++) m.data[p] = gt.data[p] + 1;
      return { image, regions: degraded(i, m) };
    };
  }
  if (mode.kind === "labelmaps") {
    return async (i) => {
      const { image, regions } = await get(i);
      if (!regions) throw new Error("data.regions.source labelmaps needs a folder source with label maps");
      return { image, regions: degraded(i, regions) };
    };
  }
  // FH maps (built-in scenes; a folder's are on disk) are costly, so they are kept for later epochs, up to
  // FH_CACHE_BYTES per thread, oldest out first; the degradation is cheap and redone on every read
  const cache = new Map<number, LabelMap>();
  let bytes = 0;
  return async (i) => {
    const { image } = await get(i);
    let regions = cache.get(i);
    if (!regions) {
      regions = felzenszwalb(image, fhOf(mode));
      cache.set(i, regions);
      bytes += regions.data.byteLength;
      for (const [k, m] of cache) {
        if (bytes <= FH_CACHE_BYTES) break;
        cache.delete(k), bytes -= m.data.byteLength;
      }
    }
    return { image, regions: degraded(i, regions) };
  };
}

/**
 * A serialisable description of a source: enough for a worker thread to rebuild it and serve the same
 * `get(i)` (src/data/feeder.ts). {@link scenesSource} and {@link folderSource} carry theirs.
 */
export type SourceSpec =
  | {
    kind: "scenes";
    count: number;
    size: number;
    classes: number;
    seed: number;
    regions: RegionMode;
    /** Scene cache folder (`data.scenes.cache`); absent or empty: render every time. */
    cache?: string;
  }
  | {
    kind: "folder";
    root: string;
    /** The usable images (paths relative to `root`), in index order. */
    files: string[];
    cacheDir: string;
    maxShort: number;
    regions: RegionMode;
    /** With label-map regions: the map of each file, checked when the folder was scanned. */
    maps?: string[];
  };

/** Rebuilds the source a {@link SourceSpec} describes (a folder is not scanned again). */
export function sourceFromSpec(spec: SourceSpec): ImageSource {
  if (spec.kind === "scenes") return scenesSource(spec, spec.regions);
  if (spec.kind === "folder") return folderFiles(spec);
  throw new Error(`unknown source kind ${(spec as { kind: string }).kind}`);
}

/**
 * The built-in scenes: deterministic from the seed, generated on demand, or rendered once into the scene
 * cache `o.cache` (src/data/scene_cache.ts) and read back from it: the same bytes either way.
 */
export function scenesSource(
  o: { count: number; size: number; classes: number; seed: number; cache?: string | null },
  regions: RegionMode = { kind: "grid" },
): ImageSource {
  const gen = new SceneGenerator(o.seed, { size: o.size, classes: o.classes });
  const cache = o.cache ? new SceneCache(o.cache, gen) : null;
  return {
    count: o.count,
    description: `${o.count} built-in scenes (${o.size}×${o.size}, ${o.classes} classes, seed ${o.seed})` +
      (cache ? `, cached in ${cache.dir}` : ""),
    spec: {
      kind: "scenes",
      count: o.count,
      size: o.size,
      classes: o.classes,
      seed: o.seed,
      regions,
      ...(o.cache ? { cache: o.cache } : {}),
    },
    get: withRegions(async (i) => {
      const s = cache ? await cache.scene(i) : gen.scene(i);
      return { image: s.image, gt: s.instanceMap };
    }, regions),
  };
}

/** Serves already scanned and cached folder images (`files`, in index order). */
function folderFiles(spec: Extract<SourceSpec, { kind: "folder" }>): ImageSource {
  const { root, files, cacheDir, maxShort, maps } = spec;
  const get = async (i: number) => {
    const r = await loadImage(root, files[i], { cacheDir, maxShort });
    if (!r.ok) throw new Error(`${files[i]} became unreadable during training: ${r.reason}`);
    if (!maps) return { image: r.image };
    const m = await readLabelMapPng(maps[i]).catch((e) => {
      throw new Error(`${maps[i]} became unreadable during training: ${(e as Error).message}`);
    });
    // at the image's size, so a shift degradation counts the image's pixels
    const { width: W, height: H } = r.image;
    return { image: r.image, regions: m.map.width === W && m.map.height === H ? m.map : resizeNearest(m.map, W, H) };
  };
  const regions = spec.regions.kind === "labelmaps" ? `, label maps from ${spec.regions.dir}` : "";
  return {
    count: files.length,
    description: `${files.length} images from ${root}${regions}`,
    spec,
    get: withRegions(get, spec.regions),
  };
}

function fhOf(m: Extract<RegionMode, { kind: "fh" }>) {
  return { scale: m.scale, sigma: m.sigma, minSize: m.minSize };
}

/** A folder source and the report of what was skipped. */
export interface FolderSource extends ImageSource {
  /** The skip report as printed. */
  report: string;
  /** Files that were not used, and why. */
  skipped: Skipped[];
}

/**
 * Scans `root`, decodes every image once (in `workers` threads) into the cache under `root/.plrc/cache`,
 * and serves the good ones from the cache. Fails when no image is usable.
 *
 * Region maps are settled here too, so training never meets a bad one: FH maps are computed once into
 * {@link fhMasksDir} (or reused from `plrc masks`) and served as label maps; user label maps are found and
 * checked (they decode, have the image's aspect and hold a region). An image whose map is missing or bad
 * is skipped and listed like a corrupt image.
 */
export async function folderSource(
  root: string,
  o: { maxShort: number; workers: number; cacheDir?: string | null },
  regions: RegionMode = { kind: "grid" },
): Promise<FolderSource> {
  if (regions.kind === "gt") throw new UsageError("data.regions.source gt: only the built-in scenes have ground truth");
  if (regions.kind === "labelmaps" && !(await Deno.stat(regions.dir).catch(() => null))?.isDirectory) {
    throw new UsageError(`data.regions.labelmaps ${regions.dir} is not a folder`);
  }
  if (regions.kind === "labelmaps" && resolve(regions.dir) === resolve(root)) {
    throw new UsageError(
      `data.regions.labelmaps is the image folder ${root} itself: its PNGs would be read as images; ` +
        "put the label maps in a folder of their own (a subfolder is fine)",
    );
  }
  const derived = derivedDir(root, o.cacheDir);
  const cacheDir = join(derived, "cache"), masks = fhMasksDir(root, o.cacheDir);
  // a read-only image folder fails here, once, with what to do (not on every image)
  try {
    await Deno.mkdir(cacheDir, { recursive: true });
    const probe = join(cacheDir, `.probe-${Deno.pid}-${crypto.randomUUID()}`);
    await Deno.writeFile(probe, new Uint8Array(1));
    await Deno.remove(probe);
  } catch (e) {
    throw new UsageError(
      `cannot write the decode cache in ${cacheDir} (${(e as Error).message}); ` +
        "if the image folder is read-only, set data.cacheDir to a writable folder",
    );
  }
  // maps and a cache folder inside the image folder are not images
  const scan = await scanFolder(root, [derived, ...(regions.kind === "labelmaps" ? [regions.dir] : [])]);
  const good: { rel: string; map?: string }[] = [];
  let reused = 0;
  const skipped: Skipped[] = [...scan.skipped];
  const pool = new WorkerPool(Math.max(1, o.workers));
  try {
    const opts = { cacheDir, maxShort: o.maxShort };
    const tasks = scan.images.map((rel): DataTask =>
      regions.kind === "fh"
        ? { kind: "fh-mask", root, rel, opts, fh: fhOf(regions), out: maskPathFor(masks, rel) }
        : regions.kind === "labelmaps"
        ? { kind: "load", root, rel, opts, labelmap: labelMapCandidates(regions.dir, rel) }
        : { kind: "load", root, rel, opts }
    );
    for await (const r of pool.map(tasks)) {
      if (!r.ok) skipped.push({ path: r.rel, reason: r.reason });
      else {
        good.push({ rel: r.rel, map: regions.kind === "fh" ? maskPathFor(masks, r.rel) : r.map });
        if (r.reused) reused++;
      }
    }
  } finally {
    pool.close();
  }
  good.sort((a, b) => (a.rel < b.rel ? -1 : a.rel > b.rel ? 1 : 0));
  skipped.sort((a, b) => (a.path < b.path ? -1 : a.path > b.path ? 1 : 0));
  let report = formatSkipReport({ seen: scan.images.length + scan.skipped.length, used: good.length, skipped });
  if (!good.length) throw new NoUsableImagesError(`no usable image in ${root}\n${report}`);
  if (regions.kind === "fh") report += `\nFH masks in ${masks}: ${good.length - reused} computed, ${reused} reused`;
  // FH maps on disk are label maps from here on: one way to read them, in this thread or a worker
  const served: RegionMode = regions.kind === "fh"
    ? { kind: "labelmaps", dir: masks, ...(regions.degrade ? { degrade: regions.degrade } : {}) }
    : regions;
  const files = good.map((g) => g.rel);
  const maps = served.kind === "labelmaps" ? good.map((g) => g.map!) : undefined;
  return {
    ...folderFiles({ kind: "folder", root, files, cacheDir, maxShort: o.maxShort, regions: served, maps }),
    report,
    skipped,
  };
}
