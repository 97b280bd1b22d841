/**
 * Recording a sequence of dispatches into one submit, with optional per-dispatch GPU timing.
 *
 * Every wait on the GPU costs ≥ 11 ms (measured on lavapipe and on an H100), so a whole step is recorded with no await and
 * submitted once. Timing uses `timestamp-query`: WebGPU core only timestamps passes, so a profiled
 * recording puts each dispatch in its own pass.
 *
 * @module
 */
import type { Gpu } from "./device.ts";
import type { Dispatch } from "./kernel.ts";
import { readBuffer, type Tensor } from "./tensor.ts";

/** Collects timestamp pairs for dispatches and turns them into milliseconds per label. */
export class Profiler {
  /** The timestamp query set, two queries per timed dispatch. */
  readonly querySet: GPUQuerySet;
  readonly #resolve: GPUBuffer;
  #labels: string[] = [];

  /** Room for `capacity` timed dispatches on `gpu` (which must have the timestamp-query feature). */
  constructor(readonly gpu: Gpu, readonly capacity = 4096) {
    if (!gpu.hasTimestamps) throw new Error("this adapter has no timestamp-query feature");
    this.querySet = gpu.device.createQuerySet({ type: "timestamp", count: capacity * 2 });
    this.#resolve = gpu.device.createBuffer({
      size: capacity * 16,
      usage: GPUBufferUsage.QUERY_RESOLVE | GPUBufferUsage.COPY_SRC,
    });
  }

  /** Reserves a query pair for `label`; null when the profiler is full. */
  next(label: string): GPUComputePassTimestampWrites | null {
    const i = this.#labels.length;
    if (i >= this.capacity) return null;
    this.#labels.push(label);
    return { querySet: this.querySet, beginningOfPassWriteIndex: 2 * i, endOfPassWriteIndex: 2 * i + 1 };
  }

  /** Appends the query resolve to `enc` (call before finishing the last recording). */
  resolveInto(enc: GPUCommandEncoder): void {
    if (this.#labels.length) enc.resolveQuerySet(this.querySet, 0, this.#labels.length * 2, this.#resolve, 0);
  }

  /** Reads the timings (waits for the GPU) and clears the profiler. */
  async read(): Promise<{ label: string; ms: number }[]> {
    const n = this.#labels.length;
    if (!n) return [];
    const raw = new BigUint64Array(await readBuffer(this.gpu, this.#resolve, n * 16));
    const out = this.#labels.map((label, i) => ({
      label,
      ms: raw[2 * i + 1] >= raw[2 * i] ? Number(raw[2 * i + 1] - raw[2 * i]) / 1e6 : 0,
    }));
    this.#labels = [];
    return out;
  }

  /** Frees the query set and its readback buffers. */
  destroy(): void {
    this.querySet.destroy();
    this.#resolve.destroy();
  }
}

/** Sums profiler entries by label, largest first. */
export function summarise(entries: { label: string; ms: number }[]): { label: string; ms: number; count: number }[] {
  const m = new Map<string, { label: string; ms: number; count: number }>();
  for (const e of entries) {
    const s = m.get(e.label) ?? { label: e.label, ms: 0, count: 0 };
    s.ms += e.ms;
    s.count++;
    m.set(e.label, s);
  }
  return [...m.values()].sort((a, b) => b.ms - a.ms);
}

/**
 * Records dispatches and copies into one command buffer. Consecutive dispatches share one compute pass
 * (wgpu inserts the storage barriers between them) unless a profiler is attached.
 */
export class Recorder {
  readonly #enc: GPUCommandEncoder;
  #pass: GPUComputePassEncoder | null = null;
  #count = 0;
  #submitted = false;

  /** A recorder for `gpu`; with `profiler`, every dispatch is timed. */
  constructor(readonly gpu: Gpu, readonly profiler: Profiler | null = null) {
    this.#enc = gpu.device.createCommandEncoder();
  }

  /** Number of dispatches recorded so far. */
  get dispatches(): number {
    return this.#count;
  }

  /** Records one dispatch. */
  run(d: Dispatch): this {
    const [x, y, z] = d.grid;
    if (x * y * z === 0) return this;
    let pass = this.#pass;
    if (this.profiler) {
      this.#endPass();
      const tw = this.profiler.next(d.label);
      pass = this.#enc.beginComputePass(tw ? { timestampWrites: tw } : {});
    } else if (!pass) {
      pass = this.#pass = this.#enc.beginComputePass();
    }
    pass!.setPipeline(d.kernel.pipeline);
    pass!.setBindGroup(0, d.bindGroup);
    pass!.dispatchWorkgroups(x, y, z);
    if (this.profiler) pass!.end();
    this.#count++;
    return this;
  }

  /** Records several dispatches in order. */
  runAll(ds: Iterable<Dispatch>): this {
    for (const d of ds) this.run(d);
    return this;
  }

  /** Records a buffer copy (ends the current pass). */
  copy(src: GPUBuffer, srcOffset: number, dst: GPUBuffer, dstOffset: number, bytes: number): this {
    this.#endPass();
    this.#enc.copyBufferToBuffer(src, srcOffset, dst, dstOffset, bytes);
    return this;
  }

  /** Records a copy of the whole of `from` into `to` (same byte length; ends the current pass). */
  copyTensor(from: Tensor, to: Tensor): this {
    if (from.byteLength !== to.byteLength) {
      throw new Error(`copy "${from.name}" → "${to.name}": ${from.byteLength} bytes into ${to.byteLength}`);
    }
    return this.copy(from.buffer, from.byteOffset, to.buffer, to.byteOffset, from.byteLength);
  }

  /** Writes a GPU timestamp into `querySet[index]` at this point (an empty pass; ends the current one). */
  timestamp(querySet: GPUQuerySet, index: number): this {
    this.#endPass();
    this.#enc.beginComputePass({ timestampWrites: { querySet, beginningOfPassWriteIndex: index } }).end();
    return this;
  }

  /** Resolves `count` queries from `first` into `dst` at `offset` (a multiple of 256). */
  resolve(querySet: GPUQuerySet, first: number, count: number, dst: GPUBuffer, offset: number): this {
    this.#endPass();
    this.#enc.resolveQuerySet(querySet, first, count, dst, offset);
    return this;
  }

  #endPass(): void {
    this.#pass?.end();
    this.#pass = null;
  }

  /** Finishes and submits everything recorded; no GPU wait. */
  submit(): void {
    if (this.#submitted) throw new Error("Recorder.submit() called twice");
    this.#submitted = true;
    this.#endPass();
    this.profiler?.resolveInto(this.#enc);
    this.gpu.device.queue.submit([this.#enc.finish()]);
  }
}

/** Waits until the GPU has finished all submitted work (≥ 11 ms; never inside a step). */
export function sync(gpu: Gpu): Promise<void> {
  return gpu.device.queue.onSubmittedWorkDone();
}
