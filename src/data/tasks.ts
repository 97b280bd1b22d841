/**
 * Data tasks, the unit of work of the decode pool (`pool.ts`) and its worker (`decode_worker.ts`): load an image
 * through the decode cache, or compute and cache its FH mask. {@link runTask} runs one on the calling thread.
 *
 * @module
 */
import { join } from "node:path";
import { loadImage, type LoadOptions } from "./cache.ts";
import { countRegions, felzenszwalb, type FhOptions } from "./felzenszwalb.ts";
import type { RgbImage } from "./image.ts";
import { decodeLabelMapPng, readLabelMapPng, writeLabelMapPng } from "./labelmap_png.ts";

/**
 * Load one image (decode cache → decode → downscale). With `labelmap`, also find the image's label map: the
 * first of these paths that exists, which must decode, match the image's aspect and hold a region.
 */
export interface LoadTask {
  /** Task tag. */
  kind: "load";
  /** Image folder. */
  root: string;
  /** Image path relative to `root`. */
  rel: string;
  /** Decode cache and downscale options. */
  opts: LoadOptions;
  /** Candidate label-map paths, in order of preference. */
  labelmap?: string[];
}

/** Compute (or reuse) the FH label map of one image and write it to `out`. */
export interface MaskTask {
  /** Task tag. */
  kind: "fh-mask";
  /** Image folder. */
  root: string;
  /** Image path relative to `root`. */
  rel: string;
  /** Decode cache and downscale options. */
  opts: LoadOptions;
  /** Felzenszwalb segmentation parameters. */
  fh: FhOptions;
  /** Destination PNG ({@link maskPathFor}). */
  out: string;
}

/** A unit of work for the pool. */
export type DataTask = LoadTask | MaskTask;

/** What a task returns: an image (load), a region count (mask), or the reason the source was skipped. */
export type TaskResult =
  | { ok: true; rel: string; image?: RgbImage; regions?: number; reused?: boolean; fromCache: boolean; map?: string }
  | { ok: false; rel: string; reason: string };

/** Where the mask of source `rel` goes under `outDir`: the source path plus ".png" (so a.jpg and a.png differ). */
export function maskPathFor(outDir: string, rel: string): string {
  return join(outDir, `${rel}.png`);
}

/** The metadata stored in a mask PNG; a mask is reused only when all of it matches. */
export interface MaskMeta {
  method: "fh";
  scale: number;
  sigma: number;
  minSize: number;
  maxShort: number;
  source: { path: string; size: number; mtimeMs: number };
  regions: number;
}

/** Runs one task on this thread (the workers call this too). Never throws for a bad source file. */
export async function runTask(task: DataTask): Promise<TaskResult> {
  if (task.kind === "load") {
    const r = await loadImage(task.root, task.rel, task.opts);
    if (!r.ok) return { ok: false, rel: task.rel, reason: r.reason };
    if (!task.labelmap) return { ok: true, rel: task.rel, image: r.image, fromCache: r.fromCache };
    const found = await findLabelMap(task.labelmap, r.image.width, r.image.height);
    return "reason" in found
      ? { ok: false, rel: task.rel, reason: found.reason }
      : { ok: true, rel: task.rel, image: r.image, fromCache: r.fromCache, map: found.path, regions: found.regions };
  }
  const st = await Deno.stat(join(task.root, task.rel)).catch(() => null);
  const maxShort = task.opts.maxShort ?? 256;
  const want = {
    method: "fh" as const,
    ...task.fh,
    maxShort,
    source: { path: task.rel, size: st?.size ?? -1, mtimeMs: st?.mtime?.getTime() ?? 0 },
  };
  if (st) {
    const prev = await readLabelMapPng(task.out).catch(() => null);
    const meta = prev?.meta as MaskMeta | undefined;
    if (meta && sameMeta(meta, want)) {
      return { ok: true, rel: task.rel, regions: meta.regions, reused: true, fromCache: true };
    }
  }
  const r = await loadImage(task.root, task.rel, task.opts);
  if (!r.ok) return { ok: false, rel: task.rel, reason: r.reason };
  const map = felzenszwalb(r.image, task.fh), regions = countRegions(map);
  await writeLabelMapPng(task.out, map, { ...want, regions } satisfies MaskMeta);
  return { ok: true, rel: task.rel, regions, reused: false, fromCache: r.fromCache };
}

/**
 * The first existing path of `candidates`, checked: it decodes as a label map, its aspect is the image's
 * (`width`×`height`, the decoded and downscaled image; a map of another size is resampled, so it may be at
 * the original resolution) within a pixel, and it holds at least one region (a label > 0).
 */
export async function findLabelMap(
  candidates: string[],
  width: number,
  height: number,
): Promise<{ path: string; regions: number } | { reason: string }> {
  for (const path of candidates) {
    let bytes: Uint8Array;
    try {
      bytes = await Deno.readFile(path);
    } catch (e) {
      if (e instanceof Deno.errors.NotFound) continue;
      return { reason: `label map ${path} is unreadable (${(e as Error).message})` };
    }
    let map;
    try {
      map = decodeLabelMapPng(bytes).map;
    } catch (e) {
      return { reason: `label map ${path} is not a usable PNG (${(e as Error).message})` };
    }
    // the map's width at the image's height must be the image's width to within a pixel either way
    const tol = 1 + Math.max(width / map.width, 1);
    if (Math.abs((map.width * height) / map.height - width) > tol) {
      return { reason: `label map ${path} is ${map.width}×${map.height}, not the image's aspect (${width}×${height})` };
    }
    const regions = new Set(map.data.filter((v) => v > 0)).size;
    if (regions === 0) return { reason: `label map ${path} has no region (every label ≤ 0)` };
    return { path, regions };
  }
  return { reason: `no label map (looked for ${candidates.join(", ")})` };
}

function sameMeta(a: MaskMeta, b: Omit<MaskMeta, "regions">): boolean {
  return a.method === b.method && a.scale === b.scale && a.sigma === b.sigma && a.minSize === b.minSize &&
    a.maxShort === b.maxShort && a.source?.path === b.source.path && a.source?.size === b.source.size &&
    a.source?.mtimeMs === b.source.mtimeMs && Number.isInteger(a.regions);
}
