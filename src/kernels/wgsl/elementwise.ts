/**
 * WGSL template for elementwise maps: `y[i] = f(inputs[i], P.*)`.
 *
 * One template serves add, mul, scale, axpy, ReLU and ReLU's backward: the op is an expression over the
 * loaded inputs. With `vec4` the same expression runs on four elements at a time (`T` is the element
 * type, so write constants as `T(0.0)`).
 *
 * @module
 */
import { BUILTINS, f32, type KernelSpec, LINEAR_ID, read, u32, write } from "../../gpu/kernel.ts";

/** Workgroup size of elementwise kernels. */
export const ELEMENTWISE_WG = 256;

/** Declaration of one elementwise op. */
export interface ElementwiseOp {
  /** Kernel name, e.g. `relu`. */
  name: string;
  /** Input names, bound in order before the output. */
  inputs: string[];
  /** Scalar uniforms (f32) the expression may use as `P.name`. */
  scalars?: string[];
  /** Expression for the output; may read the inputs by name and, if `readsOutput`, the old `y`. */
  expr: string;
  /** The output is also an input (in-place update such as axpy). */
  readsOutput?: boolean;
}

/** Kernel spec for `op`, scalar or vec4 (the element count must then be a multiple of 4). */
export function elementwiseSpec(op: ElementwiseOp, vec4: boolean): KernelSpec {
  const T = vec4 ? "vec4<f32>" : "f32";
  const loads = op.inputs.map((n) => `let ${n} = ${n}_buf[i];`).join(" ");
  const old = op.readsOutput ? "let y = y_buf[i];" : "";
  return {
    name: op.name,
    key: vec4 ? "v4" : "s",
    buffers: [...op.inputs.map((n) => read(`${n}_buf`, T)), write("y_buf", T)],
    uniforms: [u32("n"), ...(op.scalars ?? []).map(f32)],
    body: `alias T = ${T};
@compute @workgroup_size(${ELEMENTWISE_WG})
fn main(${BUILTINS}) {
  let i = ${LINEAR_ID(ELEMENTWISE_WG)};
  if (i >= P.n) { return; }
  ${loads} ${old}
  y_buf[i] = ${op.expr};
}`,
  };
}

/** The elementwise ops of the foundation. */
export const ELEMENTWISE: Record<"add" | "mul" | "scale" | "axpy" | "relu" | "reluBackward", ElementwiseOp> = {
  add: { name: "add", inputs: ["a", "b"], expr: "a + b" },
  mul: { name: "mul", inputs: ["a", "b"], expr: "a * b" },
  scale: { name: "scale", inputs: ["a"], scalars: ["alpha"], expr: "P.alpha * a" },
  axpy: { name: "axpy", inputs: ["a"], scalars: ["alpha"], expr: "y + P.alpha * a", readsOutput: true },
  relu: { name: "relu", inputs: ["a"], expr: "max(a, T(0.0))" },
  reluBackward: { name: "relu_backward", inputs: ["x", "dy"], expr: "select(T(0.0), dy, x > T(0.0))" },
};
