/**
 * WGSL templates for row-wise kernels over [rows, cols] (softmax, log-softmax, L2 normalisation,
 * cross-entropy), each forward and backward, in two variants generated from one description:
 *
 * - `thread`: one invocation per row, serial loops, no workgroup memory or barriers. lavapipe/llvmpipe run
 *   invocations across SIMD lanes and pay dearly for barriers, so this is the CPU-adapter choice.
 * - `workgroup`: one workgroup per row, strided loops and a tree reduction in workgroup memory; the choice
 *   on real GPUs, where one thread per row leaves most of the chip idle.
 *
 * Both sum in a fixed order, so results are deterministic.
 *
 * @module
 */
import {
  type BufferDecl,
  BUILTINS,
  f32,
  type Grid,
  grid1d,
  type KernelSpec,
  LINEAR_ID,
  read,
  u32,
  write,
} from "../../gpu/kernel.ts";

/** How a row is spread over invocations. */
export type RowVariant = "thread" | "workgroup";

/** Threads per row (workgroup variant) or rows per workgroup (thread variant). */
export const ROW_WG = 64;

const NEG_MAX = "-3.4028234e38";

/** Code builders for one variant; `j` is the column index inside loops, `base` the row's offset. */
export class RowCode {
  #n = 0;
  /** Builders for the `variant` ("thread": one row per invocation, "workgroup": one row per workgroup). */
  constructor(readonly variant: RowVariant) {}

  /** Statements reducing `expr` (which may use `j`) over the row into `let out`. */
  reduce(op: "sum" | "max", expr: string, out: string): string {
    const acc = `acc${this.#n++}`;
    const init = op === "sum" ? "0.0" : NEG_MAX;
    const comb = (a: string, b: string) => (op === "sum" ? `${a} + ${b}` : `max(${a}, ${b})`);
    if (this.variant === "thread") {
      return `var ${acc} = ${init};
  for (var j = 0u; j < P.cols; j++) { ${acc} = ${comb(acc, expr)}; }
  let ${out} = ${acc};`;
    }
    return `var ${acc} = ${init};
  for (var j = lid.x; j < P.cols; j += ${ROW_WG}u) { ${acc} = ${comb(acc, expr)}; }
  scratch[lid.x] = ${acc};
  workgroupBarrier();
  for (var s = ${ROW_WG / 2}u; s > 0u; s >>= 1u) {
    if (lid.x < s) { scratch[lid.x] = ${comb("scratch[lid.x]", "scratch[lid.x + s]")}; }
    workgroupBarrier();
  }
  let ${out} = scratch[0];
  workgroupBarrier();`;
  }

  /** A loop over the row's columns (each column visited by exactly one invocation). */
  each(body: string): string {
    const [start, step] = this.variant === "thread" ? ["0u", "1u"] : ["lid.x", `${ROW_WG}u`];
    return `for (var j = ${start}; j < P.cols; j += ${step}) { ${body} }`;
  }

  /** Guard for per-row scalar outputs (written once). */
  get once(): string {
    return this.variant === "thread" ? "true" : "lid.x == 0u";
  }
}

/** A row kernel: its bindings, extra uniforms, and statements built with {@link RowCode}. */
export interface RowKernel {
  /** Kernel family name. */
  name: string;
  /** Storage buffers, bound in this order. */
  buffers: BufferDecl[];
  /** Names of extra `f32` uniforms after the row count and length. */
  scalars?: string[];
  /** The kernel body for one variant. */
  code: (r: RowCode) => string;
}

/** Workgroups for `rows` rows: {@link ROW_WG} rows per workgroup (`thread`), one row per workgroup (`workgroup`). */
export function rowGrid(variant: RowVariant, rows: number): Grid {
  return variant === "thread" ? grid1d(rows, ROW_WG) : grid1d(rows, 1);
}

/** Kernel spec of `k` in `variant`, dispatched over {@link rowGrid}. Uniforms: rows, cols, then `k.scalars` (f32). */
export function rowSpec(k: RowKernel, variant: RowVariant): KernelSpec {
  const r = new RowCode(variant);
  const head = variant === "thread"
    ? `@compute @workgroup_size(${ROW_WG})
fn main(${BUILTINS}) {
  let row = ${LINEAR_ID(ROW_WG)};`
    : `var<workgroup> scratch: array<f32, ${ROW_WG}>;
@compute @workgroup_size(${ROW_WG})
fn main(${BUILTINS}) {
  let row = wid.y * nwg.x + wid.x;`;
  return {
    name: k.name,
    key: variant,
    buffers: k.buffers,
    uniforms: [u32("rows"), u32("cols"), ...(k.scalars ?? []).map(f32)],
    body: `${head}
  if (row >= P.rows) { return; }
  let base = row * P.cols;
  ${k.code(r)}
}`,
  };
}

/** Max and log-sum-exp of row `x` into `m`, `lse`. */
const logSumExp = (r: RowCode, x: string) =>
  `${r.reduce("max", `${x}[base + j]`, "m")}
  ${r.reduce("sum", `exp(${x}[base + j] - m)`, "s")}
  let lse = m + log(s);`;

/** Names of the row kernels. */
export type RowKernelName =
  | "softmax"
  | "softmaxBackward"
  | "logSoftmax"
  | "logSoftmaxBackward"
  | "l2Normalize"
  | "l2NormalizeBackward"
  | "crossEntropy"
  | "crossEntropyBackward"
  | "softCrossEntropy"
  | "softCrossEntropyBackward";

/** The row kernels of the foundation. */
export const ROW_KERNELS: Record<RowKernelName, RowKernel> = {
  softmax: {
    name: "softmax",
    buffers: [read("x"), write("y")],
    code: (r) =>
      `${logSumExp(r, "x")}
  ${r.each("y[base + j] = exp(x[base + j] - lse);")}`,
  },
  softmaxBackward: {
    name: "softmax_backward",
    buffers: [read("y"), read("dy"), write("dx")],
    code: (r) =>
      `${r.reduce("sum", "y[base + j] * dy[base + j]", "d")}
  ${r.each("dx[base + j] = y[base + j] * (dy[base + j] - d);")}`,
  },
  logSoftmax: {
    name: "log_softmax",
    buffers: [read("x"), write("y")],
    code: (r) =>
      `${logSumExp(r, "x")}
  ${r.each("y[base + j] = x[base + j] - lse;")}`,
  },
  logSoftmaxBackward: {
    name: "log_softmax_backward",
    buffers: [read("y"), read("dy"), write("dx")],
    code: (r) =>
      `${r.reduce("sum", "dy[base + j]", "g")}
  ${r.each("dx[base + j] = dy[base + j] - exp(y[base + j]) * g;")}`,
  },
  l2Normalize: {
    name: "l2_normalize",
    buffers: [read("x"), write("y"), write("norm")],
    scalars: ["eps"],
    code: (r) =>
      `${r.reduce("sum", "x[base + j] * x[base + j]", "ss")}
  let n = sqrt(ss);
  let inv = 1.0 / max(n, P.eps);
  ${r.each("y[base + j] = x[base + j] * inv;")}
  if (${r.once}) { norm[row] = n; }`,
  },
  l2NormalizeBackward: {
    name: "l2_normalize_backward",
    buffers: [read("y"), read("norm"), read("dy"), write("dx")],
    scalars: ["eps"],
    code: (r) =>
      `${r.reduce("sum", "y[base + j] * dy[base + j]", "d")}
  let n = norm[row];
  let inv = 1.0 / max(n, P.eps);
  let proj = select(0.0, d, n > P.eps);
  ${r.each("dx[base + j] = (dy[base + j] - y[base + j] * proj) * inv;")}`,
  },
  crossEntropy: {
    name: "cross_entropy",
    buffers: [read("x"), read("tgt", "i32"), write("loss"), write("lse_out")],
    code: (r) =>
      `${logSumExp(r, "x")}
  if (${r.once}) {
    lse_out[row] = lse;
    loss[row] = lse - x[base + u32(tgt[row])];
  }`,
  },
  crossEntropyBackward: {
    name: "cross_entropy_backward",
    buffers: [read("x"), read("lse"), read("tgt", "i32"), read("dloss"), write("dx")],
    code: (r) =>
      `let t = u32(tgt[row]);
  let g = dloss[row];
  let l = lse[row];
  ${r.each("dx[base + j] = (exp(x[base + j] - l) - select(0.0, 1.0, j == t)) * g;")}`,
  },
  softCrossEntropy: {
    name: "soft_cross_entropy",
    buffers: [read("x"), read("tgt"), write("loss"), write("lse_out")],
    code: (r) =>
      `${logSumExp(r, "x")}
  ${r.reduce("sum", "tgt[base + j]", "ts")}
  ${r.reduce("sum", "tgt[base + j] * x[base + j]", "tx")}
  if (${r.once}) {
    lse_out[row] = lse;
    loss[row] = lse * ts - tx;
  }`,
  },
  softCrossEntropyBackward: {
    name: "soft_cross_entropy_backward",
    buffers: [read("x"), read("lse"), read("tgt"), read("dloss"), write("dx")],
    code: (r) =>
      `${r.reduce("sum", "tgt[base + j]", "ts")}
  let g = dloss[row];
  let l = lse[row];
  ${r.each("dx[base + j] = (exp(x[base + j] - l) * ts - tgt[base + j]) * g;")}`,
  },
};
