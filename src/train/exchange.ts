/**
 * The sums a data-parallel step exchanges after its passes (gradient, loss values, centre moves), combined
 * over the ranks: read back from the GPU, all-reduced, uploaded where the update reads them.
 *
 * The ranges are taken as one float sequence cut into chunks (16 MiB by default, the all-reduce size that
 * kept its rate on the 2-core machine, bench/NOTES.md). Every chunk's copy to its staging buffer is
 * submitted at once; chunk k's all-reduce starts as soon as its readback arrives, while the later chunks are
 * still being copied out, and each chunk is uploaded as soon as its all-reduce completes. The collectives
 * start in chunk order on every rank (each rank awaits the readbacks in that order).
 *
 * @module
 */
import type { Gpu } from "../gpu/device.ts";
import { Readback, type ReadRange } from "../gpu/readback.ts";

/**
 * The ranks that share a step's batch, and the collectives the step needs from them (src/dist/comm.ts gives
 * them over MPI). Every rank calls the same collectives in the same order.
 */
export interface StepRanks {
  /** This process's rank, 0 … size − 1. */
  readonly rank: number;
  /** Ranks in all. */
  readonly size: number;
  /** Sums `data` element-wise over the ranks, in place; resolves when every rank has the sums. */
  allreduceSum(data: Float32Array): Promise<Float32Array>;
  /** Every rank's `data` (all the same length) concatenated in rank order. */
  allgather(data: Float32Array): Promise<Float32Array>;
}

/** One range to sum over the ranks: read from `buffer` at `offset`, written back to `to` (default: in place). */
export interface SumRange extends ReadRange {
  to?: { buffer: GPUBuffer; offset: number };
}

/** Milliseconds of one exchange: until the last readback arrived, then until the last upload was queued. */
export interface ExchangeTimes {
  readbackMs: number;
  reduceAndUploadMs: number;
  bytes: number;
}

/** A fixed set of sums exchanged every step through kept staging and host buffers. */
export class SumExchange {
  readonly #chunks: { reader: Readback; parts: { range: SumRange; at: number; bytes: number }[] }[] = [];
  /** Bytes exchanged per run. */
  readonly bytes: number;

  constructor(
    private readonly gpu: Gpu,
    private readonly ranks: StepRanks,
    ranges: SumRange[],
    chunkBytes = 16 << 20,
  ) {
    if (!(chunkBytes > 0 && chunkBytes % 4 === 0)) throw new RangeError(`chunkBytes ${chunkBytes}`);
    let chunk: { range: SumRange; at: number; bytes: number }[] = [], used = 0, total = 0;
    const close = () => {
      if (!chunk.length) return;
      const reader = new Readback(
        gpu,
        chunk.map((p) => ({ buffer: p.range.buffer, offset: p.range.offset + p.at, bytes: p.bytes })),
        "exchange of sums",
      );
      this.#chunks.push({ reader, parts: chunk });
      chunk = [], used = 0;
    };
    for (const range of ranges) {
      if (range.bytes % 4 || range.offset % 4) throw new RangeError("exchange: ranges must be multiples of 4 bytes");
      for (let at = 0; at < range.bytes;) {
        const bytes = Math.min(range.bytes - at, chunkBytes - used);
        chunk.push({ range, at, bytes });
        at += bytes, used += bytes, total += bytes;
        if (used === chunkBytes) close();
      }
    }
    close();
    this.bytes = total;
  }

  /** Chunks the sums travel in. */
  get chunks(): number {
    return this.#chunks.length;
  }

  /** Reads, all-reduces and uploads every range (after the work submitted so far). */
  async run(): Promise<ExchangeTimes> {
    const t0 = performance.now();
    const reads = this.#chunks.map((c) => c.reader.read());
    const done: Promise<void>[] = [];
    for (let k = 0; k < this.#chunks.length; k++) {
      const host = await reads[k];
      const { reader, parts } = this.#chunks[k];
      const whole = new Float32Array(reader.host, 0, reader.bytes / 4);
      // started now, in chunk order on every rank; completes while later chunks are read
      done.push(
        this.ranks.allreduceSum(whole).then(() => {
          parts.forEach((p, i) => {
            const to = p.range.to ?? p.range;
            this.gpu.device.queue.writeBuffer(to.buffer, to.offset + p.at, host[i]);
          });
        }),
      );
    }
    const t1 = performance.now();
    await Promise.all(done);
    return { readbackMs: t1 - t0, reduceAndUploadMs: performance.now() - t1, bytes: this.bytes };
  }

  /** Reads every chunk back without exchanging it (what `bench step` times as the readback alone). */
  async readOnly(): Promise<void> {
    await Promise.all(this.#chunks.map((c) => c.reader.read()));
  }

  /** Frees the staging buffers. */
  destroy(): void {
    for (const c of this.#chunks) c.reader.destroy();
  }
}
