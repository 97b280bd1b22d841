/**
 * WGSL templates for the optimizer and the momentum encoder, over flat parameter buffers.
 *
 * @module
 */
import { BUILTINS, f32, type KernelSpec, LINEAR_ID, read, u32, write } from "../../gpu/kernel.ts";

/** Workgroup size of the optimizer kernels. */
export const OPTIM_WG = 256;

/**
 * SGD with momentum, weight decay and optional Nesterov, PyTorch semantics (dampening 0):
 * g ← g + wd·p; buf ← μ·buf + g; step = nesterov ? g + μ·buf : buf; p ← p − lr·step. `wdMask` (1 or 0
 * per element) lets some parameters skip weight decay.
 */
export function sgdSpec(nesterov: boolean): KernelSpec {
  return {
    name: "sgd",
    key: nesterov ? "nesterov" : "",
    buffers: [write("p"), read("g"), write("buf"), read("wd_mask")],
    uniforms: [u32("n"), f32("lr"), f32("momentum"), f32("wd")],
    body: `
@compute @workgroup_size(${OPTIM_WG})
fn main(${BUILTINS}) {
  let i = ${LINEAR_ID(OPTIM_WG)};
  if (i >= P.n) { return; }
  let pv = p[i];
  let g = g[i] + P.wd * wd_mask[i] * pv;
  let b = P.momentum * buf[i] + g;
  buf[i] = b;
  let step = ${nesterov ? "g + P.momentum * b" : "b"};
  p[i] = pv - P.lr * step;
}`,
  };
}

/** Momentum-encoder update θk ← m·θk + (1 − m)·θq. */
export function emaSpec(): KernelSpec {
  return {
    name: "ema",
    buffers: [write("k"), read("q")],
    uniforms: [u32("n"), f32("m")],
    body: `
@compute @workgroup_size(${OPTIM_WG})
fn main(${BUILTINS}) {
  let i = ${LINEAR_ID(OPTIM_WG)};
  if (i >= P.n) { return; }
  k[i] = P.m * k[i] + (1.0 - P.m) * q[i];
}`,
  };
}

/**
 * LARS trust ratios, one invocation per parameter tensor (segment), summed in a fixed order:
 * trust = η·‖p‖ / ‖g + wd·p‖ for adapted segments (1 where either norm is 0, and for segments that are
 * not adapted: biases and BN parameters, as MoCo v3's LARS).
 */
export function larsTrustSpec(): KernelSpec {
  return {
    name: "lars_trust",
    buffers: [read("p"), read("g"), read("seg", "u32"), write("trust")],
    uniforms: [u32("segments"), f32("eta"), f32("wd")],
    body: `
@compute @workgroup_size(64)
fn main(${BUILTINS}) {
  let s = ${LINEAR_ID(64)};
  if (s >= P.segments) { return; }
  let off = seg[3u * s]; let n = seg[3u * s + 1u]; let adapt = seg[3u * s + 2u];
  if (adapt == 0u) { trust[s] = 1.0; return; }
  var pp = 0.0; var gg = 0.0;
  for (var i = off; i < off + n; i++) {
    let pv = p[i];
    let gv = g[i] + P.wd * pv;
    pp += pv * pv; gg += gv * gv;
  }
  trust[s] = select(1.0, P.eta * sqrt(pp) / sqrt(gg), pp > 0.0 && gg > 0.0);
}`,
  };
}

/** SGD step with the LARS trust ratio of each element's segment (`seg_of`), weight decay only where adapted. */
export function larsSgdSpec(nesterov: boolean): KernelSpec {
  return {
    name: "sgd_lars",
    key: nesterov ? "nesterov" : "",
    buffers: [write("p"), read("g"), write("buf"), read("seg_of", "u32"), read("seg", "u32"), read("trust")],
    uniforms: [u32("n"), f32("lr"), f32("momentum"), f32("wd")],
    body: `
@compute @workgroup_size(${OPTIM_WG})
fn main(${BUILTINS}) {
  let i = ${LINEAR_ID(OPTIM_WG)};
  if (i >= P.n) { return; }
  let s = seg_of[i];
  let pv = p[i];
  let adapt = f32(seg[3u * s + 2u]);
  let g = (g[i] + P.wd * adapt * pv) * trust[s];
  let b = P.momentum * buf[i] + g;
  buf[i] = b;
  let step = ${nesterov ? "g + P.momentum * b" : "b"};
  p[i] = pv - P.lr * step;
}`,
  };
}
