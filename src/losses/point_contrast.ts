/**
 * Point-level region contrast: SupCon over the points of both views, labels
 * (image, region), forward and backward on the GPU, with its float64 reference.
 *
 * Shapes. B images on an h×w head grid; per-location head outputs are NHWC rows [B·h·w, D] (row
 * (b·h + y)·w + x). Each image has `pointsPerImage` = regions · points points per view, so P = B ·
 * pointsPerImage per view; point rows are image-major (image = row / pointsPerImage).
 *
 * Forward (all dispatches bound once for these sizes; per step only {@link PointContrast.upload} writes):
 * 1. bilinear sampling of y1(A0) and y1(A1) at the points (align_corners = false, zero padding) → [2P, D]
 * 2. L2 normalisation (`l2Normalize`) → F
 * 3. Gram F·Fᵀ (`matmul`, transB) → [2P, 2P]; s = Gram / τ
 * 4. per anchor: masked log-sum-exp over the other valid points, positive count and the anchor's term
 * 5. L = scale · mean over anchors with ≥ 1 positive of (lse − mean over positives of s), i.e.
 *    −scale · mean of the mean positive log-probability. Invalid points (label −1) take no part.
 *
 * Backward (dL = 1; d y1(A0) is written, not accumulated; A1 is stop-gradient):
 * dS from the SupCon terms, symmetrised for the A0 anchors → ·F (`matmul`) → L2 backward → transposed
 * sampling as a gather through a host-built CSR ({@link pointSamplingCsr}).
 *
 * Memory: the Gram matrix is [2P, 2P] and its gradient [P, 2P] (f32), e.g. 64 MiB + 32 MiB at 32 images ×
 * 64 points; the CSR holds B·h·w + 1 pointers and at most 4·P (index, weight) entries. Negatives come from
 * the points given to one instance, so the release's per-GPU grouping (32 images) is one instance per group,
 * bound to views of the group's rows of y1 (and of a shared gradient through the `dY1` option).
 *
 * @module
 */
import {
  PC_WG,
  pointSampleBackwardSpec,
  pointSampleSpec,
  SUPCON_ROWS,
  supconGradSpec,
  supconLossSpec,
} from "../kernels/wgsl/point_contrast.ts";
import { type OwnsTensors, TensorArena } from "../gpu/bound.ts";
import type { Gpu } from "../gpu/device.ts";
import { bind, type Dispatch, grid1d } from "../gpu/kernel.ts";
import { Tensor } from "../gpu/tensor.ts";
import type { PlrcBatch } from "../data/batch.ts";
import { matmul } from "../kernels/gemm.ts";
import { reduceAxis, reduceAxisBackward } from "../kernels/reduce.ts";
import { L2_EPS, l2Normalize, l2NormalizeBackward, rowOp, rowsRef, type RowVariant } from "../kernels/rows.ts";

/** The release's temperature τ = 0.2 and the SupCon base temperature 0.07 (scale τ / τ_base). */
export const POINT_TEMPERATURE = 0.2;
/** Loss scale τ / τ_base = 0.2 / 0.07. */
export const POINT_SCALE = 0.2 / 0.07;

/** Options of {@link buildPointContrast}. */
export interface PointContrastOptions {
  /** Head output of A0, [B·h·w, D]; receives the gradient. */
  y1A0: Tensor;
  /** Head output of A1 from the momentum encoder, [B·h·w, D]; no gradient. */
  y1A1: Tensor;
  /** Images B. */
  batch: number;
  /** Feature-map height. */
  h: number;
  /** Feature-map width. */
  w: number;
  /** Feature width D. */
  dim: number;
  /** Points per image and view (regions · points). */
  pointsPerImage: number;
  /** τ (default 0.2). */
  temperature?: number;
  /** Loss scale (default 0.2 / 0.07). */
  scale?: number;
  /** Row-kernel variant (default: by adapter). */
  variant?: RowVariant;
  /** Where to write d y1(A0) (e.g. a view into a larger gradient); default: a tensor owned by the op. */
  dY1?: Tensor;
  /**
   * Average each run of `pool` consecutive sampled points (one region slot) into one vector before the
   * contrast: region-level contrast with region features estimated from points sampled uniformly in the
   * region (the `detcon` baseline). Default 1: point-level.
   */
  pool?: number;
}

/** Host arrays of one step: points in feature-grid units (x = column, y = row), [P, 2] each; labels [P]. */
export interface PointInputs {
  /** Points in A0. */
  a0: Float32Array;
  /** The matching points in A1. */
  a1: Float32Array;
  /** Label of each point pair: pairs with the same label are positives of each other. */
  labels: Int32Array;
}

/** The bound loss. */
export interface PointContrast extends OwnsTensors {
  /** [1]: the loss after `forward`. */
  loss: Tensor;
  /** [B·h·w, D]: dL/d y1(A0) after `backward` (written, not accumulated; dL = 1). */
  dY1: Tensor;
  /** Computes `loss`. */
  forward: Dispatch[];
  /** Needs `forward` to have run in the same or an earlier submit. */
  backward: Dispatch[];
  /** Uploads one step's points and labels (and the CSR of the A0 points); queued, no GPU wait. */
  upload(points: PointInputs): void;
}

/**
 * The cell → (point, weight) lists of bilinear sampling, for the backward gather. Cell ids are global rows
 * b·h·w + i·w + j; entries of one cell are ordered by point index; zero weights and taps outside the map
 * are left out. At most 4·P entries (P = points.length / 2), `ptr` has B·h·w + 1 entries.
 */
export interface SamplingCsr {
  /** Start of each cell's entries in `index`/`weight` (B·h·w + 1 offsets). */
  ptr: Uint32Array;
  /** Point index of each entry. */
  index: Uint32Array;
  /** Bilinear weight of each entry. */
  weight: Float32Array;
}

/** The four taps (global cell id or −1, weight) of a point at feature coords (x, y) of image b. */
function taps(x: number, y: number, b: number, h: number, w: number): [number, number][] {
  const u = x - 0.5, v = y - 0.5;
  const x0 = Math.floor(u), y0 = Math.floor(v), fx = u - x0, fy = v - y0;
  const out: [number, number][] = [];
  for (let k = 0; k < 4; k++) {
    const xi = x0 + (k & 1), yi = y0 + (k >> 1);
    const wt = (k & 1 ? fx : 1 - fx) * (k >> 1 ? fy : 1 - fy);
    const inside = xi >= 0 && xi < w && yi >= 0 && yi < h;
    out.push([inside ? (b * h + yi) * w + xi : -1, wt]);
  }
  return out;
}

/**
 * Builds the CSR of bilinear sampling for `points` ([P, 2] (x, y) feature-grid units, P a multiple of B,
 * image-major) on B maps of h×w.
 */
export function pointSamplingCsr(points: Float32Array, B: number, h: number, w: number): SamplingCsr {
  const P = points.length / 2;
  if (!Number.isInteger(P) || P % B !== 0) throw new Error(`pointSamplingCsr: ${P} points do not split into ${B}`);
  const ppi = P / B, cells = B * h * w;
  const all: [number, number][][] = [];
  const ptr = new Uint32Array(cells + 1);
  for (let p = 0; p < P; p++) {
    const t = taps(points[2 * p], points[2 * p + 1], Math.floor(p / ppi), h, w).filter(([c, wt]) => c >= 0 && wt !== 0);
    all.push(t);
    for (const [c] of t) ptr[c + 1]++;
  }
  for (let c = 0; c < cells; c++) ptr[c + 1] += ptr[c];
  const fill = ptr.slice(0, cells);
  const index = new Uint32Array(ptr[cells]), weight = new Float32Array(ptr[cells]);
  all.forEach((t, p) => {
    for (const [c, wt] of t) {
      const e = fill[c]++;
      index[e] = p;
      weight[e] = wt;
    }
  });
  return { ptr, index, weight };
}

/**
 * The step inputs from a {@link PlrcBatch} for an h×w head grid: S-grid points scaled to feature units
 * (x·w/S, y·h/S) and the (image, region) labels (−1 invalid).
 */
export function pointInputsFromBatch(batch: PlrcBatch, h: number, w: number): PointInputs {
  const S = batch.maskSize;
  const scale = (src: Float32Array) => src.map((v, i) => (i % 2 === 0 ? (v * w) / S : (v * h) / S));
  return { a0: scale(batch.pointsA0), a1: scale(batch.pointsA1), labels: batch.pointLabel.slice() };
}

/** Binds the point contrast forward and backward for fixed sizes. */
export async function buildPointContrast(gpu: Gpu, o: PointContrastOptions): Promise<PointContrast> {
  const { batch: B, h, w, dim: D, pointsPerImage: ppi } = o;
  const tau = o.temperature ?? POINT_TEMPERATURE, scale = o.scale ?? POINT_SCALE;
  const k = o.pool ?? 1;
  const P = B * ppi, N = 2 * P, cells = B * h * w;
  if (P % k) throw new Error(`point contrast: ${ppi} points per image do not pool in runs of ${k}`);
  const R = P / k, NR = 2 * R; // contrasted rows per view / in all (= P, N without pooling)
  for (const t of [o.y1A0, o.y1A1]) {
    if (t.numel !== cells * D) throw new Error(`point contrast: "${t.name}" must have ${cells}·${D} elements`);
  }
  const arena = new TensorArena(gpu);
  const T = (shape: number[], name: string, dtype: "f32" | "i32" | "u32" = "f32") =>
    arena.alloc(shape, `point contrast ${name}`, dtype);
  const pts = T([N, 2], "points"), labels = T([NR], "labels", "i32");
  const ptr = T([cells + 1], "csr ptr", "u32"), idx = T([4 * P], "csr index", "u32"), wt = T([4 * P], "csr weight");
  const g = T([N, D], "samples");
  const pooled = k > 1 ? T([NR, D], "region means") : g;
  const f = T([NR, D], "features"), norm = T([NR], "norms");
  const gram = T([NR, NR], "gram"), lse = T([NR], "lse"), npos = T([NR], "positives"), rloss = T([NR], "anchor terms");
  const loss = T([1], "loss"), count = T([1], "anchors");
  const gs = T([R, NR], "gram grad"), df = T([R, D], "feature grad"), dp = T([R, D], "pooled grad");
  const dg = k > 1 ? T([P, D], "sample grad") : dp;
  if (o.dY1 && o.dY1.numel !== cells * D) throw new Error(`point contrast: dY1 must have ${cells}·${D} elements`);
  const dY1 = o.dY1 ?? T([cells, D], "dY1");
  // the A0 halves of F and of the norms (offset 0, so always aligned)
  const fA0 = Tensor.view(gpu, f.buffer, f.byteOffset, [R, D], "f32", "point contrast features A0");
  const normA0 = Tensor.view(gpu, norm.buffer, norm.byteOffset, [R], "f32", "point contrast norms A0");
  const v = o.variant;
  const pool = k > 1
    ? await reduceAxis(
      gpu,
      Tensor.view(gpu, g.buffer, g.byteOffset, [NR, k, D], "f32", "samples by region"),
      1,
      "mean",
      pooled,
    )
    : null;
  if (pool) arena.adopt(pool);

  const forward = [
    await bind(gpu, pointSampleSpec(), [o.y1A0, o.y1A1, pts, g], { np: P, dim: D, h, w, ppi }, grid1d(N * D, PC_WG)),
    ...(pool?.dispatches ?? []),
    await l2Normalize(gpu, pooled, f, norm, L2_EPS, v),
    await matmul(gpu, f, f, gram, NR, D, NR, { transB: true }),
    await rowOp(gpu, SUPCON_ROWS, [gram, labels, lse, npos, rloss], { inv_tau: 1 / tau }, v),
    await bind(gpu, supconLossSpec(), [rloss, npos, loss, count], { n: NR, scale }, [1, 1, 1]),
  ];
  const backward = [
    await bind(
      gpu,
      supconGradSpec(),
      [gram, labels, lse, npos, count, gs],
      { rows: R, n: NR, inv_tau: 1 / tau, scale },
      grid1d(R * NR, PC_WG),
    ),
    await matmul(gpu, gs, f, df, R, NR, D),
    await l2NormalizeBackward(gpu, fA0, normA0, df, dp, L2_EPS, v),
    ...(k > 1 ? [await reduceAxisBackward(gpu, dp, [R, k, D], 1, "mean", dg)] : []),
    await bind(gpu, pointSampleBackwardSpec(), [ptr, idx, wt, dg, dY1], { cells, dim: D }, grid1d(cells * D, PC_WG)),
  ];

  const upload = (x: PointInputs): void => {
    if (x.a0.length !== 2 * P || x.a1.length !== 2 * P || x.labels.length !== P) {
      throw new Error(`point contrast upload: expected ${P} points and labels per view`);
    }
    const both = new Float32Array(4 * P);
    both.set(x.a0, 0);
    both.set(x.a1, 2 * P);
    pts.upload(both);
    // one label per contrasted row: a pooled run takes its slot's label
    const lab = new Int32Array(NR);
    for (let r = 0; r < R; r++) lab[r] = lab[R + r] = x.labels[r * k];
    labels.upload(lab);
    const csr = pointSamplingCsr(x.a0, B, h, w);
    const ib = new Uint32Array(4 * P), wb = new Float32Array(4 * P);
    ib.set(csr.index);
    wb.set(csr.weight);
    ptr.upload(csr.ptr);
    idx.upload(ib);
    wt.upload(wb);
  };
  return { loss, dY1, forward, backward, upload, owned: arena.owned };
}

// ---------------------------------------------------------------------------------------------------------
// float64 reference

/** Inputs of {@link pointContrastRef}: maps [B·h·w, D], points [P, 2] (feature units), labels [P]. */
export interface PointContrastRefInput {
  /** A0 head output [B·h·w, D]. */
  y1A0: ArrayLike<number>;
  /** A1 head output [B·h·w, D]. */
  y1A1: ArrayLike<number>;
  /** Images B. */
  batch: number;
  /** Feature-map height. */
  h: number;
  /** Feature-map width. */
  w: number;
  /** Feature width D. */
  dim: number;
  /** Points in A0 [P, 2]. */
  a0: ArrayLike<number>;
  /** Matching points in A1 [P, 2]. */
  a1: ArrayLike<number>;
  /** Labels [P]. */
  labels: ArrayLike<number>;
  /** τ (default 0.2). */
  temperature?: number;
  /** Loss scale (default 0.2 / 0.07). */
  scale?: number;
  /** Runs of points averaged into one row (see {@link PointContrastOptions.pool}); default 1. */
  pool?: number;
}

function sampleRef(
  y: ArrayLike<number>,
  pts: ArrayLike<number>,
  B: number,
  h: number,
  w: number,
  D: number,
): Float64Array {
  const P = pts.length / 2, ppi = P / B, out = new Float64Array(P * D);
  for (let p = 0; p < P; p++) {
    for (const [c, wt] of taps(pts[2 * p], pts[2 * p + 1], Math.floor(p / ppi), h, w)) {
      if (c < 0) continue;
      for (let d = 0; d < D; d++) out[p * D + d] += wt * y[c * D + d];
    }
  }
  return out;
}

/** Float64 loss and d y1(A0) of the point contrast (labels shared by the A0 and A1 points of one row). */
export function pointContrastRef(x: PointContrastRefInput): { loss: number; dY1: Float64Array; anchors: number } {
  const { batch: B, h, w, dim: D } = x;
  const tau = x.temperature ?? POINT_TEMPERATURE, scale = x.scale ?? POINT_SCALE;
  const k = x.pool ?? 1;
  const Pp = x.a0.length / 2, P = Pp / k, N = 2 * P; // P, N: contrasted rows per view / in all
  const gs = new Float64Array(2 * Pp * D);
  gs.set(sampleRef(x.y1A0, x.a0, B, h, w, D), 0);
  gs.set(sampleRef(x.y1A1, x.a1, B, h, w, D), Pp * D);
  const g = new Float64Array(N * D); // region means of runs of k points
  for (let r = 0; r < N; r++) {
    for (let j = 0; j < k; j++) for (let d = 0; d < D; d++) g[r * D + d] += gs[(r * k + j) * D + d] / k;
  }
  const { y: f, norm } = rowsRef.l2Normalize(g, N, D);
  const lab = (i: number) => x.labels[(i % P) * k];
  const s = new Float64Array(N * N);
  for (let a = 0; a < N; a++) {
    for (let c = 0; c < N; c++) {
      let dot = 0;
      for (let d = 0; d < D; d++) dot += f[a * D + d] * f[c * D + d];
      s[a * N + c] = dot / tau;
    }
  }
  // per anchor: lse over D(a), positives, term
  const lse = new Float64Array(N), npos = new Float64Array(N);
  let total = 0, K = 0;
  for (let a = 0; a < N; a++) {
    if (lab(a) < 0) continue;
    let m = -Infinity;
    for (let c = 0; c < N; c++) if (c !== a && lab(c) >= 0) m = Math.max(m, s[a * N + c]);
    let z = 0, sp = 0;
    for (let c = 0; c < N; c++) {
      if (c === a || lab(c) < 0) continue;
      z += Math.exp(s[a * N + c] - m);
      if (lab(c) === lab(a)) npos[a]++, sp += s[a * N + c];
    }
    lse[a] = m + Math.log(z);
    if (npos[a] > 0) total += lse[a] - sp / npos[a], K++;
  }
  const loss = K > 0 ? (scale * total) / K : 0;
  // dL/ds_ac, then dF = (dS + dSᵀ) F / τ for the A0 rows
  const ds = new Float64Array(N * N);
  for (let a = 0; a < N; a++) {
    if (!(npos[a] > 0)) continue;
    for (let c = 0; c < N; c++) {
      if (c === a || lab(c) < 0) continue;
      ds[a * N + c] = (scale / K) * (Math.exp(s[a * N + c] - lse[a]) - (lab(c) === lab(a) ? 1 / npos[a] : 0));
    }
  }
  const df = new Float64Array(P * D);
  for (let a = 0; a < P; a++) {
    for (let c = 0; c < N; c++) {
      const k = (ds[a * N + c] + ds[c * N + a]) / tau;
      if (k === 0) continue;
      for (let d = 0; d < D; d++) df[a * D + d] += k * f[c * D + d];
    }
  }
  const dgp = rowsRef.l2NormalizeBackward(f.subarray(0, P * D), norm.subarray(0, P), df, P, D);
  const dY1 = new Float64Array(B * h * w * D);
  const ppi = Pp / B;
  for (let p = 0; p < Pp; p++) {
    const r = Math.floor(p / k);
    for (const [c, wt] of taps(x.a0[2 * p], x.a0[2 * p + 1], Math.floor(p / ppi), h, w)) {
      if (c < 0) continue;
      for (let d = 0; d < D; d++) dY1[c * D + d] += wt * dgp[r * D + d] / k;
    }
  }
  return { loss, dY1, anchors: K };
}
