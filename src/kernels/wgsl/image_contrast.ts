/**
 * WGSL templates of the image-level InfoNCE against a queue (target: the positive, at index 0).
 *
 * Logits are kept split: the positive l_pos[i] = q_i·k_i ([B]) and the negatives q·Queueᵀ ([B, Q], from the
 * GEMM), so nothing of size [B, 1 + Q] is assembled. The backward turns the negatives into their gradient
 * in place (at Q = 65536 the [B, Q] matrix is the largest buffer of the loss).
 *
 * - `row_dot`: pos[i] = ⟨q_i, k_i⟩ (one invocation per row).
 * - `info_nce` / `info_nce_backward`: {@link RowKernel}s over the negatives (both row variants).
 * - `info_nce_pos_grad`: the positive's share of dq, r[i, :] = dpos_i · k_i (added by the GEMM epilogue).
 * - `queue_enqueue`: writes the B keys at ring rows ptr .. ptr + B − 1 (mod Q).
 *
 * @module
 */
import { BUILTINS, f32, type KernelSpec, LINEAR_ID, read, u32, write } from "../../gpu/kernel.ts";
import type { RowKernel } from "./rows.ts";

/** Workgroup size of the element-wise kernels here. */
export const IC_WG = 64;

/** `pos[i] = Σ_d q[i, d] · k[i, d]`. */
export function rowDotSpec(): KernelSpec {
  return {
    name: "row_dot",
    buffers: [read("q"), read("k"), write("pos")],
    uniforms: [u32("rows"), u32("dim")],
    body: `
@compute @workgroup_size(${IC_WG})
fn main(${BUILTINS}) {
  let i = ${LINEAR_ID(IC_WG)};
  if (i >= P.rows) { return; }
  var s = 0.0;
  for (var d = 0u; d < P.dim; d++) { s += q[i * P.dim + d] * k[i * P.dim + d]; }
  pos[i] = s;
}`,
  };
}

/**
 * Per row i over the raw negatives `neg` [B, Q]: lse[i] = log(exp(pos_i/T) + Σ_j exp(neg_ij/T)) and
 * loss[i] = lse[i] − pos_i/T (cross-entropy with target 0 on [pos, neg] / T).
 */
export const INFO_NCE: RowKernel = {
  name: "info_nce",
  buffers: [read("neg"), read("pos"), write("loss"), write("lse_out")],
  scalars: ["inv_t"],
  code: (r) =>
    `let lp = pos[row] * P.inv_t;
  ${r.reduce("max", "neg[base + j]", "mn")}
  let m = max(mn * P.inv_t, lp);
  ${r.reduce("sum", "exp(neg[base + j] * P.inv_t - m)", "s")}
  let lse = m + log(s + exp(lp - m));
  if (${r.once}) {
    lse_out[row] = lse;
    loss[row] = lse - lp;
  }`,
};

/**
 * In place: `x[i, j] ← softmax_ij · gscale` with x the raw negatives on entry; gscale = 1 / (T·B) turns the
 * probability into d(mean loss)/d(q·Queue_j).
 */
export const INFO_NCE_BACKWARD: RowKernel = {
  name: "info_nce_backward",
  buffers: [write("x"), read("lse")],
  scalars: ["inv_t", "gscale"],
  code: (r) =>
    `let l = lse[row];
  ${r.each("x[base + j] = exp(x[base + j] * P.inv_t - l) * P.gscale;")}`,
};

/** `r[i, d] = (exp(pos_i/T − lse_i) − 1) · gscale · k[i, d]`: the positive logit's part of dq. */
export function infoNcePosGradSpec(): KernelSpec {
  return {
    name: "info_nce_pos_grad",
    buffers: [read("pos"), read("lse"), read("k"), write("r")],
    uniforms: [u32("rows"), u32("dim"), f32("inv_t"), f32("gscale")],
    body: `
@compute @workgroup_size(${IC_WG})
fn main(${BUILTINS}) {
  let t = ${LINEAR_ID(IC_WG)};
  if (t >= P.rows * P.dim) { return; }
  let i = t / P.dim;
  r[t] = (exp(pos[i] * P.inv_t - lse[i]) - 1.0) * P.gscale * k[t];
}`,
  };
}

/** `queue[(ptr + i) mod qsize, d] = k[i, d]` for i < rows (rows ≤ qsize, so no two writes collide). */
export function enqueueSpec(): KernelSpec {
  return {
    name: "queue_enqueue",
    buffers: [read("k"), write("queue")],
    uniforms: [u32("rows"), u32("dim"), u32("qsize"), u32("ptr")],
    body: `
@compute @workgroup_size(${IC_WG})
fn main(${BUILTINS}) {
  let t = ${LINEAR_ID(IC_WG)};
  if (t >= P.rows * P.dim) { return; }
  let i = t / P.dim;
  let d = t % P.dim;
  queue[((P.ptr + i) % P.qsize) * P.dim + d] = k[t];
}`,
  };
}
