/**
 * The collectives a data-parallel training step and loop need, over MPI, each with a deadline: a rank that
 * waits longer than `timeoutMs` for the others throws `MpiError("timeout")` (a rank has hung or died), and
 * the caller aborts the job. Large all-reduces go in buckets that are all started at once, so that MPI
 * pipelines them.
 *
 * @module
 */
import { type Mpi, MpiError } from "./mpi.ts";

/** Options of {@link MpiRanks}. */
export interface RanksOptions {
  /** Longest wait for the other ranks in one collective, in milliseconds (default 10 minutes). */
  timeoutMs?: number;
  /** Floats per all-reduce bucket, and per chunk of a step's exchange (default 4 Mi floats, 16 MiB). */
  bucket?: number;
}

/** The ranks of an MPI job as the training step sees them: rank, size and deadline-bound collectives. */
export class MpiRanks {
  /** This process's rank. */
  readonly rank: number;
  /** Ranks in all. */
  readonly size: number;
  /** Bytes per chunk of a step's exchange of sums (the bucket size). */
  readonly chunkBytes: number;
  readonly #timeout: number;
  readonly #bucket: number;

  /** The ranks of `mpi`'s world. */
  constructor(readonly mpi: Mpi, o: RanksOptions = {}) {
    this.rank = mpi.rank, this.size = mpi.size;
    this.#timeout = o.timeoutMs ?? 600_000;
    this.#bucket = o.bucket ?? (4 << 20);
    if (!(this.#timeout > 0)) throw new RangeError(`timeoutMs must be positive, got ${o.timeoutMs}`);
    if (!(Number.isInteger(this.#bucket) && this.#bucket > 0 && this.#bucket % 64 === 0)) {
      throw new RangeError(`bucket must be a positive multiple of 64 floats, got ${o.bucket}`);
    }
    this.chunkBytes = this.#bucket * 4;
  }

  /** Sums `data` over the ranks in place, in buckets started together. */
  async allreduceSum(data: Float32Array): Promise<Float32Array> {
    const reqs = [];
    for (let i = 0; i < data.length; i += this.#bucket) {
      reqs.push(this.mpi.iallreduceSum(data.subarray(i, Math.min(data.length, i + this.#bucket))));
    }
    for (const r of reqs) await r.done(50, this.#timeout);
    return data;
  }

  /** Every rank's `data` concatenated in rank order. */
  async allgather(data: Float32Array): Promise<Float32Array> {
    const r = this.mpi.iallgather(data);
    await r.done(50, this.#timeout);
    return r.data;
  }

  /**
   * Sends `sendCounts[q]` floats of `data` (consecutive, in rank order) to each rank q and returns what every
   * rank sent here, concatenated in rank order (`recvCounts[p]` floats from rank p), in `into` when given.
   */
  async alltoallv(
    data: Float32Array,
    sendCounts: number[],
    recvCounts: number[],
    into?: Float32Array,
  ): Promise<Float32Array> {
    const sum = (c: number[]) => c.reduce((a, b) => a + b, 0);
    const displs = (c: number[]) => Int32Array.from(c.map((_, i) => sum(c.slice(0, i))));
    if (sum(sendCounts) !== data.length) {
      throw new RangeError(`alltoallv: counts sum to ${sum(sendCounts)}, data holds ${data.length}`);
    }
    if (into && into.length !== sum(recvCounts)) {
      throw new RangeError(`alltoallv: ${into.length} floats to receive ${sum(recvCounts)}`);
    }
    const recv = into ?? new Float32Array(sum(recvCounts));
    const r = this.mpi.ialltoallv(
      data,
      Int32Array.from(sendCounts),
      displs(sendCounts),
      recv,
      Int32Array.from(recvCounts),
      displs(recvCounts),
    );
    await r.done(50, this.#timeout);
    return recv;
  }

  /** Whether any rank says yes (a stop request seen by one rank stops them all at the same step). */
  async any(flag: boolean): Promise<boolean> {
    const x = await this.allreduceSum(Float32Array.of(flag ? 1 : 0));
    return x[0] > 0;
  }

  /** Waits for every rank, with the deadline. */
  async barrier(): Promise<void> {
    await this.allreduceSum(new Float32Array(1));
  }
}

export { MpiError };
