/**
 * What the ranks of a data-parallel step exchange: the collectives the step needs ({@link StepRanks}), the
 * sums combined over the ranks ({@link SumExchange}: gradient, loss values, centre moves, read back from the
 * GPU, all-reduced, uploaded where the update reads them), and the shuffle-BN routes of images and key
 * outputs between ranks ({@link shuffleRoutes}, {@link routeBlocks}).
 *
 * For the sums, the ranges are taken as one float sequence cut into chunks (16 MiB by default, the all-reduce size that
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
  /** Bytes per chunk of a step's exchange of sums (default 16 MiB). */
  readonly chunkBytes?: number;
  /** Every rank's `data` (all the same length) concatenated in rank order. */
  allgather(data: Float32Array): Promise<Float32Array>;
  /**
   * Sends `sendCounts[q]` consecutive floats of `data` to each rank q (in rank order) and resolves with what
   * each rank sent here, concatenated in rank order (`recvCounts[p]` floats from rank p), in `into` when given.
   */
  alltoallv(
    data: Float32Array,
    sendCounts: number[],
    recvCounts: number[],
    into?: Float32Array,
  ): Promise<Float32Array>;
}

/** One range to sum over the ranks: read from `buffer` at `offset`, written back to `to` (default: in place). */
export interface SumRange extends ReadRange {
  /** Where the sums are written (a buffer and byte offset); default: back where they were read. */
  to?: { buffer: GPUBuffer; offset: number };
}

/** Milliseconds of one exchange: until the last readback arrived, then until the last upload was queued. */
export interface ExchangeTimes {
  /** From the start until the last chunk's readback arrived. */
  readbackMs: number;
  /** From then until the last chunk was reduced and its upload queued. */
  reduceAndUploadMs: number;
  /** Bytes exchanged. */
  bytes: number;
}

/** A fixed set of sums exchanged every step through kept staging and host buffers. */
export class SumExchange {
  readonly #chunks: { reader: Readback; parts: { range: SumRange; at: number; bytes: number }[] }[] = [];
  /** Bytes exchanged per run. */
  readonly bytes: number;

  /** The exchange of `ranges` over `ranks`, read back in chunks of at most `chunkBytes`. */
  constructor(
    private readonly gpu: Gpu,
    private readonly ranks: StepRanks,
    ranges: SumRange[],
    chunkBytes = 16 << 20,
  ) {
    if (!(chunkBytes > 0 && chunkBytes % 4 === 0)) {
      throw new RangeError(`exchange: chunkBytes must be a positive multiple of 4, got ${chunkBytes}`);
    }
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

  /** The reader of chunk `k` (to record its copy with other work: {@link run}'s `reads`). */
  reader(k: number): Readback {
    return this.#chunks[k].reader;
  }

  /** The ranges chunk `k` reads, as pieces of the ranges given. */
  chunkRanges(k: number): ReadRange[] {
    return this.#chunks[k].parts.map((p) => ({
      buffer: p.range.buffer,
      offset: p.range.offset + p.at,
      bytes: p.bytes,
    }));
  }

  /**
   * Reads, all-reduces and uploads every range. By default every chunk is read after the work submitted so
   * far; `reads[k]` gives chunk k's readback instead (its copy recorded elsewhere, e.g. in the middle of a
   * backward), and `order` the order in which the chunks are awaited and reduced (the same on every rank).
   */
  async run(
    reads: Promise<Float32Array<ArrayBuffer>[]>[] = this.#chunks.map((c) => c.reader.read()),
    order: readonly number[] = this.#chunks.map((_, k) => k),
  ): Promise<ExchangeTimes> {
    const t0 = performance.now();
    const done: Promise<void>[] = [];
    for (const k of order) {
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

/**
 * Who sends which image where when the ranks run the key encoder in the shuffle-BN order. Slot j of the
 * global batch of B images holds image `perm[j]`; rank r owns images r·b … (r+1)·b − 1 and runs the key
 * passes of the same range of slots (b = B / ranks). Lists are of local indices (0 … b − 1).
 */
export interface ShuffleRoutes {
  /** Per destination rank: this rank's images it needs, in the order of the slots they fill there. */
  sendImages: number[][];
  /** Per source rank: this rank's slots that its images fill, in the order they arrive. */
  recvSlots: number[][];
}

/**
 * The routes of `perm` for `rank`. The key outputs go back the same way reversed: slot `recvSlots[p][t]`'s
 * output to rank p, arriving there as its image `sendImages[r][t]`.
 */
export function shuffleRoutes(perm: readonly number[], ranks: number, rank: number): ShuffleRoutes {
  const B = perm.length, b = B / ranks;
  if (!Number.isInteger(b)) throw new RangeError(`a batch of ${B} does not split over ${ranks} ranks`);
  const sendImages: number[][] = Array.from({ length: ranks }, () => []);
  const recvSlots: number[][] = Array.from({ length: ranks }, () => []);
  for (let j = 0; j < B; j++) {
    const holder = Math.floor(j / b), owner = Math.floor(perm[j] / b);
    if (owner === rank) sendImages[holder].push(perm[j] - rank * b);
    if (holder === rank) recvSlots[owner].push(j - rank * b);
  }
  return { sendImages, recvSlots };
}

/**
 * Moves blocks of `per` floats between ranks: block `send[q][t]` of `from` goes to rank q, and the t-th
 * block from rank p is written to block `recv[p][t]` of `into`. `scratch` holds the packed blocks on their
 * way (kept by a caller that routes every step: fresh arrays cost their first touch each time).
 */
export async function routeBlocks(
  ranks: StepRanks,
  from: Float32Array,
  into: Float32Array,
  per: number,
  send: number[][],
  recv: number[][],
  scratch?: { send: Float32Array; recv: Float32Array },
): Promise<void> {
  const sendN = send.reduce((n, l) => n + l.length, 0) * per, recvN = recv.reduce((n, l) => n + l.length, 0) * per;
  const out = scratch && scratch.send.length === sendN ? scratch.send : new Float32Array(sendN);
  let at = 0;
  for (const list of send) for (const i of list) out.set(from.subarray(i * per, (i + 1) * per), at), at += per;
  const got = await ranks.alltoallv(
    out,
    send.map((l) => l.length * per),
    recv.map((l) => l.length * per),
    scratch && scratch.recv.length === recvN ? scratch.recv : undefined,
  );
  at = 0;
  for (const list of recv) for (const i of list) into.set(got.subarray(at, at + per), i * per), at += per;
}
