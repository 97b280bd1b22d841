/**
 * Batch normalisation over [M, C] rows (NHWC activations or [N, C] features), training mode with batch
 * statistics in G groups ("ghost BN"), eval mode with running statistics, optional fused residual add
 * and ReLU; backward with the ReLU mask fused. Float64 references beside.
 *
 * @module
 */
import {
  BN_WG,
  bnApplySpec,
  bnEvalStatsSpec,
  bnGradApplySpec,
  bnGradFinalizeSpec,
  bnGradPartialSpec,
  type BnLanes,
  bnMeanSpec,
  bnPartialSpec,
  bnVarSpec,
} from "./wgsl/batchnorm.ts";
import type { Bound } from "../gpu/bound.ts";
import type { Gpu } from "../gpu/device.ts";
import { bind, type Dispatch, grid1d } from "../gpu/kernel.ts";
import { Tensor } from "../gpu/tensor.ts";

/** Shape and options of one batch-norm layer application. */
export interface BnShape {
  /** Rows: batch × spatial positions. */
  rows: number;
  /** Channels. */
  c: number;
  /** Ghost-BN groups (rows must divide evenly); 1 = whole batch. */
  groups: number;
  /** Added to the variance before the square root. */
  eps?: number;
  /** Weight of the new batch statistics in the running averages. */
  momentum?: number;
  /**
   * Threads to aim for in the partial sums (default: 131072 on GPUs, which need many loads in flight,
   * 2048 on CPU adapters, where each thread is a loop on a core).
   */
  threads?: number;
}

/** The statistics a training forward saves for the backward. */
export interface BnSaved {
  /** Batch mean per (group, channel). */
  mean: Tensor;
  /** Inverse standard deviation per (group, channel). */
  invstd: Tensor;
}

/** Partial sums left after folding: the final kernels add at most this many per (group, channel). */
const FOLD = 32;

/** Channels per thread: four when C allows vec4 access. */
function lanesOf(s: BnShape): BnLanes {
  return s.c % 4 === 0 ? 4 : 1;
}

/**
 * Rows per chunk so that groups × chunks × C/lanes invocations keep the adapter busy. On a CPU adapter (and
 * unless `threads` is given) at most FOLD chunks: its cores are few, and every fold pass is one more dispatch.
 */
function chunking(gpu: Gpu, s: BnShape, lanes: BnLanes): { chunk: number; chunks: number } {
  const L = s.rows / s.groups, cpu = gpu.summary.adapterClass !== "gpu";
  const threads = s.threads ?? (cpu ? 2048 : 131072);
  const most = cpu && s.threads === undefined ? Math.min(L, FOLD) : L;
  const chunks = Math.max(1, Math.min(most, Math.ceil(threads / (s.groups * s.c / lanes))));
  const chunk = Math.ceil(L / chunks);
  return { chunk, chunks: Math.ceil(L / chunk) };
}

/**
 * Folds partials [G', chunks, C] by FOLD× per pass with the plain-sum kernel (the chunks of each group are
 * its rows) until at most FOLD remain. Returns the dispatches, the final partials and their chunk count.
 */
async function foldPartials(
  gpu: Gpu,
  part: Tensor,
  groups: number,
  chunks: number,
  cv: number,
  lanes: BnLanes,
  label: string,
): Promise<Bound & { part: Tensor; chunks: number }> {
  const dispatches: Dispatch[] = [], owned: Tensor[] = [];
  while (chunks > FOLD) {
    const n = Math.ceil(chunks / FOLD), chunk = Math.ceil(chunks / n), next = Math.ceil(chunks / chunk);
    const out = Tensor.empty(gpu, [groups, next, cv * lanes], "f32", `${part.name} folded`);
    const u = { rows: groups * chunks, c: cv, groups, chunk, chunks: next };
    dispatches.push(
      await bind(gpu, bnPartialSpec("sum", lanes), [part, out], u, grid1d(groups * next * cv, BN_WG), label),
    );
    owned.push(out);
    part = out;
    chunks = next;
  }
  return { dispatches, part, chunks, owned };
}

function check(s: BnShape, x: Tensor): void {
  if (s.rows % s.groups) throw new Error(`batch norm: ${s.rows} rows do not split into ${s.groups} groups`);
  if (x.numel !== s.rows * s.c) throw new Error(`batch norm: "${x.name}" is not [${s.rows}, ${s.c}]`);
}

/** A bound forward: its dispatches, the statistics the backward needs, and what it owns (partial sums, statistics). */
export interface BnForward extends Bound {
  /** The statistics the backward needs. */
  saved: BnSaved;
}

/**
 * Training-mode forward: batch statistics per group, running statistics updated (momentum, unbiased
 * variance), y = relu?((x − μ)/σ · γ + β (+ residual)).
 */
export async function bnForwardTrain(
  gpu: Gpu,
  x: Tensor,
  y: Tensor,
  gamma: Tensor,
  beta: Tensor,
  runningMean: Tensor,
  runningVar: Tensor,
  s: BnShape,
  o: { residual?: Tensor; relu?: boolean; updateRunning?: boolean } = {},
): Promise<BnForward> {
  check(s, x);
  const lanes = lanesOf(s), cv = s.c / lanes;
  const { chunk, chunks } = chunking(gpu, s, lanes);
  const common = { rows: s.rows, c: cv, groups: s.groups, chunk, chunks };
  const part = Tensor.empty(gpu, [s.groups, chunks, s.c], "f32", `${x.name} bn partials`);
  const mean = Tensor.empty(gpu, [s.groups, s.c], "f32", `${x.name} bn mean`);
  const invstd = Tensor.empty(gpu, [s.groups, s.c], "f32", `${x.name} bn invstd`);
  const nPart = s.groups * chunks * cv;
  const sum = await foldPartials(gpu, part, s.groups, chunks, cv, lanes, "bn_stats");
  const sq = await foldPartials(gpu, part, s.groups, chunks, cv, lanes, "bn_stats");
  const folded = { ...common, chunks: sum.chunks };
  const dispatches = [
    await bind(gpu, bnPartialSpec("sum", lanes), [x, part], common, grid1d(nPart, BN_WG), "bn_stats"),
    ...sum.dispatches,
    await bind(gpu, bnMeanSpec(lanes), [sum.part, mean], folded, grid1d(s.groups * cv, BN_WG), "bn_stats"),
    await bind(gpu, bnPartialSpec("sqdev", lanes), [x, mean, part], common, grid1d(nPart, BN_WG), "bn_stats"),
    ...sq.dispatches,
    await bind(
      gpu,
      bnVarSpec(lanes),
      [sq.part, mean, invstd, runningMean, runningVar],
      {
        ...folded,
        eps: s.eps ?? 1e-5,
        momentum: s.momentum ?? 0.1,
        update_running: o.updateRunning === false ? 0 : 1,
      },
      grid1d(cv, BN_WG),
      "bn_stats",
    ),
    await bnApply(gpu, x, y, { mean, invstd }, gamma, beta, s, o),
  ];
  return { dispatches, saved: { mean, invstd }, owned: [part, mean, invstd, ...sum.owned, ...sq.owned] };
}

function bnApply(
  gpu: Gpu,
  x: Tensor,
  y: Tensor,
  st: BnSaved,
  gamma: Tensor,
  beta: Tensor,
  s: BnShape,
  o: { residual?: Tensor; relu?: boolean },
): Promise<Dispatch> {
  const bufs = [x, st.mean, st.invstd, gamma, beta, ...(o.residual ? [o.residual] : []), y];
  const lanes = lanesOf(s), cv = s.c / lanes;
  return bind(
    gpu,
    bnApplySpec(!!o.residual, !!o.relu, lanes),
    bufs,
    { rows: s.rows, c: cv, groups: s.groups },
    grid1d(s.rows * cv, BN_WG),
    "bn_apply",
  );
}

/** Eval-mode forward with the running statistics. */
export async function bnForwardEval(
  gpu: Gpu,
  x: Tensor,
  y: Tensor,
  gamma: Tensor,
  beta: Tensor,
  runningMean: Tensor,
  runningVar: Tensor,
  s: BnShape,
  o: { residual?: Tensor; relu?: boolean } = {},
): Promise<BnForward> {
  check(s, x);
  const mean = Tensor.empty(gpu, [s.c], "f32", `${x.name} bn eval mean`);
  const invstd = Tensor.empty(gpu, [s.c], "f32", `${x.name} bn eval invstd`);
  const one = { ...s, groups: 1 };
  const lanes = lanesOf(s), cv = s.c / lanes;
  const dispatches = [
    await bind(
      gpu,
      bnEvalStatsSpec(lanes),
      [runningMean, runningVar, mean, invstd],
      { c: cv, eps: s.eps ?? 1e-5 },
      grid1d(cv, BN_WG),
      "bn_stats",
    ),
    await bnApply(gpu, x, y, { mean, invstd }, gamma, beta, one, o),
  ];
  return { dispatches, saved: { mean, invstd }, owned: [mean, invstd] };
}

/**
 * Backward of a training-mode forward. `dy` is the gradient of the layer's output `y`; with `relu` it is
 * masked by y > 0. `gradOut` receives that masked gradient (what a fused residual input's branch gets).
 */
export async function bnBackward(
  gpu: Gpu,
  x: Tensor,
  y: Tensor,
  dy: Tensor,
  saved: BnSaved,
  gamma: Tensor,
  dx: Tensor,
  dgamma: Tensor,
  dbeta: Tensor,
  s: BnShape,
  o: { relu?: boolean; gradOut?: Tensor } = {},
): Promise<Bound> {
  check(s, x);
  const relu = !!o.relu;
  const lanes = lanesOf(s), cv = s.c / lanes;
  const { chunk, chunks } = chunking(gpu, s, lanes);
  const common = { rows: s.rows, c: cv, groups: s.groups, chunk, chunks };
  const part = Tensor.empty(gpu, [2, s.groups, chunks, s.c], "f32", `${x.name} bn grad partials`);
  const sums = Tensor.empty(gpu, [2, s.groups, s.c], "f32", `${x.name} bn grad sums`);
  // [2, G, chunks, C] folds as 2G groups: both sums at once
  const fold = await foldPartials(gpu, part, 2 * s.groups, chunks, cv, lanes, "bn_backward");
  const yy = relu ? [y] : [];
  const dispatches = [
    await bind(
      gpu,
      bnGradPartialSpec(relu, !!o.gradOut, lanes),
      [x, ...yy, dy, saved.mean, saved.invstd, part, ...(o.gradOut ? [o.gradOut] : [])],
      common,
      grid1d(s.groups * chunks * cv, BN_WG),
      "bn_backward",
    ),
    ...fold.dispatches,
    await bind(
      gpu,
      bnGradFinalizeSpec(lanes),
      [fold.part, sums, dgamma, dbeta],
      { ...common, chunks: fold.chunks },
      grid1d(cv, BN_WG),
      "bn_backward",
    ),
    await bind(
      gpu,
      bnGradApplySpec(relu, lanes),
      [x, ...yy, dy, saved.mean, saved.invstd, gamma, sums, dx],
      { rows: s.rows, c: cv, groups: s.groups },
      grid1d(s.rows * cv, BN_WG),
      "bn_backward",
    ),
  ];
  return { dispatches, owned: [part, sums, ...fold.owned] };
}

// ---------------------------------------------------------------------------------------------------------
// float64 references

/** Reference training forward: y, per-group mean and biased variance, new running statistics. */
export function bnForwardRef(
  x: ArrayLike<number>,
  gamma: ArrayLike<number>,
  beta: ArrayLike<number>,
  runningMean: ArrayLike<number>,
  runningVar: ArrayLike<number>,
  s: BnShape,
  o: { residual?: ArrayLike<number>; relu?: boolean } = {},
): {
  y: Float64Array;
  mean: Float64Array;
  variance: Float64Array;
  runningMean: Float64Array;
  runningVar: Float64Array;
} {
  const { rows, c, groups } = s, L = rows / groups, eps = s.eps ?? 1e-5, mom = s.momentum ?? 0.1;
  const mean = new Float64Array(groups * c), variance = new Float64Array(groups * c);
  for (let g = 0; g < groups; g++) {
    for (let ch = 0; ch < c; ch++) {
      let m = 0;
      for (let r = g * L; r < (g + 1) * L; r++) m += x[r * c + ch];
      m /= L;
      let v = 0;
      for (let r = g * L; r < (g + 1) * L; r++) v += (x[r * c + ch] - m) ** 2;
      mean[g * c + ch] = m;
      variance[g * c + ch] = v / L;
    }
  }
  const y = new Float64Array(rows * c);
  for (let r = 0; r < rows; r++) {
    const g = Math.floor(r / L);
    for (let ch = 0; ch < c; ch++) {
      const i = r * c + ch;
      let v = (x[i] - mean[g * c + ch]) / Math.sqrt(variance[g * c + ch] + eps) * gamma[ch] + beta[ch];
      if (o.residual) v += o.residual[i];
      y[i] = o.relu ? Math.max(v, 0) : v;
    }
  }
  const rm = new Float64Array(c), rv = new Float64Array(c);
  for (let ch = 0; ch < c; ch++) {
    let ms = 0, vs = 0;
    for (let g = 0; g < groups; g++) ms += mean[g * c + ch], vs += variance[g * c + ch] * L / Math.max(L - 1, 1);
    rm[ch] = (1 - mom) * runningMean[ch] + mom * ms / groups;
    rv[ch] = (1 - mom) * runningVar[ch] + mom * vs / groups;
  }
  return { y, mean, variance, runningMean: rm, runningVar: rv };
}

/** Reference backward (through the optional ReLU): dx, dγ, dβ and the masked gradient g. */
export function bnBackwardRef(
  x: ArrayLike<number>,
  y: ArrayLike<number>,
  dy: ArrayLike<number>,
  gamma: ArrayLike<number>,
  s: BnShape,
  relu = false,
): { dx: Float64Array; dgamma: Float64Array; dbeta: Float64Array; g: Float64Array } {
  const { rows, c, groups } = s, L = rows / groups, eps = s.eps ?? 1e-5;
  const g = Float64Array.from({ length: rows * c }, (_, i) => (relu && !(y[i] > 0) ? 0 : dy[i]));
  const dx = new Float64Array(rows * c), dgamma = new Float64Array(c), dbeta = new Float64Array(c);
  for (let gr = 0; gr < groups; gr++) {
    for (let ch = 0; ch < c; ch++) {
      let m = 0;
      for (let r = gr * L; r < (gr + 1) * L; r++) m += x[r * c + ch];
      m /= L;
      let v = 0;
      for (let r = gr * L; r < (gr + 1) * L; r++) v += (x[r * c + ch] - m) ** 2;
      const is = 1 / Math.sqrt(v / L + eps);
      let s1 = 0, s2 = 0;
      for (let r = gr * L; r < (gr + 1) * L; r++) {
        const i = r * c + ch;
        s1 += g[i], s2 += g[i] * (x[i] - m) * is;
      }
      dbeta[ch] += s1, dgamma[ch] += s2;
      for (let r = gr * L; r < (gr + 1) * L; r++) {
        const i = r * c + ch;
        dx[i] = gamma[ch] * is * (g[i] - s1 / L - (x[i] - m) * is * s2 / L);
      }
    }
  }
  return { dx, dgamma, dbeta, g };
}
