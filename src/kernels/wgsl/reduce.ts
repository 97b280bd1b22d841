/**
 * WGSL templates for deterministic axis reductions and their broadcast backward.
 *
 * A tensor is viewed as [outer, len, inner] and reduced over `len`. Each output is summed by one
 * invocation in a fixed order, so results are bit-reproducible; long axes with few outputs are split into
 * chunks (pass 1 writes [outer, chunks, inner] partial sums, pass 2 reduces those), which keeps the GPU
 * busy without float atomics.
 *
 * @module
 */
import { BUILTINS, f32, type KernelSpec, LINEAR_ID, read, u32, write } from "../../gpu/kernel.ts";

/** Workgroup size of reduction kernels. */
export const REDUCE_WG = 64;

/** `y[o, c, i] = scale * Σ_{l in chunk c} x[o, l, i]`. */
export function reduceSumSpec(): KernelSpec {
  return {
    name: "reduce_sum",
    buffers: [read("x"), write("y")],
    uniforms: [u32("outer"), u32("len"), u32("inner"), u32("chunk"), u32("chunks"), f32("scale")],
    body: `
@compute @workgroup_size(${REDUCE_WG})
fn main(${BUILTINS}) {
  let t = ${LINEAR_ID(REDUCE_WG)};
  if (t >= P.outer * P.chunks * P.inner) { return; }
  let i = t % P.inner;
  let c = (t / P.inner) % P.chunks;
  let o = t / (P.inner * P.chunks);
  let l0 = c * P.chunk;
  let l1 = min(P.len, l0 + P.chunk);
  var s = 0.0;
  for (var l = l0; l < l1; l++) { s += x[(o * P.len + l) * P.inner + i]; }
  y[t] = s * P.scale;
}`,
  };
}

/** `dx[o, l, i] = scale * dy[o, i]`: the backward of a sum (scale 1) or mean (scale 1/len). */
export function broadcastSpec(): KernelSpec {
  return {
    name: "broadcast_axis",
    buffers: [read("dy"), write("dx")],
    uniforms: [u32("outer"), u32("len"), u32("inner"), f32("scale")],
    body: `
@compute @workgroup_size(${REDUCE_WG})
fn main(${BUILTINS}) {
  let t = ${LINEAR_ID(REDUCE_WG)};
  if (t >= P.outer * P.len * P.inner) { return; }
  let i = t % P.inner;
  let o = t / (P.inner * P.len);
  dx[t] = dy[o * P.inner + i] * P.scale;
}`,
  };
}
