/**
 * The pictures of `plrc visualize`: a training sample (the three views with region masks, sampled points
 * and matched A0/B0 positions) and training curves from metrics.jsonl.
 *
 * @module
 */
import type { PlrcBatch } from "../data/batch.ts";
import { heatColor, normalizeRange } from "./affinity.ts";
import { Canvas, labelColor } from "./draw.ts";

/**
 * One image of a batch: A0 | A1 | B0 side by side at `scale`×, A0/A1 tinted by their region masks, points
 * of each region slot as squares in the slot's colour (the same colour in A0 and A1), and a few matched
 * A0/B0 positions as white-ringed squares of matching colours in A0 and B0.
 */
export function renderSample(
  b: PlrcBatch,
  image: number,
  o: { mean: readonly number[]; std: readonly number[]; scale?: number; pairs?: number },
): Canvas {
  const R = b.resolution, S = b.maskSize, k = o.scale ?? 3, gap = 8;
  const cv = new Canvas(3 * R * k + 2 * gap, R * k, [40, 40, 40]);
  const views = [b.viewA0, b.viewA1, b.viewB0], masks = [b.maskA0, b.maskA1, null];
  views.forEach((view, vi) => {
    const x0 = vi * (R * k + gap), base = image * R * R * 3;
    for (let y = 0; y < R * k; y++) {
      for (let x = 0; x < R * k; x++) {
        const p = base + (Math.floor(y / k) * R + Math.floor(x / k)) * 3;
        const rgb = [0, 1, 2].map((c) => Math.max(0, Math.min(255, (view[p + c] * o.std[c] + o.mean[c]) * 255)));
        cv.blend(x0 + x, y, rgb);
        const mask = masks[vi];
        if (mask) {
          const m = mask[image * S * S + Math.floor((y / (R * k)) * S) * S + Math.floor((x / (R * k)) * S)];
          if (m > 0) cv.blend(x0 + x, y, labelColor(m), 0.3);
        }
      }
    }
  });
  // points: slot s of this image in A0 and A1, in S-grid units
  const P = b.regions * b.points, cell = (R * k) / S;
  for (const [vi, pts] of [[0, b.pointsA0], [1, b.pointsA1]] as const) {
    for (let q = 0; q < P; q++) {
      const row = image * P + q;
      if (!b.pointValid[row]) continue;
      const col = labelColor(b.regionLabel[image * b.regions + Math.floor(q / b.points)]);
      const x = vi * (R * k + gap) + pts[2 * row] * cell, y = pts[2 * row + 1] * cell;
      cv.square(x, y, 2, [0, 0, 0]);
      cv.square(x, y, 1, col);
    }
  }
  // a few matched pairs: same colour in A0 and B0
  const from = b.pairOffsets[image], to = b.pairOffsets[image + 1], want = o.pairs ?? 6;
  for (let j = 0; j < want && to > from; j++) {
    const e = from + Math.floor(((to - from) * (j + 0.5)) / want);
    const col = labelColor(100 + j);
    for (const [vi, u] of [[0, b.pairA[e]], [2, b.pairB[e]]] as const) {
      const x = vi * (R * k + gap) + ((u % S) + 0.5) * cell, y = (Math.floor(u / S) + 0.5) * cell;
      cv.square(x, y, 3, [255, 255, 255]);
      cv.square(x, y, 2, col);
    }
  }
  return cv;
}

/**
 * Training curves: one line per series over the steps, smoothed by an exponential moving average (weight
 * `smooth` on the past), each scaled to its own range; colours by series order.
 */
export function renderCurves(
  records: Record<string, number>[],
  series: string[],
  w = 640,
  h = 360,
  smooth = 0.9,
  /** Series drawn as measured (sparse ones, such as the k-NN monitor's), not smoothed. */
  raw: string[] = [],
): Canvas {
  const cv = new Canvas(w, h);
  const pad = 24, top = 24 + 12 * series.length, steps = records.map((r) => r.step);
  const sMin = Math.min(...steps), sMax = Math.max(...steps, sMin + 1);
  cv.line(pad, h - pad, w - pad, h - pad, [0, 0, 0]);
  cv.line(pad, top, pad, h - pad, [0, 0, 0]);
  cv.text(pad, h - pad + 8, `step ${sMin}`, [60, 60, 60]);
  const last = `step ${sMax}`;
  cv.text(w - pad - 6 * last.length, h - pad + 8, last, [60, 60, 60]);
  series.forEach((name, si) => {
    const pts: [number, number][] = [];
    const a = raw.includes(name) ? 0 : smooth;
    let ema: number | null = null;
    for (const r of records) {
      if (!Number.isFinite(r[name])) continue;
      ema = ema === null ? r[name] : a * ema + (1 - a) * r[name];
      pts.push([r.step, ema]);
    }
    const ys = pts.map((p) => p[1]);
    if (!ys.length) return;
    const lo = Math.min(...ys), hi = Math.max(...ys, lo + 1e-9);
    const col = labelColor(si + 1);
    // legend: each series is scaled to its own range, so the range is part of its label
    cv.rect(pad, 8 + 12 * si, pad + 10, 15 + 12 * si, col);
    const how = a > 0 ? `EMA ${a}` : "as measured";
    cv.text(pad + 16, 8 + 12 * si, `${name}  ${lo.toFixed(3)} .. ${hi.toFixed(3)} (${how})`, [0, 0, 0]);
    let prev: [number, number] | null = null;
    for (const [step, v] of pts) {
      const x = pad + ((step - sMin) / (sMax - sMin)) * (w - 2 * pad);
      const y = h - pad - ((v - lo) / (hi - lo)) * (h - pad - top);
      if (prev) cv.line(prev[0], prev[1], x, y, col, 2);
      prev = [x, y];
    }
  });
  return cv;
}

/** What {@link renderAffinity} draws. */
export interface AffinityPicture {
  /** View side R; both views are normalised [R, R, 3] HWC. */
  resolution: number;
  /** View 1, normalised. */
  view1: Float32Array;
  /** View 2, normalised. */
  view2: Float32Array;
  /** Normalisation mean per channel (to undo it). */
  mean: readonly number[];
  /** Normalisation std per channel (to undo it). */
  std: readonly number[];
  /** Query positions in view 1 (continuous pixels). */
  queries: { x: number; y: number }[];
  /** Each query's true position in view 2, and whether it lies inside view 2. */
  truth: { x: number; y: number; inside: boolean }[];
  /** Each query's similarity over view 2, [R, R]. */
  maps: Float64Array[];
  /** Pixel scale (default 3). */
  scale?: number;
  /** Heat-map opacity (default 0.65). */
  alpha?: number;
}

/** The gap between panels of {@link renderAffinity}, in pixels. */
export const AFFINITY_GAP = 8;

/**
 * View 1 with the queries as squares in their colours (labelColor(q + 1), black-ringed) | for each query,
 * view 2 under its similarity map (min–max normalised per map, heat colours blended at `alpha`), the true
 * position of the query as a white-ringed square in the query's colour when it lies inside view 2, and the
 * most similar position as a white cross. Width (1 + N)·R·scale + N·gap, height R·scale.
 */
export function renderAffinity(p: AffinityPicture): Canvas {
  const R = p.resolution, k = p.scale ?? 3, gap = AFFINITY_GAP, a = p.alpha ?? 0.65, N = p.maps.length;
  const side = R * k;
  const cv = new Canvas((1 + N) * side + N * gap, side, [40, 40, 40]);
  const paint = (view: Float32Array, x0: number, heat?: Float64Array) => {
    for (let y = 0; y < side; y++) {
      for (let x = 0; x < side; x++) {
        const pix = Math.floor(y / k) * R + Math.floor(x / k);
        const rgb = [0, 1, 2].map((c) => Math.max(0, Math.min(255, (view[pix * 3 + c] * p.std[c] + p.mean[c]) * 255)));
        cv.blend(x0 + x, y, rgb);
        if (heat) cv.blend(x0 + x, y, heatColor(heat[pix]), a);
      }
    }
  };
  paint(p.view1, 0);
  p.queries.forEach((q, j) => {
    cv.square(q.x * k, q.y * k, 4, [0, 0, 0]);
    cv.square(q.x * k, q.y * k, 3, labelColor(j + 1));
  });
  p.maps.forEach((m, j) => {
    const x0 = (j + 1) * (side + gap);
    paint(p.view2, x0, normalizeRange(m).t);
    let best = 0;
    for (let i = 1; i < m.length; i++) if (m[i] > m[best]) best = i;
    const bx = x0 + ((best % R) + 0.5) * k, by = (Math.floor(best / R) + 0.5) * k;
    cv.line(bx - 5, by, bx + 5, by, [255, 255, 255]);
    cv.line(bx, by - 5, bx, by + 5, [255, 255, 255]);
    const t = p.truth[j];
    if (t?.inside) {
      cv.square(x0 + t.x * k, t.y * k, 4, [255, 255, 255]);
      cv.square(x0 + t.x * k, t.y * k, 3, labelColor(j + 1));
    }
  });
  return cv;
}
