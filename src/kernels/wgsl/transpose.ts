/**
 * WGSL templates for batched transpose: x [B, R, C] → y [B, C, R].
 *
 * - `naive`: one invocation per output element, no workgroup memory (CPU adapters).
 * - `tiled`: 16×16 tiles staged in workgroup memory so that both the read and the write are contiguous
 *   across neighbouring threads (real GPUs). The tile has one column of padding against bank conflicts.
 *
 * @module
 */
import { type Grid, type KernelSpec, read, u32, write } from "../../gpu/kernel.ts";

/** Which transpose kernel to use. */
export type TransposeVariant = "naive" | "tiled";

/** Tile edge of both variants (the naive one uses it as its workgroup shape). */
export const TRANSPOSE_TILE = 16;

/** Workgroups of either variant: one per 16×16 tile of each of the `batch` [rows, cols] matrices. */
export function transposeGrid(rows: number, cols: number, batch: number): Grid {
  const t = TRANSPOSE_TILE;
  return [Math.ceil(rows / t), Math.ceil(cols / t), batch];
}

/** Kernel spec for `variant`; dispatched over {@link transposeGrid}. */
export function transposeSpec(variant: TransposeVariant): KernelSpec {
  const T = TRANSPOSE_TILE;
  const common = {
    name: "transpose",
    key: variant,
    buffers: [read("x"), write("y")],
    uniforms: [u32("rows"), u32("cols")],
  };
  if (variant === "naive") {
    return {
      ...common,
      body: `
@compute @workgroup_size(${T}, ${T})
fn main(@builtin(global_invocation_id) g: vec3<u32>) {
  // g.x walks the output's fast axis (input rows) so writes are contiguous.
  let r = g.x; let c = g.y; let b = g.z;
  if (r >= P.rows || c >= P.cols) { return; }
  let plane = P.rows * P.cols;
  y[b * plane + c * P.rows + r] = x[b * plane + r * P.cols + c];
}`,
    };
  }
  return {
    ...common,
    body: `
var<workgroup> tile: array<array<f32, ${T + 1}>, ${T}>;
@compute @workgroup_size(${T}, ${T})
fn main(@builtin(workgroup_id) wid: vec3<u32>, @builtin(local_invocation_id) lid: vec3<u32>) {
  let b = wid.z;
  let plane = P.rows * P.cols;
  let r0 = wid.x * ${T}u; let c0 = wid.y * ${T}u;
  // read: threads along x walk input columns
  let rr = r0 + lid.y; let rc = c0 + lid.x;
  if (rr < P.rows && rc < P.cols) { tile[lid.y][lid.x] = x[b * plane + rr * P.cols + rc]; }
  workgroupBarrier();
  // write: threads along x walk output columns (input rows)
  let wr = r0 + lid.x; let wc = c0 + lid.y;
  if (wr < P.rows && wc < P.cols) { y[b * plane + wc * P.rows + wr] = tile[lid.x][lid.y]; }
}`,
  };
}
