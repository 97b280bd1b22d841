/**
 * `plrc visualize sample|curves|affinity`: PNG pictures of a training sample (views, region masks, points,
 * matched positions), of training curves from a run's metrics.jsonl, and of point affinities of a
 * checkpoint (query points in one view, their similarity over another view of the same image).
 *
 * @module
 */
import { dirname, join } from "node:path";
import { makeBatch, makeSample } from "../data/batch.ts";
import type { RgbImage } from "../data/image.ts";
import { loadEncoder, pointHeadWeights } from "../eval/load.ts";
import { frozenBackbone } from "../eval/features.ts";
import { getGpu } from "../gpu/device.ts";
import { Rng } from "../util/rng.ts";
import { dataConfigOf, type PlrcConfig, readConfigFile, resolveConfig } from "../train/config/mod.ts";
import { folderSource, type ImageSource, scenesSource } from "../data/sources.ts";
import { regionModeOf } from "../train/config/mod.ts";
import { affinityMap, bilinearSample, mapViewPoint, pickQueryCells, pointHeadHost } from "../viz/affinity.ts";
import { renderAffinity, renderCurves, renderSample } from "../viz/pictures.ts";
import { parseOptions, UsageError } from "./usage.ts";

export const VISUALIZE_HELP =
  `plrc visualize sample [--config FILE] [--data DIR|scenes] [--set k=v ...] [--index I] [--out FILE.png]
plrc visualize curves --metrics RUN/metrics.jsonl [--out FILE.png]
plrc visualize affinity --ckpt PATH|random [--data DIR|scenes] [--set k=v ...] [--index I] [--points N]
                        [--level point|c4|c5] [--encoder online|momentum] [--scale K] [--out FILE.png]

sample   one training sample as the trainer makes it: views A0 | A1 | B0, region masks tinted on A0 and
         A1, each region slot's points in its colour (same colour in both views), and a few matched A0/B0
         positions (white-ringed squares, one colour per pair). plrc pretrain writes this picture as
         sample.png at the start of every run.
curves   the loss terms over the steps (each scaled to its own range): loss, loss_image, loss_point,
         loss_distill in that colour order; the distillation's bottleneck alignment and relative teacher
         entropy (distill_alignment, distill_entropy) when the run logged them; and knn_accuracy from
         monitor.jsonl beside the metrics when the run had the k-NN monitor (eval.knnEvery).
affinity point affinities of a checkpoint (--ckpt random: the initialised encoder of the configuration):
         views A0 and B0 of image I as training makes them (the pair with overlap ≥ data.minOverlap;
         --set data.photometric=false for unjittered colours), N query points in A0 (default 4), one
         per region of A0's mask, largest regions first (data.regions.source gt: one per object), taken
         where the point is also inside B0. Picture: A0 with the queries | per query, B0 under the
         cosine similarity of the query's feature (bilinearly sampled) to B0's feature map (bilinearly
         upsampled to the view), min–max normalised per map (dark → pale yellow), the query's true
         position in B0 as a white-ringed square in its colour, the best match as a white cross.
         Printed: per query its position, true position, best match and their distance in pixels.
         --level point (default): the point head's output on C5 (what point contrast trains; the head
         runs on the host in float64), c5 or c4: backbone features. The backbone runs in eval mode
         (running BN statistics). --scale K: pixels per view pixel (default about 192/R).`;

/** Runs `plrc visualize`. */
export async function visualizeCommand(argv: string[]): Promise<number> {
  const { values, positionals } = parseOptions(
    argv,
    {
      config: { type: "string" },
      data: { type: "string" },
      set: { type: "string", multiple: true },
      index: { type: "string" },
      metrics: { type: "string" },
      out: { type: "string" },
      ckpt: { type: "string" },
      points: { type: "string" },
      level: { type: "string" },
      encoder: { type: "string" },
      scale: { type: "string" },
      help: { type: "boolean", short: "h" },
    },
    VISUALIZE_HELP,
    true,
  );
  if (values.help) return console.log(VISUALIZE_HELP), 0;
  const kind = positionals[0];
  if (kind === "curves") {
    if (!values.metrics) throw new UsageError("curves needs --metrics RUN/metrics.jsonl", VISUALIZE_HELP);
    const text = await Deno.readTextFile(values.metrics).catch((e) => {
      throw new UsageError(`cannot read ${values.metrics}: ${(e as Error).message}`, VISUALIZE_HELP);
    });
    const records = text.trim().split("\n").filter(Boolean).map((l) => JSON.parse(l));
    if (!records.length) throw new UsageError(`${values.metrics} holds no records`, VISUALIZE_HELP);
    // the k-NN monitor's records (eval.knnEvery), when the run has them, as one more curve
    const monitorFile = join(dirname(values.metrics), "monitor.jsonl");
    const monitor = (await Deno.readTextFile(monitorFile).catch(() => "")).trim().split("\n").filter(Boolean)
      .map((l) => JSON.parse(l));
    // the distillation's collapse readings (alignment, relative teacher entropy) where the run logged them
    const readings = ["distill_alignment", "distill_entropy"].filter((k) => records.some((r) => k in r));
    const series = [
      "loss",
      "loss_image",
      "loss_point",
      "loss_distill",
      ...readings,
      ...(monitor.length ? ["knn_accuracy"] : []),
    ];
    const all = [...records, ...monitor].sort((a, b) => a.step - b.step);
    const out = values.out ?? "curves.png";
    await Deno.writeFile(out, renderCurves(all, series, 640, 360, 0.9, ["knn_accuracy"]).png());
    console.log(`wrote ${out} (${records.length} steps${monitor.length ? `, ${monitor.length} k-NN records` : ""})`);
    return 0;
  }
  if (kind === "affinity") return await affinityCommand(values);
  if (kind !== "sample") throw new UsageError(`visualize what? allowed: sample, curves, affinity`, VISUALIZE_HELP);
  const file = values.config ? await readConfigFile(values.config) : undefined;
  const cfg = resolveConfig({
    file: file ?? undefined,
    fileName: values.config,
    sets: values.set ?? [],
    overrides: values.data ? [{ path: "data.source", value: values.data, origin: "--data" }] : [],
  });
  const source = await sourceOf(cfg);
  const index = indexIn(source, values.index);
  const data = dataConfigOf(cfg);
  const batch = makeBatch([{ ...(await source.get(index)), key: index }], data);
  const out = values.out ?? "sample.png";
  await Deno.writeFile(out, renderSample(batch, 0, { mean: data.mean, std: data.std }).png());
  console.log(`wrote ${out}`);
  return 0;
}

/** The configuration's image source with its region mode (so the masks are those training uses). */
async function sourceOf(cfg: PlrcConfig): Promise<ImageSource> {
  const regions = regionModeOf(cfg);
  return cfg.data.source === "scenes" ? scenesSource({ ...cfg.data.scenes }, regions) : await folderSource(
    cfg.data.source,
    { maxShort: cfg.data.cacheShortSide, workers: 1, cacheDir: cfg.data.cacheDir },
    regions,
  );
}

function indexIn(source: ImageSource, v: string | undefined): number {
  const index = Number(v ?? 0);
  if (!(Number.isInteger(index) && index >= 0 && index < source.count)) {
    throw new UsageError(`--index must be an image index below ${source.count}`, VISUALIZE_HELP);
  }
  return index;
}

/** A normalised view back to 8-bit RGB for the frozen backbone (which normalises again; ≤ 0.5/255 off). */
function toRgb(view: Float32Array, R: number, mean: readonly number[], std: readonly number[]): RgbImage {
  const data = new Uint8Array(R * R * 3);
  for (let i = 0; i < data.length; i++) {
    data[i] = Math.max(0, Math.min(255, Math.round((view[i] * std[i % 3] + mean[i % 3]) * 255)));
  }
  return { width: R, height: R, data };
}

async function affinityCommand(values: Record<string, unknown>): Promise<number> {
  const v = values as Record<string, string | undefined> & { set?: string[] };
  if (!v.ckpt) throw new UsageError("affinity needs --ckpt PATH|random", VISUALIZE_HELP);
  const level = v.level ?? "point";
  if (level !== "point" && level !== "c4" && level !== "c5") {
    throw new UsageError(`--level must be point, c4 or c5, got "${level}"`, VISUALIZE_HELP);
  }
  const encoderName = v.encoder ?? "online";
  if (encoderName !== "online" && encoderName !== "momentum") {
    throw new UsageError(`--encoder must be online or momentum, got "${encoderName}"`, VISUALIZE_HELP);
  }
  const posInt = (name: string, s: string | undefined, def: number) => {
    const n = s === undefined ? def : Number(s);
    if (!Number.isInteger(n) || n < 1) throw new UsageError(`--${name} must be a positive integer, got "${s}"`);
    return n;
  };
  const nPoints = posInt("points", v.points, 4);
  const sets = [...(v.set ?? []), ...(v.data ? [`data.source=${v.data}`] : [])];
  const gpu = await getGpu();
  const enc = await loadEncoder(gpu, v.ckpt, { sets, store: encoderName, help: VISUALIZE_HELP });
  const cfg = enc.cfg, data = dataConfigOf(cfg), R = data.resolution, S = data.maskSize;
  const scale = posInt("scale", v.scale, Math.max(1, Math.round(192 / R)));
  const source = await sourceOf(cfg);
  const index = indexIn(source, v.index);
  // the sample exactly as makeBatch makes image `index` (same generator), keeping the crop boxes
  const sample = makeSample({ ...(await source.get(index)), key: index }, data, Rng.derive(data.seed, index));
  const [g1, , g2] = sample.boxes;
  const cellCentre = (cell: number) => ({ x: ((cell % S) + 0.5) * R / S, y: (Math.floor(cell / S) + 0.5) * R / S });
  const cells = pickQueryCells(sample.maskA0, S, nPoints, (cell) => {
    const p = cellCentre(cell);
    return mapViewPoint(p.x, p.y, g1, g2, R).inside;
  });
  const queries = cells.map(cellCentre);
  const truth = queries.map((q) => mapViewPoint(q.x, q.y, g1, g2, R));

  const fb = await frozenBackbone(gpu, enc.store, enc.encoder.backbone, R, {
    mean: data.mean,
    std: data.std,
    level: level === "c4" ? "c4" : "c5",
    batch: 2,
    prefix: enc.prefix,
  });
  const maps: Float64Array[] = [];
  let C = fb.C;
  try {
    await fb.each([toRgb(sample.a0, R, data.mean, data.std), toRgb(sample.b0, R, data.mean, data.std)], (_, [rows]) => {
      maps.push(Float64Array.from(rows));
    });
  } finally {
    fb.dispose();
  }
  if (level === "point") {
    const w = await pointHeadWeights(enc.store);
    for (let i = 0; i < maps.length; i++) {
      const r = pointHeadHost(maps[i], fb.h * fb.w, w.w1, w.b1, w.w2, w.b2);
      maps[i] = r.rows;
      C = r.dim;
    }
  }
  const affinities = queries.map((q) => {
    const f = bilinearSample(maps[0], fb.h, fb.w, C, (q.x * fb.w) / R, (q.y * fb.h) / R);
    return affinityMap(f, maps[1], fb.h, fb.w, C, R, R);
  });
  const out = v.out ?? "affinity.png";
  const cv = renderAffinity({
    resolution: R,
    view1: sample.a0,
    view2: sample.b0,
    mean: data.mean,
    std: data.std,
    queries,
    truth,
    maps: affinities,
    scale,
  });
  await Deno.writeFile(out, cv.png());
  console.log(
    `wrote ${out} (${cv.width}×${cv.height}): image ${index}, views A0 | B0 at ${R} px, ${level} features ` +
      `${fb.h}×${fb.w}×${C}, checkpoint ${v.ckpt} (${encoderName})`,
  );
  affinities.forEach((m, j) => {
    let best = 0;
    for (let i = 1; i < m.length; i++) if (m[i] > m[best]) best = i;
    const bx = (best % R) + 0.5, by = Math.floor(best / R) + 0.5, q = queries[j], t = truth[j];
    const where = t.inside
      ? `true (${t.x.toFixed(1)}, ${t.y.toFixed(1)}), best match (${bx}, ${by}) at ${
        Math.hypot(bx - t.x, by - t.y).toFixed(1)
      } px`
      : `outside B0; best match (${bx}, ${by})`;
    let lo = Infinity, hi = -Infinity;
    for (const s of m) lo = Math.min(lo, s), hi = Math.max(hi, s);
    console.log(
      `  query ${j + 1} at (${q.x.toFixed(1)}, ${q.y.toFixed(1)}): ${where}; cosine ${lo.toFixed(3)}..${hi.toFixed(3)}`,
    );
  });
  return 0;
}
