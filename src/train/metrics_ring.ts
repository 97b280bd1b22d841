/**
 * Reading scalars back without waiting inside a step: every step copies its loss scalars (and, where the
 * adapter has timestamp queries, the GPU time between the step's first and last command) into the next
 * staging buffer of a small ring and starts mapping it; the host collects a slot only when the ring comes
 * back round to it, a few steps later, by which time the GPU has long finished it.
 *
 * @module
 */
import type { Gpu } from "../gpu/device.ts";
import type { Recorder } from "../gpu/recorder.ts";
import type { Tensor } from "../gpu/tensor.ts";

/** Values read back for one step. */
export interface StepScalars {
  /** The step the values belong to. */
  step: number;
  /** The scalars, in the order of the ring's sources. */
  values: Float32Array;
  /** GPU milliseconds of the step (timestamp queries), or null without them. */
  gpuMs: number | null;
}

interface Slot {
  buf: GPUBuffer;
  step: number;
  pending: Promise<void> | null;
}

/** A ring of MAP_READ staging buffers for `count` f32 scalars (+ two u64 timestamps) per step. */
export class MetricsRing {
  readonly #slots: Slot[];
  readonly #timer: { qs: GPUQuerySet; resolve: GPUBuffer } | null;
  readonly #timeOffset: number;
  #next = 0;

  /** A ring of `depth` staging buffers reading one float from each of `sources` per step. */
  constructor(readonly gpu: Gpu, readonly sources: Tensor[], readonly depth = 4) {
    this.#timeOffset = Math.ceil((sources.length * 4) / 8) * 8;
    this.#slots = Array.from({ length: depth }, () => ({
      buf: gpu.device.createBuffer({
        size: this.#timeOffset + 16,
        usage: GPUBufferUsage.MAP_READ | GPUBufferUsage.COPY_DST,
      }),
      step: -1,
      pending: null,
    }));
    this.#timer = gpu.hasTimestamps
      ? {
        qs: gpu.device.createQuerySet({ type: "timestamp", count: 2 * depth }),
        resolve: gpu.device.createBuffer({
          size: 256 * depth,
          usage: GPUBufferUsage.QUERY_RESOLVE | GPUBufferUsage.COPY_SRC,
        }),
      }
      : null;
  }

  /**
   * Starts a step in `rec`: returns the values of the step that last used this slot (awaiting its map,
   * normally long complete) and writes the start timestamp.
   */
  async begin(rec: Recorder): Promise<StepScalars | null> {
    const slot = this.#slots[this.#next];
    const old = slot.step >= 0 ? await this.#collect(slot) : null;
    if (this.#timer) rec.timestamp(this.#timer.qs, 2 * this.#next);
    return old;
  }

  /** Ends the step in `rec`: end timestamp and the copies of the scalars into the slot. */
  end(rec: Recorder, step: number): void {
    const i = this.#next, slot = this.#slots[i];
    this.#next = (this.#next + 1) % this.depth;
    if (this.#timer) {
      rec.timestamp(this.#timer.qs, 2 * i + 1);
      rec.resolve(this.#timer.qs, 2 * i, 2, this.#timer.resolve, 256 * i);
      rec.copy(this.#timer.resolve, 256 * i, slot.buf, this.#timeOffset, 16);
    }
    this.sources.forEach((t, k) => rec.copy(t.buffer, t.byteOffset, slot.buf, k * 4, 4));
    slot.step = step;
  }

  /** Starts mapping the slot written by the last submit (call right after `submit`). */
  afterSubmit(): void {
    const slot = this.#slots[(this.#next + this.depth - 1) % this.depth];
    slot.pending = slot.buf.mapAsync(GPUMapMode.READ);
  }

  async #collect(slot: Slot): Promise<StepScalars> {
    await slot.pending;
    const range = slot.buf.getMappedRange();
    const values = new Float32Array(range.slice(0, this.sources.length * 4));
    let gpuMs: number | null = null;
    if (this.#timer) {
      const [t0, t1] = new BigUint64Array(range.slice(this.#timeOffset, this.#timeOffset + 16));
      gpuMs = t1 > t0 ? Number(t1 - t0) / 1e6 : null;
    }
    slot.buf.unmap();
    slot.pending = null;
    const out = { step: slot.step, values, gpuMs };
    slot.step = -1;
    return out;
  }

  /** Collects every outstanding slot, oldest first. */
  async drain(): Promise<StepScalars[]> {
    const out: StepScalars[] = [];
    for (let i = 0; i < this.depth; i++) {
      const slot = this.#slots[(this.#next + i) % this.depth];
      if (slot.step >= 0 && slot.pending) out.push(await this.#collect(slot));
    }
    return out;
  }

  /** Frees the staging buffers and query set. */
  destroy(): void {
    for (const s of this.#slots) s.buf.destroy();
    this.#timer?.qs.destroy();
    this.#timer?.resolve.destroy();
  }
}
