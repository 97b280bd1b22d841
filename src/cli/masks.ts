/**
 * `plrc masks`: precomputes Felzenszwalb–Huttenlocher region masks for an image folder, in parallel, as
 * label-map PNGs (reused on later runs while the source and the parameters are unchanged), and reports
 * what was computed and which files were skipped.
 *
 * @module
 */
import { join } from "node:path";
import { DEFAULT_MAX_SHORT } from "../data/cache.ts";
import { defaultMinSize } from "../data/felzenszwalb.ts";
import { formatSkipReport, scanFolder, type Skipped } from "../data/folder.ts";
import { type DataTask, maskPathFor, WorkerPool } from "../data/pool.ts";
import { EXIT, parseOptions, UsageError } from "./usage.ts";

export const MASKS_HELP = `plrc masks --data DIR [--out DIR] [--method fh] [--scale K] [--sigma S] [--min-size M]
           [--max-short N] [--workers N] [--cache DIR] [--json]

Precomputes region masks for every JPEG/PNG under DIR (recursively) on the decoded images, downscaled
so the short side is at most N pixels (the decode cache's size), and writes one 16-bit label-map PNG per
image to OUT/<path of the image>.png (region ids 1..n). Masks whose source and parameters are unchanged
are reused. Unreadable, truncated, empty and non-image files are skipped and listed. \`plrc pretrain --data DIR
--set data.regions.source=fh\` uses the default OUT, so masks made here with its parameters are not recomputed.

  --data DIR       image folder (required)
  --out DIR        where masks go (default DIR/.plrc/masks-fh)
  --method M       fh: Felzenszwalb–Huttenlocher graph segmentation (the only method)
  --scale K        FH scale k (default 1000, as DetCon)
  --sigma S        Gaussian pre-smoothing sigma (default 0.8)
  --min-size M     smallest region in pixels (default: DetCon's 1000 at ImageNet scale scaled by area,
                   round(1000·(N/375)²) = 466 for N = 256)
  --max-short N    short side of the decoded images (default ${DEFAULT_MAX_SHORT})
  --workers N      decode workers (default: CPU count, at most 8)
  --cache DIR      decode cache (default DIR/.plrc/cache)
  --json           print one JSON object instead of text
  -h, --help       this text`;

function num(v: string | undefined, name: string, def: number, ok: (x: number) => boolean, want: string): number {
  if (v === undefined) return def;
  const x = Number(v);
  if (v.trim() === "" || !ok(x)) throw new UsageError(`--${name} must be ${want}, got "${v}"`, MASKS_HELP);
  return x;
}

/** Runs `plrc masks`. */
export async function masksCommand(argv: string[]): Promise<number> {
  const { values } = parseOptions(argv, {
    data: { type: "string" },
    out: { type: "string" },
    method: { type: "string" },
    scale: { type: "string" },
    sigma: { type: "string" },
    "min-size": { type: "string" },
    "max-short": { type: "string" },
    workers: { type: "string" },
    cache: { type: "string" },
    json: { type: "boolean" },
    help: { type: "boolean", short: "h" },
  }, MASKS_HELP);
  if (values.help) return console.log(MASKS_HELP), EXIT.ok;
  if (!values.data) throw new UsageError("--data DIR is required", MASKS_HELP);
  const method = values.method ?? "fh";
  if (method !== "fh") throw new UsageError(`unknown --method "${method}"; allowed: fh`, MASKS_HELP);
  const int = (x: number) => Number.isInteger(x);
  const maxShort = num(values["max-short"], "max-short", DEFAULT_MAX_SHORT, (x) => int(x) && x >= 8, "an integer ≥ 8");
  const fh = {
    scale: num(values.scale, "scale", 1000, (x) => x > 0 && Number.isFinite(x), "a positive number"),
    sigma: num(values.sigma, "sigma", 0.8, (x) => x >= 0 && x <= 20, "a number in [0, 20]"),
    minSize: num(values["min-size"], "min-size", defaultMinSize(maxShort), (x) => int(x) && x >= 1, "an integer ≥ 1"),
  };
  const cpus = Math.min(8, navigator.hardwareConcurrency || 1);
  const workers = num(values.workers, "workers", cpus, (x) => int(x) && x >= 0 && x <= 64, "an integer in 0..64");
  const data = values.data, out = values.out ?? join(data, ".plrc", "masks-fh");
  const cacheDir = values.cache ?? join(data, ".plrc", "cache");
  let scan;
  try {
    scan = await scanFolder(data, [out, cacheDir]); // outputs inside the data folder are not inputs
  } catch (e) {
    throw new UsageError(`--data ${data}: ${(e as Error).message}`, MASKS_HELP);
  }
  const t0 = performance.now(), skipped: Skipped[] = [...scan.skipped], regions: number[] = [];
  let computed = 0, reused = 0;
  const tasks: DataTask[] = scan.images.map((rel) => ({
    kind: "fh-mask",
    root: data,
    rel,
    opts: { maxShort, cacheDir },
    fh,
    out: maskPathFor(out, rel),
  }));
  const pool = new WorkerPool(Math.min(workers, tasks.length));
  try {
    for await (const r of pool.map(tasks)) {
      if (!r.ok) skipped.push({ path: r.rel, reason: r.reason });
      else {
        regions.push(r.regions!);
        if (r.reused) reused++;
        else computed++;
      }
    }
  } finally {
    pool.close();
  }
  skipped.sort((a, b) => (a.path < b.path ? -1 : a.path > b.path ? 1 : 0));
  const seconds = (performance.now() - t0) / 1000;
  const stats = regions.length
    ? {
      mean: regions.reduce((s, v) => s + v, 0) / regions.length,
      min: Math.min(...regions),
      max: Math.max(...regions),
    }
    : null;
  const report = { seen: scan.images.length + scan.skipped.length, used: regions.length, skipped };
  if (values.json) {
    console.log(JSON.stringify({
      data,
      out,
      method,
      ...fh,
      maxShort,
      workers: pool.workers,
      images: regions.length,
      computed,
      reused,
      regions: stats,
      skipped,
      seconds,
    }));
  } else {
    console.log(
      `masks (fh k=${fh.scale} σ=${fh.sigma} min size ${fh.minSize}, short side ≤ ${maxShort}) → ${out}`,
    );
    console.log(`  computed ${computed}, reused ${reused} in ${seconds.toFixed(1)} s with ${pool.workers} workers`);
    if (stats) {
      console.log(`  regions per image: mean ${stats.mean.toFixed(1)}, min ${stats.min}, max ${stats.max}`);
    }
    console.log(formatSkipReport(report));
  }
  if (regions.length === 0) {
    console.error(`plrc masks: no usable images in ${data}`);
    return EXIT.failure;
  }
  return EXIT.ok;
}
