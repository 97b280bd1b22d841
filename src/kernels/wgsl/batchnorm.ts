/**
 * WGSL templates for batch normalisation over x [M, C] (NHWC flattened, or [N, C] for BatchNorm1d), in G
 * groups of L = M / G consecutive rows ("ghost BN": the one-device stand-in for per-GPU statistics).
 *
 * Statistics are two-pass (mean, then Σ(x − mean)²) and chunked: each invocation sums one chunk of rows
 * of one (group, channel) in a fixed order, the chunks are folded by the same kernel until few are left,
 * and a last kernel adds those: deterministic, no atomics, and threads map to channels so reads are
 * contiguous. Every kernel takes a lane width `v` (1 or 4): with 4, a thread owns four adjacent channels
 * and moves them as one vec4 (C must divide by 4; the uniform `c` then counts vec4 channel groups).
 *
 * @module
 */
import { BUILTINS, f32, type KernelSpec, LINEAR_ID, read, u32, write } from "../../gpu/kernel.ts";

/** Workgroup size of the batch-norm kernels. */
export const BN_WG = 64;

/** Lanes per thread: one channel (f32) or four adjacent channels (vec4<f32>). */
export type BnLanes = 1 | 4;

const T = (v: BnLanes) => (v === 4 ? "vec4<f32>" : "f32");

const COMMON = [u32("rows"), u32("c"), u32("groups"), u32("chunk"), u32("chunks")];

/** Thread → (group, chunk, channel) and its row range. */
const partialHead = `
  let t = ${LINEAR_ID(BN_WG)};
  if (t >= P.groups * P.chunks * P.c) { return; }
  let ch = t % P.c;
  let k = (t / P.c) % P.chunks;
  let grp = t / (P.c * P.chunks);
  let L = P.rows / P.groups;
  let r0 = grp * L + k * P.chunk;
  let r1 = grp * L + min(L, (k + 1u) * P.chunk);`;

/** Partial sums over row chunks: Σx (`sum`) or Σ(x − mean[g, c])² (`sqdev`), into [G, chunks, C]. */
export function bnPartialSpec(kind: "sum" | "sqdev", v: BnLanes = 1): KernelSpec {
  const t = T(v);
  return {
    name: "bn_partial",
    key: `${kind}.${v}`,
    // the plain sum must not declare `mean`: auto layouts drop unused bindings
    buffers: kind === "sum" ? [read("x", t), write("part", t)] : [read("x", t), read("mean", t), write("part", t)],
    uniforms: COMMON,
    body: `
@compute @workgroup_size(${BN_WG})
fn main(${BUILTINS}) {${partialHead}
  ${kind === "sum" ? `let mu = ${t}(0.0);` : "let mu = mean[grp * P.c + ch];"}
  var s = ${t}(0.0);
  for (var r = r0; r < r1; r++) {
    let d = x[r * P.c + ch] - mu;
    s += ${kind === "sum" ? "d" : "d * d"};
  }
  part[t] = s;
}`,
  };
}

/** mean[g, c] = Σ_chunks part / L. */
export function bnMeanSpec(v: BnLanes = 1): KernelSpec {
  const t = T(v);
  return {
    name: "bn_mean",
    key: `${v}`,
    buffers: [read("part", t), write("mean", t)],
    uniforms: COMMON,
    body: `
@compute @workgroup_size(${BN_WG})
fn main(${BUILTINS}) {
  let t = ${LINEAR_ID(BN_WG)};
  if (t >= P.groups * P.c) { return; }
  let ch = t % P.c; let grp = t / P.c;
  var s = ${t}(0.0);
  for (var k = 0u; k < P.chunks; k++) { s += part[(grp * P.chunks + k) * P.c + ch]; }
  mean[t] = s / f32(P.rows / P.groups);
}`,
  };
}

/**
 * invstd[g, c] = 1/√(var + eps) from the Σ(x − mean)² partials; per channel, the running statistics move
 * towards the mean over groups of the group mean and unbiased variance (PyTorch's rule when G = 1).
 */
export function bnVarSpec(v: BnLanes = 1): KernelSpec {
  const t = T(v);
  return {
    name: "bn_var",
    key: `${v}`,
    buffers: [
      read("part", t),
      read("mean", t),
      write("invstd", t),
      write("running_mean", t),
      write("running_var", t),
    ],
    uniforms: [...COMMON, f32("eps"), f32("momentum"), u32("update_running")],
    body: `
@compute @workgroup_size(${BN_WG})
fn main(${BUILTINS}) {
  let ch = ${LINEAR_ID(BN_WG)};
  if (ch >= P.c) { return; }
  let L = f32(P.rows / P.groups);
  var mSum = ${t}(0.0); var vSum = ${t}(0.0);
  for (var grp = 0u; grp < P.groups; grp++) {
    var s = ${t}(0.0);
    for (var k = 0u; k < P.chunks; k++) { s += part[(grp * P.chunks + k) * P.c + ch]; }
    invstd[grp * P.c + ch] = 1.0 / sqrt(s / L + P.eps);
    mSum += mean[grp * P.c + ch];
    vSum += s / max(L - 1.0, 1.0);
  }
  if (P.update_running != 0u) {
    let g = f32(P.groups);
    running_mean[ch] = (1.0 - P.momentum) * running_mean[ch] + P.momentum * (mSum / g);
    running_var[ch] = (1.0 - P.momentum) * running_var[ch] + P.momentum * (vSum / g);
  }
}`,
  };
}

/** Eval mode: mean = running_mean, invstd = 1/√(running_var + eps) (one group). */
export function bnEvalStatsSpec(v: BnLanes = 1): KernelSpec {
  const t = T(v);
  return {
    name: "bn_eval_stats",
    key: `${v}`,
    buffers: [read("running_mean", t), read("running_var", t), write("mean", t), write("invstd", t)],
    uniforms: [u32("c"), f32("eps")],
    body: `
@compute @workgroup_size(${BN_WG})
fn main(${BUILTINS}) {
  let ch = ${LINEAR_ID(BN_WG)};
  if (ch >= P.c) { return; }
  mean[ch] = running_mean[ch];
  invstd[ch] = 1.0 / sqrt(running_var[ch] + P.eps);
}`,
  };
}

/** y = relu?((x − mean) · invstd · γ + β (+ residual)); `groups` = 1 with eval statistics. */
export function bnApplySpec(residual: boolean, relu: boolean, lanes: BnLanes = 1): KernelSpec {
  const t = T(lanes);
  let v = "(x[t] - mean[gc]) * invstd[gc] * gamma[ch] + beta[ch]";
  if (residual) v = `${v} + res[t]`;
  if (relu) v = `max(${v}, ${t}(0.0))`;
  return {
    name: "bn_apply",
    key: `${residual ? "res" : ""}.${relu ? "relu" : ""}.${lanes}`,
    buffers: [
      read("x", t),
      read("mean", t),
      read("invstd", t),
      read("gamma", t),
      read("beta", t),
      ...(residual ? [read("res", t)] : []),
      write("y", t),
    ],
    uniforms: [u32("rows"), u32("c"), u32("groups")],
    body: `
@compute @workgroup_size(${BN_WG})
fn main(${BUILTINS}) {
  let t = ${LINEAR_ID(BN_WG)};
  if (t >= P.rows * P.c) { return; }
  let ch = t % P.c;
  let grp = (t / P.c) / (P.rows / P.groups);
  let gc = grp * P.c + ch;
  y[t] = ${v};
}`,
  };
}

/** The incoming gradient, masked by the ReLU that followed the BN when there was one. */
const maskedGrad = (relu: boolean, i: string, t: string) =>
  relu ? `select(${t}(0.0), dy[${i}], y[${i}] > ${t}(0.0))` : `dy[${i}]`;

/**
 * Backward partials over row chunks: Σ g and Σ g·x̂ into part [2, G, chunks, C], where g is dy masked by
 * the fused ReLU. With `writeGrad`, g itself is stored (the gradient that the residual branch receives).
 */
export function bnGradPartialSpec(relu: boolean, writeGrad: boolean, v: BnLanes = 1): KernelSpec {
  const t = T(v);
  return {
    name: "bn_grad_partial",
    key: `${relu ? "relu" : ""}.${writeGrad ? "g" : ""}.${v}`,
    buffers: [
      read("x", t),
      ...(relu ? [read("y", t)] : []),
      read("dy", t),
      read("mean", t),
      read("invstd", t),
      write("part", t),
      ...(writeGrad ? [write("gout", t)] : []),
    ],
    uniforms: COMMON,
    body: `
@compute @workgroup_size(${BN_WG})
fn main(${BUILTINS}) {${partialHead}
  let mu = mean[grp * P.c + ch]; let is = invstd[grp * P.c + ch];
  var s1 = ${t}(0.0); var s2 = ${t}(0.0);
  for (var r = r0; r < r1; r++) {
    let i = r * P.c + ch;
    let g = ${maskedGrad(relu, "i", t)};
    ${writeGrad ? "gout[i] = g;" : ""}
    s1 += g;
    s2 += g * (x[i] - mu) * is;
  }
  part[t] = s1;
  part[P.groups * P.chunks * P.c + t] = s2;
}`,
  };
}

/** Per (group, channel) sums S1 = Σg, S2 = Σg·x̂ into sums [2, G, C]; dβ = Σ_g S1, dγ = Σ_g S2. */
export function bnGradFinalizeSpec(v: BnLanes = 1): KernelSpec {
  const t = T(v);
  return {
    name: "bn_grad_finalize",
    key: `${v}`,
    buffers: [read("part", t), write("sums", t), write("dgamma", t), write("dbeta", t)],
    uniforms: COMMON,
    body: `
@compute @workgroup_size(${BN_WG})
fn main(${BUILTINS}) {
  let ch = ${LINEAR_ID(BN_WG)};
  if (ch >= P.c) { return; }
  let half = P.groups * P.chunks * P.c;
  var d1 = ${t}(0.0); var d2 = ${t}(0.0);
  for (var grp = 0u; grp < P.groups; grp++) {
    var s1 = ${t}(0.0); var s2 = ${t}(0.0);
    for (var k = 0u; k < P.chunks; k++) {
      let i = (grp * P.chunks + k) * P.c + ch;
      s1 += part[i]; s2 += part[half + i];
    }
    sums[grp * P.c + ch] = s1;
    sums[P.groups * P.c + grp * P.c + ch] = s2;
    d1 += s1; d2 += s2;
  }
  dbeta[ch] = d1;
  dgamma[ch] = d2;
}`,
  };
}

/** dx = γ·invstd·(g − S1/L − x̂·S2/L). */
export function bnGradApplySpec(relu: boolean, v: BnLanes = 1): KernelSpec {
  const t = T(v);
  return {
    name: "bn_grad_apply",
    key: `${relu ? "relu" : ""}.${v}`,
    buffers: [
      read("x", t),
      ...(relu ? [read("y", t)] : []),
      read("dy", t),
      read("mean", t),
      read("invstd", t),
      read("gamma", t),
      read("sums", t),
      write("dx", t),
    ],
    uniforms: [u32("rows"), u32("c"), u32("groups")],
    body: `
@compute @workgroup_size(${BN_WG})
fn main(${BUILTINS}) {
  let t = ${LINEAR_ID(BN_WG)};
  if (t >= P.rows * P.c) { return; }
  let ch = t % P.c;
  let L = P.rows / P.groups;
  let grp = (t / P.c) / L;
  let gc = grp * P.c + ch;
  let is = invstd[gc];
  let xh = (x[t] - mean[gc]) * is;
  let g = ${maskedGrad(relu, "t", t)};
  let invL = 1.0 / f32(L);
  dx[t] = gamma[ch] * is * (g - sums[gc] * invL - xh * sums[P.groups * P.c + gc] * invL);
}`,
  };
}
