/**
 * Reading scalars back without waiting inside a step: every step copies its loss scalars into the next
 * staging buffer of a small ring and starts mapping it; the host collects a slot only when the ring comes
 * back round to it, a few steps later, by which time the GPU has long finished it.
 *
 * @module
 */
import type { Gpu } from "../gpu/device.ts";
import type { Recorder } from "../gpu/encoder.ts";
import type { Tensor } from "../gpu/tensor.ts";

/** Values read back for one step. */
export interface StepScalars {
  step: number;
  values: Float32Array;
}

/** A ring of MAP_READ staging buffers for `count` f32 scalars per step. */
export class MetricsRing {
  readonly #slots: { buf: GPUBuffer; step: number; pending: Promise<void> | null }[];
  #next = 0;

  constructor(readonly gpu: Gpu, readonly sources: Tensor[], readonly depth = 4) {
    this.#slots = Array.from({ length: depth }, () => ({
      buf: gpu.device.createBuffer({
        size: Math.max(16, sources.length * 4),
        usage: GPUBufferUsage.MAP_READ | GPUBufferUsage.COPY_DST,
      }),
      step: -1,
      pending: null,
    }));
  }

  /**
   * Records the copies for `step` into `rec` (before its submit). If the slot still holds an older step,
   * that step's values are returned (awaiting its map, normally long complete).
   */
  async record(rec: Recorder, step: number): Promise<StepScalars | null> {
    const slot = this.#slots[this.#next];
    this.#next = (this.#next + 1) % this.depth;
    const old = slot.step >= 0 ? await this.#collect(slot) : null;
    this.sources.forEach((t, i) => rec.copy(t.buffer, t.byteOffset, slot.buf, i * 4, 4));
    slot.step = step;
    return old;
  }

  /** Starts mapping the slots written by the last submit (call right after `submit`). */
  afterSubmit(): void {
    const slot = this.#slots[(this.#next + this.depth - 1) % this.depth];
    slot.pending = slot.buf.mapAsync(GPUMapMode.READ);
  }

  async #collect(slot: { buf: GPUBuffer; step: number; pending: Promise<void> | null }): Promise<StepScalars> {
    await slot.pending;
    const values = new Float32Array(slot.buf.getMappedRange().slice(0, this.sources.length * 4));
    slot.buf.unmap();
    slot.pending = null;
    const out = { step: slot.step, values };
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

  destroy(): void {
    for (const s of this.#slots) s.buf.destroy();
  }
}
