/**
 * Repeated readbacks of the same GPU ranges (what a data-parallel step exchanges every step) through one
 * staging buffer and one host buffer that live as long as the reader: a fresh staging buffer and a fresh
 * host buffer cost their first touch every time, which dominated a 64 MiB readback on the 2-core CPU
 * machine (bench/NOTES.md, 2026-12-06).
 *
 * @module
 */
import type { Gpu } from "./device.ts";
import { Recorder } from "./recorder.ts";
import { copyMapped } from "./tensor.ts";

/** One range to read: `bytes` of `buffer` from `offset` (both multiples of 4). */
export interface ReadRange {
  /** The GPU buffer read. */
  buffer: GPUBuffer;
  /** Byte offset in it. */
  offset: number;
  /** Bytes read. */
  bytes: number;
}

/** Reads a fixed list of ranges back, again and again, into the same host memory. */
export class Readback {
  readonly #staging: GPUBuffer;
  /** The host copy: the ranges one after another, each at its `offsets` entry. */
  readonly host: ArrayBuffer;
  /** Byte offset of each range in {@link host}. */
  readonly offsets: number[];
  /** Bytes read in all. */
  readonly bytes: number;

  /** A reader of `ranges` on `gpu` (its staging buffer labelled `label`). */
  constructor(private readonly gpu: Gpu, private readonly ranges: ReadRange[], label = "readback") {
    let at = 0;
    this.offsets = ranges.map((r) => {
      if (r.bytes % 4 || r.offset % 4) throw new RangeError(`${label}: ranges must be multiples of 4 bytes`);
      const o = at;
      at += r.bytes;
      return o;
    });
    this.bytes = at;
    this.#staging = gpu.device.createBuffer({
      label,
      size: Math.max(4, at),
      usage: GPUBufferUsage.MAP_READ | GPUBufferUsage.COPY_DST,
    });
    this.host = new ArrayBuffer(at);
  }

  /**
   * Copies every range into the host buffer (after the work submitted so far: one GPU wait) and returns a
   * float32 view of each. The views are overwritten by the next read.
   */
  async read(): Promise<Float32Array<ArrayBuffer>[]> {
    const rec = new Recorder(this.gpu);
    this.record(rec);
    rec.submit();
    return await this.collect();
  }

  /** Records the copies of the ranges into the staging buffer: {@link collect} after `rec` is submitted. */
  record(rec: Recorder): void {
    this.ranges.forEach((r, k) => rec.copy(r.buffer, r.offset, this.#staging, this.offsets[k], r.bytes));
  }

  /** Waits for the copies recorded by {@link record} and returns the host views, as {@link read} does. */
  async collect(): Promise<Float32Array<ArrayBuffer>[]> {
    await this.#staging.mapAsync(GPUMapMode.READ);
    copyMapped(this.#staging, new Uint8Array(this.host), this.bytes);
    this.#staging.unmap();
    return this.ranges.map((r, k) => new Float32Array(this.host, this.offsets[k], r.bytes / 4));
  }

  /** Frees the staging buffer. */
  destroy(): void {
    this.#staging.destroy();
  }
}
