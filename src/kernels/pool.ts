/**
 * Max pooling (NHWC) forward/backward and global average pooling, with float64 references.
 *
 * @module
 */
import { maxPoolBackwardSpec, maxPoolSpec, POOL_WG } from "./wgsl/pool.ts";
import type { Bound } from "../gpu/bound.ts";
import type { Gpu } from "../gpu/device.ts";
import { bind, type Dispatch, grid1d } from "../gpu/kernel.ts";
import type { Tensor } from "../gpu/tensor.ts";
import { reduceAxis, reduceAxisBackward } from "./reduce.ts";

/** Pooling geometry. */
export interface PoolGeom {
  /** Batch size. */
  nb: number;
  /** Input height. */
  ih: number;
  /** Input width. */
  iw: number;
  /** Channels. */
  c: number;
  /** Window size. */
  k: number;
  /** Stride. */
  stride: number;
  /** Padding on every side. */
  pad: number;
}

/** Output size of a pooling window (floor mode, as PyTorch's default). */
export function poolOutSize(g: PoolGeom): [number, number] {
  return [Math.floor((g.ih + 2 * g.pad - g.k) / g.stride) + 1, Math.floor((g.iw + 2 * g.pad - g.k) / g.stride) + 1];
}

function params(g: PoolGeom) {
  const [oh, ow] = poolOutSize(g);
  return { nb: g.nb, ih: g.ih, iw: g.iw, c: g.c, oh, ow, k: g.k, stride: g.stride, pad: g.pad };
}

/** y = max over each window; `arg` (i32, same shape as y) records the winning input index. */
export function maxPool(gpu: Gpu, x: Tensor, y: Tensor, arg: Tensor, g: PoolGeom): Promise<Dispatch> {
  const [oh, ow] = poolOutSize(g);
  return bind(gpu, maxPoolSpec(), [x, y, arg], params(g), grid1d(g.nb * oh * ow * g.c, POOL_WG), "maxpool");
}

/** dx = Σ dy over the windows whose maximum came from each input. */
export function maxPoolBackward(gpu: Gpu, dy: Tensor, arg: Tensor, dx: Tensor, g: PoolGeom): Promise<Dispatch> {
  return bind(
    gpu,
    maxPoolBackwardSpec(),
    [dy, arg, dx],
    params(g),
    grid1d(g.nb * g.ih * g.iw * g.c, POOL_WG),
    "maxpool",
  );
}

/** Global average pool [N, H·W, C] → [N, C]. */
export function globalAvgPool(gpu: Gpu, x: Tensor, y: Tensor, nb: number, hw: number, c: number): Promise<Bound> {
  if (x.numel !== nb * hw * c) throw new Error(`global pool: "${x.name}" is not [${nb}, ${hw}, ${c}]`);
  return reduceAxis(gpu, x, 1, "mean", y);
}

/** Backward of {@link globalAvgPool}. */
export function globalAvgPoolBackward(
  gpu: Gpu,
  dy: Tensor,
  dx: Tensor,
  nb: number,
  hw: number,
  c: number,
): Promise<Dispatch> {
  return reduceAxisBackward(gpu, dy, [nb, hw, c], 1, "mean", dx);
}

/** Reference max pool: values and arg-max (first maximum in window scan order). */
export function maxPoolRef(x: ArrayLike<number>, g: PoolGeom): { y: Float64Array; arg: Int32Array } {
  const [oh, ow] = poolOutSize(g);
  const y = new Float64Array(g.nb * oh * ow * g.c), arg = new Int32Array(y.length);
  for (let n = 0; n < g.nb; n++) {
    for (let oy = 0; oy < oh; oy++) {
      for (let ox = 0; ox < ow; ox++) {
        for (let c = 0; c < g.c; c++) {
          let best = -Infinity, bi = -1;
          for (let ky = 0; ky < g.k; ky++) {
            const yy = oy * g.stride + ky - g.pad;
            if (yy < 0 || yy >= g.ih) continue;
            for (let kx = 0; kx < g.k; kx++) {
              const xx = ox * g.stride + kx - g.pad;
              if (xx < 0 || xx >= g.iw) continue;
              const i = ((n * g.ih + yy) * g.iw + xx) * g.c + c;
              if (x[i] > best || bi < 0) best = x[i], bi = i;
            }
          }
          const o = ((n * oh + oy) * ow + ox) * g.c + c;
          y[o] = best, arg[o] = bi;
        }
      }
    }
  }
  return { y, arg };
}

/** Reference max-pool backward (scatter form, the obvious definition). */
export function maxPoolBackwardRef(dy: ArrayLike<number>, arg: ArrayLike<number>, nIn: number): Float64Array {
  const dx = new Float64Array(nIn);
  for (let o = 0; o < dy.length; o++) dx[arg[o]] += dy[o];
  return dx;
}
