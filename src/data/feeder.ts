/**
 * Training batches made in parallel: a {@link SamplePool} makes samples in worker threads (each worker
 * rebuilds the source from its {@link SourceSpec}), and a {@link BatchFeeder} collates them into the
 * batch of each step while it keeps the next `prefetch` batches in the making, so the data pipeline runs
 * while the GPU trains.
 *
 * Determinism: sample (index, key) is `makeKeyedSample(source.get(index), key)` on whichever thread makes
 * it, and samples are collated in batch order, so every batch is bit-identical to `makeBatch` on the main
 * thread, whatever the worker count (exact resume depends on it).
 *
 * @module
 */
import { collate, type DataConfig, makeBatch, makeKeyedSample, type PlrcBatch, type PlrcSample } from "./batch.ts";
import type { SampleInit, SampleRequest } from "./sample_worker.ts";
import type { ImageSource } from "./sources.ts";
import { ThreadCrashError, ThreadPool } from "./threads.ts";

export type { SampleInit, SampleRequest };

/**
 * The sample worker's module. Resolved from this directory, so the bundle (dist/plrc.js) finds it as
 * dist/sample_worker.ts, as the decode pool finds dist/decode_worker.ts.
 */
export const SAMPLE_WORKER_URL: string = new URL("./sample_worker.ts", import.meta.url).href;

/**
 * Makes samples in `workers` threads, or on the calling thread when `workers` is 0 or the source has no
 * spec (a custom source cannot be rebuilt in a worker).
 */
export class SamplePool {
  /** Worker threads in use (0 when the source has no spec). */
  readonly workers: number;
  readonly #source: ImageSource;
  readonly #data: DataConfig;
  readonly #threads: ThreadPool<SampleRequest, PlrcSample> | null;

  /** A pool over `source` with `workers` threads (0: the calling thread). */
  constructor(source: ImageSource, data: DataConfig, workers: number) {
    if (!(Number.isInteger(workers) && workers >= 0)) throw new Error(`workers must be an integer ≥ 0, got ${workers}`);
    this.workers = source.spec ? workers : 0;
    this.#source = source, this.#data = data;
    // two requests per worker, so a worker has the next one while its answer waits for the main thread
    this.#threads = this.workers > 0
      ? new ThreadPool(SAMPLE_WORKER_URL, this.workers, {
        init: { spec: source.spec!, data } satisfies SampleInit,
        perWorker: 2,
        name: "sample",
      })
      : null;
  }

  /** Makes one sample. */
  async sample(req: SampleRequest): Promise<PlrcSample> {
    if (this.#threads) {
      return await this.#threads.run(req).catch((e) => {
        throw e instanceof ThreadCrashError ? new Error(`a data worker crashed: ${e.message}`) : e;
      });
    }
    return makeKeyedSample({ ...(await this.#source.get(req.index)), key: req.key }, this.#data);
  }

  /** Makes the batch of `reqs` (collated in their order). */
  async batch(reqs: SampleRequest[]): Promise<PlrcBatch> {
    if (!this.#threads) {
      const items = await Promise.all(reqs.map(async (r) => ({ ...(await this.#source.get(r.index)), key: r.key })));
      return makeBatch(items, this.#data);
    }
    return collate(await Promise.all(reqs.map((r) => this.sample(r))), this.#data);
  }

  /** Stops the workers; pending samples are rejected. */
  close(): void {
    this.#threads?.close();
  }
}

/** Options of a {@link BatchFeeder}. */
export interface FeederOptions {
  /** Where the images come from. */
  source: ImageSource;
  /** How samples are made. */
  data: DataConfig;
  /** Worker threads (0: the main thread, batch by batch, no prefetch). */
  workers: number;
  /** Batches made ahead of the one asked for; default 2. */
  prefetch?: number;
  /** The samples of step `s`. */
  requests: (step: number) => SampleRequest[];
  /** Steps end before this one (nothing is prefetched past it); default unbounded. */
  end?: number;
}

/** The batch of each step, the next ones made ahead in worker threads. */
export class BatchFeeder {
  /** The pool that makes the samples. */
  readonly pool: SamplePool;
  /** Batches made ahead of the one asked for. */
  readonly prefetch: number;
  readonly #requests: (step: number) => SampleRequest[];
  readonly #end: number;
  #pending = new Map<number, Promise<PlrcBatch>>();

  /** A feeder as `o` describes; no batch is made before the first is asked for. */
  constructor(o: FeederOptions) {
    const prefetch = o.prefetch ?? 2;
    if (!(Number.isInteger(prefetch) && prefetch >= 0)) {
      throw new Error(`prefetch must be an integer ≥ 0, got ${prefetch}`);
    }
    this.pool = new SamplePool(o.source, o.data, o.workers);
    this.prefetch = this.pool.workers > 0 ? prefetch : 0;
    this.#requests = o.requests, this.#end = o.end ?? Infinity;
  }

  /** The batch of step `s`; asking for steps in order keeps the next `prefetch` ones in the making. */
  batch(s: number): Promise<PlrcBatch> {
    const want = this.#take(s);
    for (const k of this.#pending.keys()) if (k < s || k > s + this.prefetch) this.#pending.delete(k); // a jump
    for (let k = s + 1; k <= s + this.prefetch && k < this.#end; k++) {
      if (!this.#pending.has(k)) this.#pending.set(k, this.#start(k));
    }
    return want;
  }

  #take(s: number): Promise<PlrcBatch> {
    const p = this.#pending.get(s) ?? this.#start(s);
    this.#pending.delete(s);
    return p;
  }

  #start(s: number): Promise<PlrcBatch> {
    const p = this.pool.batch(this.#requests(s));
    p.catch(() => {}); // a failure surfaces when its step is asked for
    return p;
  }

  /** Stops the workers; batches in the making are dropped. */
  close(): void {
    this.#pending.clear();
    this.pool.close();
  }
}
