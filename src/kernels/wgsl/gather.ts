/**
 * WGSL template: gather equal-sized blocks, y[b] = x[index[b]] (blocks of `size` elements). Used to undo
 * the batch shuffle of the key encoder's inputs (shuffle-BN emulation).
 *
 * @module
 */
import { BUILTINS, type KernelSpec, LINEAR_ID, read, u32, write } from "../../gpu/kernel.ts";

/** Workgroup size of the gather kernel. */
export const GATHER_WG = 256;

/** y[b·size + t] = x[index[b]·size + t]. */
export function gatherBlocksSpec(): KernelSpec {
  return {
    name: "gather_blocks",
    buffers: [read("x"), read("index", "u32"), write("y")],
    uniforms: [u32("blocks"), u32("size")],
    body: `
@compute @workgroup_size(${GATHER_WG})
fn main(${BUILTINS}) {
  let i = ${LINEAR_ID(GATHER_WG)};
  if (i >= P.blocks * P.size) { return; }
  let b = i / P.size;
  y[i] = x[index[b] * P.size + i % P.size];
}`,
  };
}
