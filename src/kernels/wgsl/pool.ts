/**
 * WGSL templates for max pooling over NHWC (forward records the arg-max; backward is a gather over the
 * windows that cover each input, so no scatter and no atomics).
 *
 * @module
 */
import { BUILTINS, type KernelSpec, LINEAR_ID, read, u32, write } from "../../gpu/kernel.ts";

/** Workgroup size of the pooling kernels. */
export const POOL_WG = 64;

const GEOM = ["nb", "ih", "iw", "c", "oh", "ow", "k", "stride", "pad"].map(u32);

/** y[n,oy,ox,c] = max over the window; arg[n,oy,ox,c] = flat input index of the first maximum. */
export function maxPoolSpec(): KernelSpec {
  return {
    name: "maxpool",
    buffers: [read("x"), write("y"), write("arg", "i32")],
    uniforms: GEOM,
    body: `
@compute @workgroup_size(${POOL_WG})
fn main(${BUILTINS}) {
  let t = ${LINEAR_ID(POOL_WG)};
  if (t >= P.nb * P.oh * P.ow * P.c) { return; }
  let ch = t % P.c; let ox = (t / P.c) % P.ow; let oy = (t / (P.c * P.ow)) % P.oh; let n = t / (P.c * P.ow * P.oh);
  var best = -3.4028234e38; var bi = -1;
  for (var ky = 0u; ky < P.k; ky++) {
    let y = i32(oy * P.stride + ky) - i32(P.pad);
    if (y < 0 || y >= i32(P.ih)) { continue; }
    for (var kx = 0u; kx < P.k; kx++) {
      let xx = i32(ox * P.stride + kx) - i32(P.pad);
      if (xx < 0 || xx >= i32(P.iw)) { continue; }
      let i = ((n * P.ih + u32(y)) * P.iw + u32(xx)) * P.c + ch;
      let v = x[i];
      if (v > best || bi < 0) { best = v; bi = i32(i); }
    }
  }
  y[t] = best;
  arg[t] = bi;
}`,
  };
}

/** dx[i] = Σ dy over the windows whose arg-max is i. */
export function maxPoolBackwardSpec(): KernelSpec {
  return {
    name: "maxpool_backward",
    buffers: [read("dy"), read("arg", "i32"), write("dx")],
    uniforms: GEOM,
    body: `
@compute @workgroup_size(${POOL_WG})
fn main(${BUILTINS}) {
  let t = ${LINEAR_ID(POOL_WG)};
  if (t >= P.nb * P.ih * P.iw * P.c) { return; }
  let ch = t % P.c; let x = i32((t / P.c) % P.iw); let y = i32((t / (P.c * P.iw)) % P.ih); let n = t / (P.c * P.iw * P.ih);
  let s = i32(P.stride); let p = i32(P.pad); let k = i32(P.k);
  // output rows oy with oy·s − p ≤ y ≤ oy·s − p + k − 1
  let oy0 = max(0, (y + p - k + s) / s); let oy1 = min(i32(P.oh) - 1, (y + p) / s);
  let ox0 = max(0, (x + p - k + s) / s); let ox1 = min(i32(P.ow) - 1, (x + p) / s);
  var acc = 0.0;
  for (var oy = oy0; oy <= oy1; oy++) {
    for (var ox = ox0; ox <= ox1; ox++) {
      let o = ((n * P.oh + u32(oy)) * P.ow + u32(ox)) * P.c + ch;
      if (arg[o] == i32(t)) { acc += dy[o]; }
    }
  }
  dx[t] = acc;
}`,
  };
}
