/**
 * Parameters live in flat GPU buffers: trainable values, their gradients, the optimizer's momentum and a
 * weight-decay mask share one layout (so SGD and EMA are single kernels over everything), and BN running
 * statistics sit in a second flat buffer. Every entry is reachable as a {@link Tensor} view, aligned for
 * binding. Names and shapes follow torchvision; convolution weights are kept HWIO on the GPU and
 * converted from/to PyTorch's OIHW at the edges.
 *
 * @module
 */
import type { Gpu } from "../gpu/device.ts";
import { Tensor } from "../gpu/tensor.ts";

/** What an entry is; decides its initialisation, weight decay and where it lives. */
export type ParamKind = "conv" | "linear_weight" | "bias" | "bn_weight" | "bn_bias" | "running_mean" | "running_var";

/** One named entry, with its PyTorch shape. */
export interface ParamSpec {
  /** Unique name (torchvision's for backbone entries). */
  name: string;
  /** Shape in PyTorch's layout (OIHW for convolutions). */
  shape: number[];
  /** What the entry is, which decides its buffer, initialisation and weight decay. */
  kind: ParamKind;
}

/** Is the entry trained (vs. a running statistic)? */
export const isTrainable = (k: ParamKind): boolean => k !== "running_mean" && k !== "running_var";

/** GPU shape of an entry: convolutions become [KH, KW, Cin, Cout]. */
export function gpuShape(s: ParamSpec): number[] {
  if (s.kind !== "conv") return s.shape;
  const [o, i, h, w] = s.shape;
  return [h, w, i, o];
}

/** OIHW → HWIO. */
export function oihwToHwio(src: ArrayLike<number>, shape: number[]): Float32Array {
  const [o, i, h, w] = shape;
  const out = new Float32Array(o * i * h * w);
  for (let a = 0; a < o; a++) {
    for (let b = 0; b < i; b++) {
      for (let y = 0; y < h; y++) {
        for (let x = 0; x < w; x++) out[((y * w + x) * i + b) * o + a] = src[((a * i + b) * h + y) * w + x];
      }
    }
  }
  return out;
}

/** HWIO → OIHW (shape given as OIHW). */
export function hwioToOihw(src: ArrayLike<number>, shape: number[]): Float32Array {
  const [o, i, h, w] = shape;
  const out = new Float32Array(o * i * h * w);
  for (let a = 0; a < o; a++) {
    for (let b = 0; b < i; b++) {
      for (let y = 0; y < h; y++) {
        for (let x = 0; x < w; x++) out[((a * i + b) * h + y) * w + x] = src[((y * w + x) * i + b) * o + a];
      }
    }
  }
  return out;
}

/** Where one entry lives. */
export interface ParamEntry {
  /** The entry's spec. */
  spec: ParamSpec;
  /** Offset in floats inside its flat buffer. */
  offset: number;
  /** Number of floats. */
  numel: number;
}

/** A set of named parameters in flat GPU buffers. */
export class ParamStore {
  /** Every entry, by name. */
  readonly entries: Map<string, ParamEntry> = new Map();
  /** Floats in the trainable buffers / the statistics buffer (including alignment gaps). */
  trainableSize = 0;
  /** Floats in the statistics buffer (including alignment gaps). */
  statsSize = 0;
  #gpu: Gpu | null = null;
  #bufs: { params: GPUBuffer; grads: GPUBuffer; momentum: GPUBuffer; wdMask: GPUBuffer; stats: GPUBuffer } | null =
    null;
  #views = new Map<string, { value: Tensor; grad: Tensor | null }>();
  #alignFloats = 64;

  /** A store for `specs` (names must be unique); `allocate` creates its buffers. */
  constructor(readonly specs: ParamSpec[]) {
    const seen = new Set<string>();
    for (const s of specs) {
      if (seen.has(s.name)) throw new Error(`duplicate parameter name ${s.name}`);
      seen.add(s.name);
    }
  }

  /** Allocates the flat buffers on `gpu` (alignment from the device's offset limit). */
  allocate(gpu: Gpu): this {
    this.#gpu = gpu;
    this.#alignFloats = Math.max(4, gpu.device.limits.minStorageBufferOffsetAlignment / 4);
    const a = this.#alignFloats;
    let t = 0, s = 0;
    for (const spec of this.specs) {
      const numel = spec.shape.reduce((p, d) => p * d, 1);
      if (isTrainable(spec.kind)) {
        this.entries.set(spec.name, { spec, offset: t, numel });
        t += Math.ceil(numel / a) * a;
      } else {
        this.entries.set(spec.name, { spec, offset: s, numel });
        s += Math.ceil(numel / a) * a;
      }
    }
    this.trainableSize = Math.max(t, a);
    this.statsSize = Math.max(s, a);
    const mk = (n: number, label: string) => {
      gpu.checkBufferSize(label, n * 4);
      return gpu.device.createBuffer({
        size: n * 4,
        usage: GPUBufferUsage.STORAGE | GPUBufferUsage.COPY_SRC | GPUBufferUsage.COPY_DST,
        label,
      });
    };
    this.#bufs = {
      params: mk(this.trainableSize, "parameters"),
      grads: mk(this.trainableSize, "gradients"),
      momentum: mk(this.trainableSize, "momentum"),
      wdMask: mk(this.trainableSize, "weight-decay mask"),
      stats: mk(this.statsSize, "BN running statistics"),
    };
    // weight decay applies to every trainable entry by default (as MoCo/PLRC); gaps stay 0
    const mask = new Float32Array(this.trainableSize);
    for (const e of this.entries.values()) if (isTrainable(e.spec.kind)) mask.fill(1, e.offset, e.offset + e.numel);
    gpu.device.queue.writeBuffer(this.#bufs.wdMask, 0, mask);
    return this;
  }

  #need() {
    if (!this.#bufs || !this.#gpu) throw new Error("ParamStore.allocate() was not called");
    return { bufs: this.#bufs, gpu: this.#gpu };
  }

  /** The flat buffers as tensors (for SGD, EMA and checkpoints). */
  flat(): { params: Tensor; grads: Tensor; momentum: Tensor; wdMask: Tensor; stats: Tensor } {
    const { bufs, gpu } = this.#need();
    const v = (b: GPUBuffer, n: number, name: string) => Tensor.view(gpu, b, 0, [n], "f32", name);
    return {
      params: v(bufs.params, this.trainableSize, "parameters"),
      grads: v(bufs.grads, this.trainableSize, "gradients"),
      momentum: v(bufs.momentum, this.trainableSize, "momentum"),
      wdMask: v(bufs.wdMask, this.trainableSize, "weight-decay mask"),
      stats: v(bufs.stats, this.statsSize, "statistics"),
    };
  }

  #entry(name: string): ParamEntry {
    const e = this.entries.get(name);
    if (!e) throw new Error(`no parameter named ${name}`);
    return e;
  }

  #viewsOf(name: string) {
    let v = this.#views.get(name);
    if (!v) {
      const { bufs, gpu } = this.#need();
      const e = this.#entry(name);
      const shape = gpuShape(e.spec);
      const trainable = isTrainable(e.spec.kind);
      v = {
        value: Tensor.view(gpu, trainable ? bufs.params : bufs.stats, e.offset * 4, shape, "f32", name),
        grad: trainable ? Tensor.view(gpu, bufs.grads, e.offset * 4, shape, "f32", `grad of ${name}`) : null,
      };
      this.#views.set(name, v);
    }
    return v;
  }

  /** The GPU tensor of an entry (HWIO for convolutions). */
  value(name: string): Tensor {
    return this.#viewsOf(name).value;
  }

  /** The gradient tensor of a trainable entry. */
  grad(name: string): Tensor {
    const g = this.#viewsOf(name).grad;
    if (!g) throw new Error(`${name} has no gradient (it is a running statistic)`);
    return g;
  }

  /** Uploads one entry given in PyTorch layout. */
  set(name: string, torchLayout: ArrayLike<number>): void {
    const e = this.#entry(name);
    if (torchLayout.length !== e.numel) throw new Error(`${name}: ${torchLayout.length} values for ${e.numel}`);
    this.value(name).upload(e.spec.kind === "conv" ? oihwToHwio(torchLayout, e.spec.shape) : torchLayout);
  }

  /** Reads one entry back in PyTorch layout. */
  async get(name: string): Promise<Float32Array> {
    const e = this.#entry(name);
    const data = (await this.value(name).read()) as Float32Array;
    return e.spec.kind === "conv" ? hwioToOihw(data, e.spec.shape) : Float32Array.from(data);
  }

  /** Reads one entry's gradient in PyTorch layout. */
  async getGrad(name: string): Promise<Float32Array> {
    const e = this.#entry(name);
    const data = (await this.grad(name).read()) as Float32Array;
    return e.spec.kind === "conv" ? hwioToOihw(data, e.spec.shape) : Float32Array.from(data);
  }
}
