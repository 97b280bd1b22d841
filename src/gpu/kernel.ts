/**
 * Kernels, pipelines and bound dispatches.
 *
 * A kernel is declared as its bindings (storage buffers and scalar uniforms) plus a WGSL body; the binding
 * header is generated from the declaration so that host and shader cannot disagree about the layout.
 * Pipelines are compiled once per (kernel name, specialisation) and cached. A {@link Dispatch} binds a
 * pipeline to concrete tensors and uniform values once; a training step only records dispatches.
 *
 * @module
 */
import type { Gpu } from "./device.ts";
import type { Tensor } from "./tensor.ts";

/** Access mode of a storage binding. */
export type Access = "read" | "read_write";

/** One storage buffer of a kernel: name, WGSL element type (e.g. `f32`, `vec4<f32>`, `i32`), access. */
export interface BufferDecl {
  /** Binding name in the WGSL. */
  name: string;
  /** WGSL element type. */
  type: string;
  /** Storage access mode. */
  access: Access;
}

/** One scalar uniform: name and WGSL type. All are 4 bytes, packed in declaration order. */
export interface UniformDecl {
  /** Uniform name in the WGSL. */
  name: string;
  /** WGSL scalar type. */
  type: "u32" | "i32" | "f32";
}

/** Everything needed to compile a kernel. `key` distinguishes specialisations of the same name. */
export interface KernelSpec {
  /** Kernel family name (the pipeline cache key and the profile label). */
  name: string;
  /** Distinguishes specialisations of the same name in the pipeline cache. */
  key?: string;
  /** Storage buffers, bound in this order. */
  buffers: BufferDecl[];
  /** Scalar uniforms, packed in this order. */
  uniforms?: UniformDecl[];
  /** WGSL after the generated header: helper functions and the `@compute` entry point `main`. */
  body: string;
  /** `enable f16;` is emitted when true. */
  f16?: boolean;
}

/** Shorthand constructors for declarations. */
export const read = (name: string, type = "f32"): BufferDecl => ({ name, type, access: "read" });
export const write = (name: string, type = "f32"): BufferDecl => ({ name, type, access: "read_write" });
export const u32 = (name: string): UniformDecl => ({ name, type: "u32" });
export const i32 = (name: string): UniformDecl => ({ name, type: "i32" });
export const f32 = (name: string): UniformDecl => ({ name, type: "f32" });

/** Full WGSL source of a kernel: generated header + body. Uniforms live in `P` (`P.n`, ...). */
export function kernelSource(spec: KernelSpec): string {
  const lines: string[] = [];
  if (spec.f16) lines.push("enable f16;");
  spec.buffers.forEach((b, i) => {
    lines.push(`@group(0) @binding(${i}) var<storage, ${b.access}> ${b.name}: array<${b.type}>;`);
  });
  const u = spec.uniforms ?? [];
  if (u.length) {
    lines.push(`struct Params { ${u.map((d) => `${d.name}: ${d.type},`).join(" ")} }`);
    lines.push(`@group(0) @binding(${spec.buffers.length}) var<uniform> P: Params;`);
  }
  return lines.join("\n") + "\n" + spec.body;
}

/** A WGSL compile or pipeline error, naming the kernel and quoting the offending line. */
export class KernelCompileError extends Error {
  /** `kernel` names the kernel that failed to compile. */
  constructor(readonly kernel: string, message: string) {
    super(`kernel "${kernel}": ${message}`);
    this.name = "KernelCompileError";
  }
}

/** A compiled kernel. */
export interface Kernel {
  /** What was compiled. */
  spec: KernelSpec;
  /** The compute pipeline. */
  pipeline: GPUComputePipeline;
  /** Milliseconds spent compiling (for `--profile` and bench notes). */
  compileMs: number;
}

const caches = new WeakMap<Gpu, Map<string, Promise<Kernel>>>();

/** Number of distinct pipelines compiled on `gpu` so far. */
export function pipelineCount(gpu: Gpu): number {
  return caches.get(gpu)?.size ?? 0;
}

function quoteLine(source: string, line: number, col?: number): string {
  const text = source.split("\n")[line - 1];
  if (text === undefined) return "";
  const caret = col ? "\n" + " ".repeat(String(line).length + 3 + col - 1) + "^" : "";
  return `\n  ${line} | ${text.trimEnd()}${caret}`;
}

/** Compiles (or returns the cached) pipeline for `spec`; WGSL errors become {@link KernelCompileError}. */
export function compileKernel(gpu: Gpu, spec: KernelSpec): Promise<Kernel> {
  let cache = caches.get(gpu);
  if (!cache) caches.set(gpu, cache = new Map());
  const id = spec.key ? `${spec.name}#${spec.key}` : spec.name;
  let k = cache.get(id);
  if (!k) {
    k = compileUncached(gpu, spec, id);
    cache.set(id, k);
    k.catch(() => cache.delete(id));
  }
  return k;
}

async function compileUncached(gpu: Gpu, spec: KernelSpec, id: string): Promise<Kernel> {
  const { device } = gpu;
  const code = kernelSource(spec);
  const t0 = performance.now();
  device.pushErrorScope("validation");
  const module = device.createShaderModule({ code, label: id });
  let detail = "";
  if (typeof module.getCompilationInfo === "function") {
    try {
      const info = await module.getCompilationInfo();
      for (const m of info.messages) {
        if (m.type !== "error") continue;
        detail += `\nWGSL error at line ${m.lineNum}: ${m.message}${quoteLine(code, m.lineNum, m.linePos)}`;
      }
    } catch { /* not implemented: fall back to the error scope */ }
  }
  const pipeline = device.createComputePipeline({
    layout: "auto",
    compute: { module, entryPoint: "main" },
    label: id,
  });
  const err = await device.popErrorScope();
  if (detail || err) {
    let msg = detail || `\n${err!.message}`;
    if (!detail && err) {
      // naga reports positions as ":line:col" inside its message
      const m = /:(\d+):(\d+)/.exec(err.message);
      if (m) msg += quoteLine(code, Number(m[1]), Number(m[2]));
    }
    throw new KernelCompileError(id, msg.trimStart());
  }
  return { spec, pipeline, compileMs: performance.now() - t0 };
}

/** Workgroup counts of a dispatch. */
export type Grid = [number, number, number];

/** The most workgroups per dimension on every adapter here (WebGPU's guaranteed minimum). */
export const MAX_GROUPS = 65535;

/**
 * Workgroup grid for `n` invocations in workgroups of `wg`, folded into 2-D past 65535 groups. Kernels
 * recover the linear index with {@link LINEAR_ID}.
 */
export function grid1d(n: number, wg: number): Grid {
  const groups = Math.max(1, Math.ceil(n / wg));
  if (groups <= MAX_GROUPS) return [groups, 1, 1];
  const y = Math.ceil(groups / MAX_GROUPS);
  return [Math.ceil(groups / y), y, 1];
}

/** WGSL: the linear invocation index for a {@link grid1d} grid; needs `wid`, `lid`, `nwg` builtins. */
export const LINEAR_ID = (wg: number) => `((wid.y * nwg.x + wid.x) * ${wg}u + lid.x)`;

/** WGSL builtin parameters matching {@link LINEAR_ID}. */
export const BUILTINS =
  "@builtin(workgroup_id) wid: vec3<u32>, @builtin(local_invocation_id) lid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>";

/** Values for a kernel's uniforms, by name. */
export type Params = Record<string, number>;

/**
 * A kernel bound to its buffers and uniforms: created once, recorded any number of times. Uniform values
 * can be changed with {@link Dispatch.setParams} (takes effect at the next submit).
 */
export class Dispatch {
  /** The bind group of the buffers and the uniform block. */
  readonly bindGroup: GPUBindGroup;
  readonly #uniform: GPUBuffer | null;
  readonly #params: Params;
  /**
   * The byte ranges this dispatch may write (its read_write bindings): what tells a data-parallel step when
   * a gradient is final and can be read back while the rest of the backward still runs.
   */
  readonly writes: { buffer: GPUBuffer; offset: number; bytes: number }[];

  /** Binds `kernel` to `buffers` (in the order of its declarations) and `params` (its uniforms), dispatched over `grid`. */
  constructor(
    readonly gpu: Gpu,
    readonly kernel: Kernel,
    buffers: (Tensor | GPUBuffer)[],
    params: Params,
    public grid: Grid,
    /** Name for profiles: the kernel family by default. */
    readonly label = kernel.spec.name,
  ) {
    const spec = kernel.spec;
    if (buffers.length !== spec.buffers.length) {
      throw new Error(`kernel "${spec.name}" takes ${spec.buffers.length} buffers, got ${buffers.length}`);
    }
    const entries: GPUBindGroupEntry[] = buffers.map((b, i) => ({
      binding: i,
      resource: b instanceof GPUBuffer
        ? { buffer: b }
        : { buffer: b.buffer, offset: b.byteOffset, size: Math.min(b.bindingSize, b.buffer.size - b.byteOffset) },
    }));
    this.#params = { ...params };
    this.writes = buffers.flatMap((b, i) =>
      spec.buffers[i].access !== "read_write"
        ? []
        : b instanceof GPUBuffer
        ? [{ buffer: b, offset: 0, bytes: b.size }]
        : [{ buffer: b.buffer, offset: b.byteOffset, bytes: Math.min(b.bindingSize, b.buffer.size - b.byteOffset) }]
    );
    const u = spec.uniforms ?? [];
    if (u.length) {
      for (const d of u) {
        if (!(d.name in params)) throw new Error(`kernel "${spec.name}": uniform "${d.name}" not given`);
      }
      this.#uniform = gpu.device.createBuffer({
        size: Math.ceil((u.length * 4) / 16) * 16,
        usage: GPUBufferUsage.UNIFORM | GPUBufferUsage.COPY_DST,
        label: `${spec.name} params`,
      });
      this.#writeParams();
      entries.push({ binding: spec.buffers.length, resource: { buffer: this.#uniform } });
    } else {
      this.#uniform = null;
    }
    for (const [i, g] of grid.entries()) {
      if (g > MAX_GROUPS) throw new Error(`kernel "${spec.name}": grid[${i}] = ${g} exceeds ${MAX_GROUPS}`);
    }
    this.bindGroup = gpu.device.createBindGroup({
      layout: kernel.pipeline.getBindGroupLayout(0),
      entries,
    });
  }

  /** Updates uniform values (e.g. a learning rate); ordered before the next submit. */
  setParams(params: Params): void {
    Object.assign(this.#params, params);
    this.#writeParams();
  }

  #writeParams(): void {
    const u = this.kernel.spec.uniforms ?? [];
    const data = new ArrayBuffer(Math.ceil((u.length * 4) / 16) * 16);
    const view = new DataView(data);
    u.forEach((d, i) => {
      const v = this.#params[d.name];
      if (d.type === "f32") view.setFloat32(i * 4, v, true);
      else if (d.type === "i32") view.setInt32(i * 4, v, true);
      else view.setUint32(i * 4, v, true);
    });
    this.gpu.device.queue.writeBuffer(this.#uniform!, 0, data);
  }
}

/** Compiles `spec` and binds it in one call (the usual way ops are built). */
export async function bind(
  gpu: Gpu,
  spec: KernelSpec,
  buffers: (Tensor | GPUBuffer)[],
  params: Params,
  grid: Grid,
  label?: string,
): Promise<Dispatch> {
  const kernel = await compileKernel(gpu, spec);
  return new Dispatch(gpu, kernel, buffers, params, grid, label);
}
