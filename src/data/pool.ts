/**
 * Parallel decoding: a pool of Web Workers (`decode_worker.ts`) that run data tasks (`tasks.ts`: load an
 * image through the decode cache; compute and cache its FH mask), with a bounded prefetch window and results
 * delivered in task order, so output never depends on the worker count or on which worker finishes first.
 * `workers: 0` runs the same tasks on the calling thread.
 *
 * @module
 */
import { type DataTask, runTask, type TaskResult } from "./tasks.ts";
import { ordered, ThreadCrashError, ThreadPool } from "./threads.ts";

export {
  type DataTask,
  findLabelMap,
  type LoadTask,
  type MaskMeta,
  maskPathFor,
  type MaskTask,
  runTask,
  type TaskResult,
} from "./tasks.ts";

/** A pool of decode workers (or the calling thread when `workers` is 0), on a {@link ThreadPool}. */
export class WorkerPool {
  /** Worker threads (0: the calling thread). */
  readonly workers: number;
  #threads: ThreadPool<DataTask, TaskResult> | null;
  #closed = false;

  /** A pool of `workers` decode workers. */
  constructor(workers: number) {
    if (!(Number.isInteger(workers) && workers >= 0)) throw new Error(`workers must be an integer ≥ 0, got ${workers}`);
    this.workers = workers;
    this.#threads = workers > 0
      ? new ThreadPool(new URL("./decode_worker.ts", import.meta.url), workers, { name: "decode" })
      : null;
  }

  /** Runs one task. A crashed decoder fails its task as a skip, so one hostile file cannot stop a run. */
  run(task: DataTask): Promise<TaskResult> {
    if (this.#closed) return Promise.reject(new Error("WorkerPool is closed"));
    if (!this.#threads) return runTask(task);
    return this.#threads.run(task).catch((e) => {
      if (e instanceof ThreadCrashError) return { ok: false, rel: task.rel, reason: `decoder crashed (${e.message})` };
      throw e;
    });
  }

  /**
   * Runs `tasks` with at most `prefetch` started but not yet consumed (default 2 per worker, at least 1),
   * yielding results in task order.
   */
  map(tasks: Iterable<DataTask>, prefetch: number = Math.max(1, 2 * this.workers)): AsyncGenerator<TaskResult> {
    return ordered(tasks, (t) => this.run(t), prefetch);
  }

  /** Stops the workers; pending tasks are rejected. */
  close(): void {
    this.#closed = true;
    this.#threads?.close();
  }
}
