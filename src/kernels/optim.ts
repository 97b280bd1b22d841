/**
 * SGD (momentum, weight decay, Nesterov; PyTorch semantics) and the EMA update, fused over flat buffers;
 * float64 references beside.
 *
 * @module
 */
import { emaSpec, OPTIM_WG, sgdSpec } from "../../shaders/optim.ts";
import type { Gpu } from "../gpu/device.ts";
import { bind, type Dispatch, grid1d } from "../gpu/kernel.ts";
import type { Tensor } from "../gpu/tensor.ts";

/** SGD hyper-parameters; `lr` can be changed every step with `setParams({ lr })`. */
export interface SgdOptions {
  lr: number;
  momentum: number;
  weightDecay: number;
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
