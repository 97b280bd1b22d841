/**
 * GPU tensors: a storage buffer with a shape and a dtype, plus a size-class buffer pool.
 *
 * Activations are allocated once per shape and reused every step, so the pool's job is to recycle
 * buffers between differently-shaped runs (tests, benchmarks) without leaking GPU memory.
 *
 * @module
 */
import { f32ToF16Bits } from "../util/f16.ts";
import type { Gpu } from "./device.ts";

/** Element types a tensor can hold on the GPU. */
export type DType = "f32" | "f16" | "i32" | "u32";

/** Bytes per element. */
export const DTYPE_BYTES: Record<DType, number> = { f32: 4, f16: 2, i32: 4, u32: 4 };

/** Host-side array types for each dtype (f16 travels as raw 16-bit patterns). */
export type HostArray = Float32Array | Uint16Array | Int32Array | Uint32Array;

const STORAGE = GPUBufferUsage.STORAGE | GPUBufferUsage.COPY_SRC | GPUBufferUsage.COPY_DST;

/** Element count of a shape. */
export function numel(shape: readonly number[]): number {
  let n = 1;
  for (const d of shape) {
    if (!Number.isInteger(d) || d < 0) throw new Error(`bad dimension ${d} in shape [${shape}]`);
    n *= d;
  }
  return n;
}

/** Buffers are rounded up to 16 bytes so that vec4 kernels can always bind them. */
function roundUp(bytes: number, to = 16): number {
  return Math.max(to, Math.ceil(bytes / to) * to);
}

/**
 * A pool of storage buffers keyed by byte size (rounded to a power-of-two size class above 1 MiB so that
 * slightly different shapes share buffers).
 */
export class BufferPool {
  #free = new Map<number, GPUBuffer[]>();
  /** Bytes currently held by live tensors. */
  liveBytes = 0;
  /** Bytes of free buffers kept for reuse. */
  freeBytes = 0;
  /** High-water mark of `liveBytes`. */
  peakBytes = 0;

  /** A pool for the buffers of `gpu`. */
  constructor(readonly gpu: Gpu) {}

  /** The buffer size that `bytes` is rounded up to: a multiple of 16 up to 1 MiB, a power of two above. */
  static sizeClass(bytes: number): number {
    const b = roundUp(bytes);
    if (b <= 1 << 20) return b;
    return 2 ** Math.ceil(Math.log2(b));
  }

  /** A storage buffer of at least `bytes`, reused from the pool when one of its size class is free. */
  acquire(bytes: number, what: string): GPUBuffer {
    const size = BufferPool.sizeClass(bytes);
    this.gpu.checkBufferSize(what, size);
    const list = this.#free.get(size);
    const reused = list?.pop();
    if (reused) this.freeBytes -= size;
    const buf = reused ?? this.gpu.device.createBuffer({ size, usage: STORAGE, label: what });
    this.liveBytes += size;
    this.peakBytes = Math.max(this.peakBytes, this.liveBytes);
    return buf;
  }

  /** Returns `buf` to the pool for reuse. */
  release(buf: GPUBuffer): void {
    this.liveBytes -= buf.size;
    const list = this.#free.get(buf.size) ?? [];
    list.push(buf);
    this.#free.set(buf.size, list);
    this.freeBytes += buf.size;
  }

  /** Destroys every pooled (free) buffer. */
  trim(): void {
    for (const list of this.#free.values()) for (const b of list) b.destroy();
    this.#free.clear();
    this.freeBytes = 0;
  }
}

/**
 * Bytes of plrc's GPU buffers in use on `gpu`: every buffer made, less the pool's free ones kept for reuse
 * (which `gpu.memory` still counts).
 */
export function bytesInUse(gpu: Gpu): number {
  return gpu.memory.liveBytes - poolOf(gpu).freeBytes;
}

const pools = new WeakMap<Gpu, BufferPool>();

/** The pool shared by all tensors of one device. */
export function poolOf(gpu: Gpu): BufferPool {
  let p = pools.get(gpu);
  if (!p) pools.set(gpu, p = new BufferPool(gpu));
  return p;
}

/** A dense, row-major tensor in a GPU storage buffer. */
export class Tensor {
  /** Number of elements. */
  readonly numel: number;
  /** Size of the tensor's data in bytes. */
  readonly byteLength: number;
  /** Offset of the tensor inside its buffer (non-zero for views into flat parameter buffers). */
  readonly byteOffset: number;
  #buffer: GPUBuffer | null;
  readonly #owned: boolean;

  private constructor(
    readonly gpu: Gpu,
    readonly shape: readonly number[],
    readonly dtype: DType,
    readonly name: string,
    view?: { buffer: GPUBuffer; byteOffset: number },
  ) {
    this.numel = numel(shape);
    this.byteLength = this.numel * DTYPE_BYTES[dtype];
    this.byteOffset = view?.byteOffset ?? 0;
    this.#owned = !view;
    this.#buffer = view?.buffer ??
      poolOf(gpu).acquire(this.byteLength, `tensor "${name}" [${shape.join("×")}] ${dtype}`);
  }

  /**
   * A tensor that lives at `byteOffset` inside `buffer` (e.g. one parameter of a flat parameter buffer).
   * The offset must meet the device's storage offset alignment; disposing a view frees nothing.
   */
  static view(
    gpu: Gpu,
    buffer: GPUBuffer,
    byteOffset: number,
    shape: readonly number[],
    dtype: DType = "f32",
    name = "view",
  ): Tensor {
    const align = gpu.device.limits.minStorageBufferOffsetAlignment;
    if (byteOffset % align) throw new Error(`view "${name}": offset ${byteOffset} is not a multiple of ${align}`);
    const t = new Tensor(gpu, [...shape], dtype, name, { buffer, byteOffset });
    if (byteOffset + t.bindingSize > buffer.size) throw new Error(`view "${name}" runs past the end of its buffer`);
    return t;
  }

  /** Bytes bound for kernels: rounded up to 16 so that vec4 views are always valid. */
  get bindingSize(): number {
    return roundUp(this.byteLength, 16);
  }

  /** Allocates an uninitialised tensor (pooled buffers may hold old data). */
  static empty(gpu: Gpu, shape: readonly number[], dtype: DType = "f32", name = "tensor"): Tensor {
    return new Tensor(gpu, [...shape], dtype, name);
  }

  /** Allocates a tensor and uploads `data` (length must equal the element count). */
  static from(
    gpu: Gpu,
    shape: readonly number[],
    data: ArrayLike<number> | HostArray,
    dtype: DType = "f32",
    name = "tensor",
  ): Tensor {
    const t = new Tensor(gpu, [...shape], dtype, name);
    t.upload(data);
    return t;
  }

  /** The underlying buffer (which may be larger than `byteLength`). */
  get buffer(): GPUBuffer {
    if (!this.#buffer) throw new Error(`tensor "${this.name}" was used after dispose()`);
    return this.#buffer;
  }

  /** Writes host data into the tensor (queued; ordered before later submits). */
  upload(data: ArrayLike<number> | HostArray): void {
    if (data.length !== this.numel) {
      throw new Error(`upload to "${this.name}": ${data.length} values for shape [${this.shape}]`);
    }
    writeHost(this.gpu, this.buffer, toHost(this.dtype, data), this.byteOffset);
  }

  /** Fills every element with the bit pattern of `value` (used to poison outputs in tests). */
  fill(value: number): void {
    writeHost(this.gpu, this.buffer, toHost(this.dtype, new Float64Array(this.numel).fill(value)), this.byteOffset);
  }

  /** Copies the tensor back to the host. Waits for the GPU: never call inside a training step. */
  async read(): Promise<HostArray> {
    const bytes = await readBuffer(this.gpu, this.buffer, roundUp(this.byteLength, 4), this.byteOffset);
    switch (this.dtype) {
      case "f32":
        return new Float32Array(bytes, 0, this.numel);
      case "f16":
        return new Uint16Array(bytes, 0, this.numel);
      case "i32":
        return new Int32Array(bytes, 0, this.numel);
      case "u32":
        return new Uint32Array(bytes, 0, this.numel);
    }
  }

  /** Returns the buffer to the pool. */
  dispose(): void {
    if (this.#buffer && this.#owned) poolOf(this.gpu).release(this.#buffer);
    this.#buffer = null;
  }
}

/** Queues a write of `host` to the start of `buffer`; WebGPU wants whole 4-byte words, so pad a copy. */
function writeHost(gpu: Gpu, buffer: GPUBuffer, host: HostArray, offset = 0): void {
  const bytes = new Uint8Array(host.buffer as ArrayBuffer, host.byteOffset, host.byteLength);
  const padded = bytes.byteLength % 4 ? new Uint8Array(roundUp(bytes.byteLength, 4)) : bytes;
  if (padded !== bytes) padded.set(bytes);
  gpu.device.queue.writeBuffer(buffer, offset, padded);
}

/** Converts numbers to the host representation of `dtype`; f16 is rounded to nearest even. */
export function toHost(dtype: DType, data: ArrayLike<number> | HostArray): HostArray {
  switch (dtype) {
    case "f32":
      return data instanceof Float32Array ? data : Float32Array.from(data);
    case "i32":
      return data instanceof Int32Array ? data : Int32Array.from(data);
    case "u32":
      return data instanceof Uint32Array ? data : Uint32Array.from(data);
    case "f16": {
      if (data instanceof Uint16Array) return data;
      const out = new Uint16Array(data.length);
      for (let i = 0; i < data.length; i++) out[i] = f32ToF16Bits(data[i]);
      return out;
    }
  }
}

/** Bytes copied out of a mapped buffer per `getMappedRange` call (see {@link copyMapped}). */
const MAPPED_CHUNK = 64 << 10;

/**
 * Copies the first `bytes` of a buffer mapped for reading into `dst`, in 64 KiB pieces: Deno's
 * `getMappedRange` hands back a fresh copy, and large fresh copies ran many times slower than small ones on
 * the 2-core CPU machine (bench/NOTES.md, 2026-12-06).
 */
export function copyMapped(mapped: GPUBuffer, dst: Uint8Array, bytes: number): void {
  for (let o = 0; o < bytes; o += MAPPED_CHUNK) {
    const n = Math.min(MAPPED_CHUNK, bytes - o);
    dst.set(new Uint8Array(mapped.getMappedRange(o, n)), o);
  }
}

/**
 * Copies `bytes` of `buffer` to the host through a temporary staging buffer (one GPU wait), into `into`
 * (at least `bytes` long) or a new buffer. Repeated readbacks of the same ranges: src/gpu/readback.ts.
 */
export async function readBuffer(
  gpu: Gpu,
  buffer: GPUBuffer,
  bytes: number,
  offset = 0,
  into?: ArrayBuffer,
): Promise<ArrayBuffer> {
  if (into && into.byteLength < bytes) throw new RangeError(`readBuffer: ${into.byteLength} bytes to hold ${bytes}`);
  const staging = gpu.device.createBuffer({
    size: bytes,
    usage: GPUBufferUsage.MAP_READ | GPUBufferUsage.COPY_DST,
  });
  const enc = gpu.device.createCommandEncoder();
  enc.copyBufferToBuffer(buffer, offset, staging, 0, bytes);
  gpu.device.queue.submit([enc.finish()]);
  await staging.mapAsync(GPUMapMode.READ);
  const out = into ?? new ArrayBuffer(bytes);
  copyMapped(staging, new Uint8Array(out, 0, bytes), bytes);
  staging.unmap();
  staging.destroy();
  return out;
}
