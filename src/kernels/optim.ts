/**
 * SGD (momentum, weight decay, Nesterov; PyTorch semantics) and the EMA update, fused over flat buffers;
 * float64 references beside.
 *
 * @module
 */
import { emaSpec, larsSgdSpec, larsTrustSpec, OPTIM_WG, sgdSpec } from "./wgsl/optim.ts";
import type { Bound } from "../gpu/bound.ts";
import type { Gpu } from "../gpu/device.ts";
import { bind, type Dispatch, grid1d } from "../gpu/kernel.ts";
import { Tensor } from "../gpu/tensor.ts";

/** SGD hyper-parameters; `lr` can be changed every step with `setParams({ lr })`. */
export interface SgdOptions {
  /** Learning rate. */
  lr: number;
  /** Momentum coefficient. */
  momentum: number;
  /** L2 weight decay, applied where the mask is 1. */
  weightDecay: number;
  /** Nesterov momentum. */
  nesterov?: boolean;
}

/** Binds one fused SGD step over `params` (with `grads`, momentum `buf` and a 0/1 weight-decay mask). */
export function sgdStep(
  gpu: Gpu,
  params: Tensor,
  grads: Tensor,
  buf: Tensor,
  wdMask: Tensor,
  o: SgdOptions,
): Promise<Dispatch> {
  const n = params.numel;
  for (const t of [grads, buf, wdMask]) if (t.numel !== n) throw new Error(`sgd: "${t.name}" must have ${n} elements`);
  return bind(
    gpu,
    sgdSpec(!!o.nesterov),
    [params, grads, buf, wdMask],
    {
      n,
      lr: o.lr,
      momentum: o.momentum,
      wd: o.weightDecay,
    },
    grid1d(n, OPTIM_WG),
    "optimizer",
  );
}

/** Binds θk ← m·θk + (1 − m)·θq; `m` can change per step with `setParams({ m })`. */
export function emaUpdate(gpu: Gpu, key: Tensor, query: Tensor, m: number): Promise<Dispatch> {
  if (key.numel !== query.numel) throw new Error("ema: key and query buffers differ in size");
  return bind(gpu, emaSpec(), [key, query], { n: key.numel, m }, grid1d(key.numel, OPTIM_WG), "ema");
}

/** Reference SGD step: returns new parameters and momentum buffer. */
export function sgdRef(
  p: ArrayLike<number>,
  g: ArrayLike<number>,
  buf: ArrayLike<number>,
  wdMask: ArrayLike<number>,
  o: SgdOptions,
): { p: Float64Array; buf: Float64Array } {
  const np = new Float64Array(p.length), nb = new Float64Array(p.length);
  for (let i = 0; i < p.length; i++) {
    const gi = g[i] + o.weightDecay * wdMask[i] * p[i];
    nb[i] = o.momentum * buf[i] + gi;
    np[i] = p[i] - o.lr * (o.nesterov ? gi + o.momentum * nb[i] : nb[i]);
  }
  return { p: np, buf: nb };
}

/** A parameter tensor inside a flat buffer: element offset, count, and whether LARS adapts it. */
export interface LarsSegment {
  offset: number;
  numel: number;
  adapt: boolean;
}

/**
 * LARS (as MoCo v3 / BYOL use it): per parameter tensor, g ← (g + wd·p)·η‖p‖/‖g + wd·p‖ for weights;
 * biases and BN parameters get neither weight decay nor adaptation; then SGD momentum. Elements outside
 * every segment (alignment gaps) belong to a dummy segment that is not adapted.
 */
export async function larsStep(
  gpu: Gpu,
  params: Tensor,
  grads: Tensor,
  buf: Tensor,
  segments: LarsSegment[],
  o: SgdOptions & { eta: number },
): Promise<Bound> {
  const n = params.numel;
  const all = [...segments, { offset: 0, numel: 0, adapt: false }]; // last: gaps
  const segTable = new Uint32Array(all.length * 3);
  all.forEach((s, i) => segTable.set([s.offset, s.numel, s.adapt ? 1 : 0], 3 * i));
  const segOf = new Uint32Array(n).fill(all.length - 1);
  segments.forEach((s, i) => segOf.fill(i, s.offset, s.offset + s.numel));
  const seg = Tensor.from(gpu, [segTable.length], segTable, "u32", "lars segments");
  const of = Tensor.from(gpu, [n], segOf, "u32", "lars segment of element");
  const trust = Tensor.empty(gpu, [all.length], "f32", "lars trust");
  const d1 = await bind(
    gpu,
    larsTrustSpec(),
    [params, grads, seg, trust],
    {
      segments: all.length,
      eta: o.eta,
      wd: o.weightDecay,
    },
    grid1d(all.length, 64),
    "optimizer",
  );
  const d2 = await bind(
    gpu,
    larsSgdSpec(!!o.nesterov),
    [params, grads, buf, of, seg, trust],
    {
      n,
      lr: o.lr,
      momentum: o.momentum,
      wd: o.weightDecay,
    },
    grid1d(n, OPTIM_WG),
    "optimizer",
  );
  return { dispatches: [d1, d2], owned: [seg, of, trust] };
}

/** Reference LARS step (float64). */
export function larsRef(
  p: ArrayLike<number>,
  g: ArrayLike<number>,
  buf: ArrayLike<number>,
  segments: LarsSegment[],
  o: SgdOptions & { eta: number },
): { p: Float64Array; buf: Float64Array } {
  const np = Float64Array.from(p), nb = Float64Array.from(buf);
  const step = (i: number, gi: number) => {
    nb[i] = o.momentum * buf[i] + gi;
    np[i] = p[i] - o.lr * (o.nesterov ? gi + o.momentum * nb[i] : nb[i]);
  };
  const covered = new Uint8Array(p.length);
  for (const s of segments) {
    let pp = 0, gg = 0;
    for (let i = s.offset; i < s.offset + s.numel; i++) {
      const gv = g[i] + (s.adapt ? o.weightDecay * p[i] : 0);
      pp += p[i] * p[i], gg += gv * gv;
    }
    const trust = s.adapt && pp > 0 && gg > 0 ? o.eta * Math.sqrt(pp) / Math.sqrt(gg) : 1;
    for (let i = s.offset; i < s.offset + s.numel; i++) {
      step(i, (g[i] + (s.adapt ? o.weightDecay * p[i] : 0)) * trust);
      covered[i] = 1;
    }
  }
  for (let i = 0; i < p.length; i++) if (!covered[i]) step(i, g[i]);
  return { p: np, buf: nb };
}
