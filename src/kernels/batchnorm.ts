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
  bnMeanSpec,
  bnPartialSpec,
  bnVarSpec,
} from "../../shaders/batchnorm.ts";
import type { Gpu } from "../gpu/device.ts";
import { bind, type Dispatch, grid1d } from "../gpu/kernel.ts";
import { Tensor } from "../gpu/tensor.ts";

/** Shape and options of one batch-norm layer application. */
export interface BnShape {
  rows: number;
  c: number;
  /** Ghost-BN groups (rows must divide evenly); 1 = whole batch. */
  groups: number;
  eps?: number;
  momentum?: number;
}

/** The statistics a training forward saves for the backward. */
export interface BnSaved {
  mean: Tensor;
  invstd: Tensor;
}

/** Rows per chunk so that groups × chunks × C invocations keep the adapter busy. */
function chunking(s: BnShape): { chunk: number; chunks: number } {
  const L = s.rows / s.groups;
  const chunks = Math.max(1, Math.min(L, Math.ceil(8192 / (s.groups * s.c))));
  const chunk = Math.ceil(L / chunks);
  return { chunk, chunks: Math.ceil(L / chunk) };
}

function check(s: BnShape, x: Tensor): void {
  if (s.rows % s.groups) throw new Error(`batch norm: ${s.rows} rows do not split into ${s.groups} groups`);
  if (x.numel !== s.rows * s.c) throw new Error(`batch norm: "${x.name}" is not [${s.rows}, ${s.c}]`);
}

/** A bound forward: dispatches, saved statistics, scratch it owns. */
export interface BnForward {
  dispatches: Dispatch[];
  saved: BnSaved;
  scratch: Tensor[];
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
  const { chunk, chunks } = chunking(s);
  const common = { rows: s.rows, c: s.c, groups: s.groups, chunk, chunks };
  const part = Tensor.empty(gpu, [s.groups, chunks, s.c], "f32", `${x.name} bn partials`);
  const mean = Tensor.empty(gpu, [s.groups, s.c], "f32", `${x.name} bn mean`);
  const invstd = Tensor.empty(gpu, [s.groups, s.c], "f32", `${x.name} bn invstd`);
  const nPart = s.groups * chunks * s.c;
  const dispatches = [
    await bind(gpu, bnPartialSpec("sum"), [x, part], common, grid1d(nPart, BN_WG), "bn_stats"),
    await bind(gpu, bnMeanSpec(), [part, mean], common, grid1d(s.groups * s.c, BN_WG), "bn_stats"),
    await bind(gpu, bnPartialSpec("sqdev"), [x, mean, part], common, grid1d(nPart, BN_WG), "bn_stats"),
    await bind(
      gpu,
      bnVarSpec(),
      [part, mean, invstd, runningMean, runningVar],
      {
        ...common,
        eps: s.eps ?? 1e-5,
        momentum: s.momentum ?? 0.1,
        update_running: o.updateRunning === false ? 0 : 1,
      },
      grid1d(s.c, BN_WG),
      "bn_stats",
    ),
    await bnApply(gpu, x, y, { mean, invstd }, gamma, beta, s, o),
  ];
  return { dispatches, saved: { mean, invstd }, scratch: [part, mean, invstd] };
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
  return bind(
    gpu,
    bnApplySpec(!!o.residual, !!o.relu),
    bufs,
    { rows: s.rows, c: s.c, groups: s.groups },
    grid1d(s.rows * s.c, BN_WG),
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
  const dispatches = [
    await bind(
      gpu,
      bnEvalStatsSpec(),
      [runningMean, runningVar, mean, invstd],
      { c: s.c, eps: s.eps ?? 1e-5 },
      grid1d(s.c, BN_WG),
      "bn_stats",
    ),
    await bnApply(gpu, x, y, { mean, invstd }, gamma, beta, one, o),
  ];
  return { dispatches, saved: { mean, invstd }, scratch: [mean, invstd] };
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
): Promise<{ dispatches: Dispatch[]; scratch: Tensor[] }> {
  check(s, x);
  const relu = !!o.relu;
  const { chunk, chunks } = chunking(s);
  const common = { rows: s.rows, c: s.c, groups: s.groups, chunk, chunks };
  const part = Tensor.empty(gpu, [2, s.groups, chunks, s.c], "f32", `${x.name} bn grad partials`);
  const sums = Tensor.empty(gpu, [2, s.groups, s.c], "f32", `${x.name} bn grad sums`);
  const yy = relu ? [y] : [];
  const dispatches = [
    await bind(
      gpu,
      bnGradPartialSpec(relu, !!o.gradOut),
      [x, ...yy, dy, saved.mean, saved.invstd, part, ...(o.gradOut ? [o.gradOut] : [])],
      common,
      grid1d(s.groups * chunks * s.c, BN_WG),
      "bn_backward",
    ),
    await bind(gpu, bnGradFinalizeSpec(), [part, sums, dgamma, dbeta], common, grid1d(s.c, BN_WG), "bn_backward"),
    await bind(
      gpu,
      bnGradApplySpec(relu),
      [x, ...yy, dy, saved.mean, saved.invstd, gamma, sums, dx],
      { rows: s.rows, c: s.c, groups: s.groups },
      grid1d(s.rows * s.c, BN_WG),
      "bn_backward",
    ),
  ];
  return { dispatches, scratch: [part, sums] };
}

// ---------------------------------------------------------------------------------------------------------
// float64 references

type A = ArrayLike<number>;

/** Reference training forward: y, per-group mean and biased variance, new running statistics. */
export function bnForwardRef(
  x: A,
  gamma: A,
  beta: A,
  runningMean: A,
  runningVar: A,
  s: BnShape,
  o: { residual?: A; relu?: boolean } = {},
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
  x: A,
  y: A,
  dy: A,
  gamma: A,
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
