/**
 * The dense detection loss of the `detect` protocol, CenterNet-style ("Objects as Points", Zhou et al.
 * 2019) on one stride-s feature map, with training targets built on the host.
 *
 * The head emits K + 4 channels per cell: K class heat-map logits, then the box's log width and log height
 * (in cells) and its centre's offset inside the cell (x, y in [0, 1)). For an object with centre (cx, cy)
 * and size (w, h) in cells, its centre cell (⌊cx⌋, ⌊cy⌋) holds the regression targets
 * [log w, log h, cx − ⌊cx⌋, cy − ⌊cy⌋] and the class map gets an elliptical Gaussian peaking at exactly 1
 * on that cell, σ = 0.54·(w, h)/6 (TTFNet's box-shaped variant of CenterNet's round one; the max where
 * objects of a class overlap). The loss, divided by the number of centres P:
 *
 *   L = (1/P) [ Σ_cells,k FL(x, y) + Σ_centres (w_size·|Δlog w| + w_size·|Δlog h| + w_off·(|Δox| + |Δoy|)) ]
 *   FL = −(1 − p)²·log p where y = 1, −(1 − y)⁴·p²·log(1 − p) elsewhere, p = σ(x).
 *
 * @module
 */
import { CENTERNET_WG, centerNetLossSpec } from "../kernels/wgsl/centernet.ts";
import { type Bound, TensorArena } from "../gpu/bound.ts";
import type { Gpu } from "../gpu/device.ts";
import { bind, grid1d } from "../gpu/kernel.ts";
import type { Tensor } from "../gpu/tensor.ts";
import { reduceAxis } from "../kernels/reduce.ts";

/** Loss weights of the regression channels. */
export interface CenterNetWeights {
  /** Weight of the log-size channels. */
  size: number;
  /** Weight of the offset channels. */
  offset: number;
}

/** Defaults: CenterNet weighs offsets 1; log sizes are O(1) like offsets, so 1 as well (not its 0.1 for pixels). */
export const CENTERNET_WEIGHTS: CenterNetWeights = { size: 1, offset: 1 };

/** Host-side targets of a batch, laid out as the kernel reads them. */
export interface CenterNetTargets {
  /** [N, K] Gaussian class heat-maps, N = B·gh·gw cells in NHWC order. */
  heat: Float32Array;
  /** [N, 4] log w, log h, offset x, offset y at centre cells (0 elsewhere). */
  reg: Float32Array;
  /** [N] 1 at centre cells. */
  mask: Float32Array;
  /** Number of centre cells. */
  centres: number;
}

/** A box in pixels [x0, y0, x1, y1] with its class 0..K−1. */
export interface ClassBox {
  /** Corners [x0, y0, x1, y1] in pixels. */
  box: [number, number, number, number];
  /** Class 0..K−1. */
  classId: number;
}

/** Width of the target Gaussians relative to the box (TTFNet's α). */
export const GAUSSIAN_ALPHA = 0.54;

/**
 * Targets for B images of gh×gw cells of `stride` pixels, K classes. Boxes narrower than a pixel are
 * skipped (no centre); a centre cell shared by two objects keeps the later one's regression targets.
 */
export function centerNetTargets(
  images: ClassBox[][],
  gh: number,
  gw: number,
  stride: number,
  K: number,
): CenterNetTargets {
  const B = images.length, N = B * gh * gw;
  const heat = new Float32Array(N * K), reg = new Float32Array(N * 4), mask = new Float32Array(N);
  let centres = 0;
  images.forEach((objs, b) => {
    for (const { box, classId } of objs) {
      const w = (box[2] - box[0]) / stride, h = (box[3] - box[1]) / stride;
      if (w * stride < 1 || h * stride < 1) continue;
      const cx = (box[0] + box[2]) / 2 / stride, cy = (box[1] + box[3]) / 2 / stride;
      const ix = Math.min(Math.max(Math.floor(cx), 0), gw - 1), iy = Math.min(Math.max(Math.floor(cy), 0), gh - 1);
      const sx = GAUSSIAN_ALPHA * w / 6, sy = GAUSSIAN_ALPHA * h / 6;
      for (let y = 0; y < gh; y++) {
        for (let x = 0; x < gw; x++) {
          const v = Math.exp(-((x - ix) ** 2) / (2 * sx * sx) - ((y - iy) ** 2) / (2 * sy * sy));
          const i = ((b * gh + y) * gw + x) * K + classId;
          if (v > heat[i]) heat[i] = v;
        }
      }
      const c = (b * gh + iy) * gw + ix;
      if (!mask[c]) centres++;
      mask[c] = 1;
      reg.set([Math.log(w), Math.log(h), cx - ix, cy - iy], c * 4);
    }
  });
  return { heat, reg, mask, centres };
}

const softplus = (z: number) => Math.max(z, 0) + Math.log1p(Math.exp(-Math.abs(z)));

/** Float64 reference of the loss and its gradient w.r.t. the head output `out` [N, K + 4]. */
export function centerNetLossRef(
  out: ArrayLike<number>,
  t: { heat: ArrayLike<number>; reg: ArrayLike<number>; mask: ArrayLike<number> },
  K: number,
  wt: CenterNetWeights = CENTERNET_WEIGHTS,
): { loss: number; grad: Float64Array } {
  const C = K + 4, N = t.mask.length;
  let P = 0;
  for (let r = 0; r < N; r++) P += t.mask[r];
  const inv = 1 / Math.max(1, P);
  const grad = new Float64Array(N * C);
  let loss = 0;
  for (let r = 0; r < N; r++) {
    for (let k = 0; k < K; k++) {
      const x = out[r * C + k], y = t.heat[r * K + k];
      const p = 1 / (1 + Math.exp(-x)), q = 1 / (1 + Math.exp(x));
      if (y >= 1) {
        const lp = -softplus(-x); // log p
        loss -= q * q * lp;
        grad[r * C + k] = (2 * p * q * q * lp - q * q * q) * inv;
      } else {
        const l1p = -softplus(x), w = (1 - y) ** 4; // log(1 − p)
        loss -= w * p * p * l1p;
        grad[r * C + k] = w * (p ** 3 - 2 * p * p * q * l1p) * inv;
      }
    }
    for (let j = 0; j < 4; j++) {
      const d = out[r * C + K + j] - t.reg[r * 4 + j], w = (j < 2 ? wt.size : wt.offset) * t.mask[r];
      loss += w * Math.abs(d);
      grad[r * C + K + j] = w * Math.sign(d) * inv;
    }
  }
  return { loss: loss * inv, grad };
}

/** The bound loss: upload targets, run `dispatches`; `grad` [N, K + 4] and `loss` [1] are then written. */
export interface CenterNetLoss extends Bound {
  /** Gradient w.r.t. the head output [N, K + 4]. */
  grad: Tensor;
  /** The loss [1]. */
  loss: Tensor;
  /** Uploads a batch's targets (queued writes). */
  upload(t: CenterNetTargets): void;
}

/** Binds the fused loss + gradient over head outputs `out` [N, K + 4] (gradient into `grad` if given). */
export async function buildCenterNetLoss(
  gpu: Gpu,
  out: Tensor,
  N: number,
  K: number,
  o: { weights?: CenterNetWeights; grad?: Tensor } = {},
): Promise<CenterNetLoss> {
  const wt = o.weights ?? CENTERNET_WEIGHTS;
  if (out.numel !== N * (K + 4)) throw new Error(`centernet loss: "${out.name}" must have ${N}×${K + 4} elements`);
  const arena = new TensorArena(gpu);
  const heat = arena.alloc([N, K], "heat-map targets"), reg = arena.alloc([N, 4], "box targets");
  const mask = arena.alloc([N], "centre mask"), norm = arena.alloc([1], "1 / centres");
  const rowLoss = arena.alloc([N], "detection loss per cell"), loss = arena.alloc([1], "detection loss");
  const grad = o.grad ?? arena.alloc([N, K + 4], "grad of head output");
  if (grad.numel !== N * (K + 4)) throw new Error(`centernet loss: "${grad.name}" has the wrong size`);
  const d = await bind(
    gpu,
    centerNetLossSpec(),
    [out, heat, reg, mask, norm, grad, rowLoss],
    { n: N, k: K, w_size: wt.size, w_off: wt.offset },
    grid1d(N, CENTERNET_WG),
  );
  const sum = arena.adopt(await reduceAxis(gpu, rowLoss, 0, "sum", loss));
  return {
    dispatches: [d, ...sum.dispatches],
    grad,
    loss,
    upload(t) {
      heat.upload(t.heat), reg.upload(t.reg), mask.upload(t.mask);
      norm.upload([1 / Math.max(1, t.centres)]);
    },
    owned: arena.owned,
  };
}
