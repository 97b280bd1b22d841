/**
 * WGSL template of the CenterNet-style detection loss and its gradient, fused: one invocation per cell
 * of the head's output rows [N, K + 4] (K class heat-map logits, then log-size w, h and centre offset x, y)
 * writes that row's gradient and its share of the loss (summed afterwards by a deterministic reduction).
 *
 * @module
 */
import { BUILTINS, f32, type KernelSpec, LINEAR_ID, read, u32, write } from "../../gpu/kernel.ts";

/** Workgroup size of the loss kernel. */
export const CENTERNET_WG = 64;

/**
 * Focal loss (α = 2, β = 4) on sigmoid heat-maps plus weighted L1 on the four regression channels at
 * object centres, all divided by the number of centres (`norm` holds 1 / max(1, centres)).
 */
export function centerNetLossSpec(): KernelSpec {
  return {
    name: "centernet_loss",
    buffers: [
      read("out"),
      read("heat"),
      read("reg"),
      read("mask"),
      read("norm"),
      write("grad"),
      write("row_loss"),
    ],
    uniforms: [u32("n"), u32("k"), f32("w_size"), f32("w_off")],
    body: `
// log(1 + e^z) without overflow
fn softplus(z: f32) -> f32 { return max(z, 0.0) + log(1.0 + exp(-abs(z))); }

@compute @workgroup_size(${CENTERNET_WG})
fn main(${BUILTINS}) {
  let r = ${LINEAR_ID(CENTERNET_WG)};
  if (r >= P.n) { return; }
  let c = P.k + 4u;
  let inv = norm[0];
  var loss = 0.0;
  for (var k = 0u; k < P.k; k++) {
    let x = out[r * c + k];
    let y = heat[r * P.k + k];
    // p and 1 − p each from their own sigmoid, so neither cancels
    let p = 1.0 / (1.0 + exp(-x));
    let q = 1.0 / (1.0 + exp(x));
    var g: f32;
    if (y >= 1.0) {
      let lp = -softplus(-x);
      loss -= q * q * lp;
      g = 2.0 * p * q * q * lp - q * q * q;
    } else {
      let l1p = -softplus(x);
      let s = (1.0 - y) * (1.0 - y);
      let w = s * s;
      loss -= w * p * p * l1p;
      g = w * (p * p * p - 2.0 * p * p * q * l1p);
    }
    grad[r * c + k] = g * inv;
  }
  let m = mask[r];
  for (var j = 0u; j < 4u; j++) {
    let d = out[r * c + P.k + j] - reg[r * 4u + j];
    let w = select(P.w_off, P.w_size, j < 2u) * m;
    loss += w * abs(d);
    grad[r * c + P.k + j] = w * sign(d) * inv;
  }
  row_loss[r] = loss * inv;
}`,
  };
}
