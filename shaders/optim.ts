/**
 * WGSL templates for the optimizer and the momentum encoder, over flat parameter buffers.
 *
 * @module
 */
import { BUILTINS, f32, type KernelSpec, LINEAR_ID, read, u32, write } from "../src/gpu/kernel.ts";

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
