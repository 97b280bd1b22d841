/**
 * WGSL templates of point-level region contrast (SupCon with (image, region) labels).
 *
 * - `point_sample`: bilinear sampling (align_corners = false, zero padding) of two NHWC row maps at the
 *   points of both views, written as one [2P, D] matrix (A0 points, then A1 points).
 * - `point_sample_backward`: the transposed sampling as a gather: each (cell, channel) sums the weighted
 *   gradients of the points listed for that cell in a host-built CSR, in list order (deterministic, no atomics).
 * - `supcon_rows`: one Gram row per anchor (a {@link RowKernel}, so both row variants exist): the masked
 *   log-sum-exp over the other valid points, the positive count and the anchor's loss term.
 * - `supcon_loss`: one workgroup sums the anchor terms into the scalar loss and the anchor count.
 * - `supcon_grad`: the symmetric Gram gradient for the anchors whose features receive a gradient.
 *
 * @module
 */
import { BUILTINS, f32, i32, type KernelSpec, LINEAR_ID, read, u32, write } from "../../gpu/kernel.ts";
import type { RowKernel } from "./rows.ts";

/** Workgroup size of the element-wise kernels here. */
export const PC_WG = 64;

const NEG_MAX = "-3.4028234e38";

/**
 * `out[r, d]` = bilinear sample of map `y0` (rows r < np) or `y1` (rows r ≥ np) at `pts[r]` = (x, y) in
 * feature-grid units (cell (i, j) centred at (j + 0.5, i + 0.5)), image `(r mod np) / ppi`; taps outside the
 * map read zero. Maps are [B·h·w, dim] with row (b·h + i)·w + j.
 */
export function pointSampleSpec(): KernelSpec {
  const sample = (buf: string) => `
fn sample_${buf}(b: i32, cx: i32, cy: i32, fx: f32, fy: f32, d: u32) -> f32 {
  var s = 0.0;
  for (var k = 0; k < 4; k++) {
    let xi = cx + (k & 1);
    let yi = cy + (k >> 1u);
    let wx = select(1.0 - fx, fx, (k & 1) == 1);
    let wy = select(1.0 - fy, fy, (k >> 1u) == 1);
    if (xi >= 0 && xi < P.w && yi >= 0 && yi < P.h) {
      s += wx * wy * ${buf}[u32((b * P.h + yi) * P.w + xi) * P.dim + d];
    }
  }
  return s;
}`;
  return {
    name: "point_sample",
    buffers: [read("y0"), read("y1"), read("pts"), write("out")],
    uniforms: [u32("np"), u32("dim"), i32("h"), i32("w"), u32("ppi")],
    body: `${sample("y0")}
${sample("y1")}
@compute @workgroup_size(${PC_WG})
fn main(${BUILTINS}) {
  let t = ${LINEAR_ID(PC_WG)};
  if (t >= 2u * P.np * P.dim) { return; }
  let r = t / P.dim;
  let d = t % P.dim;
  let p = r % P.np;
  let b = i32(p / P.ppi);
  let x = pts[2u * r] - 0.5;
  let y = pts[2u * r + 1u] - 0.5;
  let xf = floor(x);
  let yf = floor(y);
  let cx = i32(xf);
  let cy = i32(yf);
  if (r < P.np) {
    out[t] = sample_y0(b, cx, cy, x - xf, y - yf, d);
  } else {
    out[t] = sample_y1(b, cx, cy, x - xf, y - yf, d);
  }
}`,
  };
}

/**
 * `dy[cell, d] = Σ_{e ∈ ptr[cell] .. ptr[cell+1]−1} wt[e] · dg[idx[e], d]`: the backward of the A0 half of
 * {@link pointSampleSpec}, every cell written (zero when no point touches it).
 */
export function pointSampleBackwardSpec(): KernelSpec {
  return {
    name: "point_sample_backward",
    buffers: [read("ptr", "u32"), read("idx", "u32"), read("wt"), read("dg"), write("dy")],
    uniforms: [u32("cells"), u32("dim")],
    body: `
@compute @workgroup_size(${PC_WG})
fn main(${BUILTINS}) {
  let t = ${LINEAR_ID(PC_WG)};
  if (t >= P.cells * P.dim) { return; }
  let cell = t / P.dim;
  let d = t % P.dim;
  var s = 0.0;
  for (var e = ptr[cell]; e < ptr[cell + 1u]; e++) { s += wt[e] * dg[idx[e] * P.dim + d]; }
  dy[t] = s;
}`,
  };
}

/**
 * Per anchor a (a row of the Gram matrix G = F·Fᵀ, s = G / τ): with D(a) = valid c ≠ a and
 * Pos(a) = c ∈ D(a) with lab[c] = lab[a] ≥ 0, writes lse[a] = log Σ_{D(a)} exp(s_ac), npos[a] = |Pos(a)| and
 * rloss[a] = lse[a] − mean_{Pos(a)} s_ab (0 when Pos(a) is empty).
 */
export const SUPCON_ROWS: RowKernel = {
  name: "supcon_rows",
  buffers: [read("gram"), read("lab", "i32"), write("lse_out"), write("npos"), write("rloss")],
  scalars: ["inv_tau"],
  code: (r) =>
    `let la = lab[row];
  ${r.reduce("max", `select(${NEG_MAX}, gram[base + j], j != row && lab[j] >= 0)`, "mg")}
  ${r.reduce("sum", "select(0.0, exp((gram[base + j] - mg) * P.inv_tau), j != row && lab[j] >= 0)", "z")}
  ${r.reduce("sum", "select(0.0, 1.0, j != row && la >= 0 && lab[j] == la)", "np")}
  ${r.reduce("sum", "select(0.0, gram[base + j], j != row && la >= 0 && lab[j] == la)", "sp")}
  let lse = mg * P.inv_tau + log(z);
  if (${r.once}) {
    lse_out[row] = lse;
    npos[row] = np;
    rloss[row] = select(0.0, lse - sp * P.inv_tau / max(np, 1.0), np > 0.0);
  }`,
};

/** Threads of {@link supconLossSpec}'s single workgroup. */
export const LOSS_WG = 64;

/**
 * One workgroup: `count[0]` = anchors with a positive, `loss[0] = scale · Σ rloss / max(count, 1)`, both
 * summed in a fixed order.
 */
export function supconLossSpec(): KernelSpec {
  return {
    name: "supcon_loss",
    buffers: [read("rloss"), read("npos"), write("loss"), write("count")],
    uniforms: [u32("n"), f32("scale")],
    body: `
var<workgroup> sl: array<f32, ${LOSS_WG}>;
var<workgroup> sc: array<f32, ${LOSS_WG}>;
@compute @workgroup_size(${LOSS_WG})
fn main(@builtin(local_invocation_id) lid: vec3<u32>) {
  var a = 0.0;
  var c = 0.0;
  for (var i = lid.x; i < P.n; i += ${LOSS_WG}u) {
    a += rloss[i];
    c += select(0.0, 1.0, npos[i] > 0.0);
  }
  sl[lid.x] = a;
  sc[lid.x] = c;
  workgroupBarrier();
  for (var s = ${LOSS_WG / 2}u; s > 0u; s >>= 1u) {
    if (lid.x < s) {
      sl[lid.x] += sl[lid.x + s];
      sc[lid.x] += sc[lid.x + s];
    }
    workgroupBarrier();
  }
  if (lid.x == 0u) {
    loss[0] = P.scale * sl[0] / max(sc[0], 1.0);
    count[0] = sc[0];
  }
}`,
  };
}

/**
 * `gs[a, c] = (scale / max(count, 1) / τ) · (g(a, c) + g(c, a))` for a < rows, c < n, where
 * g(a, c) = [npos[a] > 0, c ≠ a, lab[c] ≥ 0] · (exp(s_ac − lse[a]) − [lab[c] = lab[a]] / npos[a]) is
 * ∂(Σ rloss)/∂s_ac. Then dF[a] = gs[a, :] · F (the Gram is symmetric, so both s_ac and s_ca depend on F_a).
 */
export function supconGradSpec(): KernelSpec {
  return {
    name: "supcon_grad",
    buffers: [read("gram"), read("lab", "i32"), read("lse"), read("npos"), read("count"), write("gs")],
    uniforms: [u32("rows"), u32("n"), f32("inv_tau"), f32("scale")],
    body: `
fn g(a: u32, c: u32) -> f32 {
  let na = npos[a];
  if (na <= 0.0 || a == c || lab[c] < 0) { return 0.0; }
  let p = exp(gram[a * P.n + c] * P.inv_tau - lse[a]);
  return p - select(0.0, 1.0 / na, lab[c] == lab[a]);
}
@compute @workgroup_size(${PC_WG})
fn main(${BUILTINS}) {
  let t = ${LINEAR_ID(PC_WG)};
  if (t >= P.rows * P.n) { return; }
  let a = t / P.n;
  let c = t % P.n;
  let coef = P.scale * P.inv_tau / max(count[0], 1.0);
  gs[t] = coef * (g(a, c) + g(c, a));
}`,
  };
}
