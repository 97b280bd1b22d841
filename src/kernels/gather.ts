/**
 * Block gather (y[b] = x[index[b]]) with its reference; the key encoder's shuffle-BN emulation uses it to
 * put outputs back in image order.
 *
 * @module
 */
import { GATHER_WG, gatherBlocksSpec } from "./wgsl/gather.ts";
import type { Gpu } from "../gpu/device.ts";
import { bind, type Dispatch, grid1d } from "../gpu/kernel.ts";
import type { Tensor } from "../gpu/tensor.ts";

/** Binds y[b] = x[index[b]] for `blocks` blocks of x.numel / blocks elements. */
export function gatherBlocks(gpu: Gpu, x: Tensor, index: Tensor, y: Tensor, blocks: number): Promise<Dispatch> {
  if (x.numel % blocks || y.numel !== x.numel || index.numel !== blocks) {
    throw new Error(`gather: "${x.name}" does not split into ${blocks} blocks matching "${y.name}"`);
  }
  const size = x.numel / blocks;
  return bind(gpu, gatherBlocksSpec(), [x, index, y], { blocks, size }, grid1d(x.numel, GATHER_WG));
}

/** Reference of {@link gatherBlocks}. */
export function gatherBlocksRef(x: ArrayLike<number>, index: ArrayLike<number>, blocks: number): Float64Array {
  const size = x.length / blocks, y = new Float64Array(x.length);
  for (let b = 0; b < blocks; b++) for (let t = 0; t < size; t++) y[b * size + t] = x[index[b] * size + t];
  return y;
}

/** Inverse of a permutation. */
export function invertPermutation(p: ArrayLike<number>): Uint32Array {
  const inv = new Uint32Array(p.length);
  for (let i = 0; i < p.length; i++) inv[p[i]] = i;
  return inv;
}
