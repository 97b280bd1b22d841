/**
 * A small pool of module Workers that answer requests: each request gets an id, each worker runs at most
 * `perWorker` requests at a time (so a worker never waits for the main thread between two), results come
 * back with their buffers transferred, and {@link ThreadPool.map} yields them in request order, so output
 * never depends on the worker count or on which worker finishes first.
 *
 * Protocol: the pool posts `{ init }` to every worker it starts, then `{ id, req }` per request; the worker
 * (its side is {@link serveThread}) answers `{ id, result }` or `{ id, error }`. An error answer rejects the
 * request with the worker's message; a worker that crashes (an uncaught error, a module that fails to load)
 * rejects its requests with a {@link ThreadCrashError} and is replaced.
 *
 * @module
 */

/** A request failed because its worker crashed (not because the handler threw). */
export class ThreadCrashError extends Error {
  /** The error's name. */
  override name = "ThreadCrashError";
}

/** What a request handler returns: the result and the buffers to transfer with it. */
export interface ThreadReply<Res> {
  /** The reply. */
  result: Res;
  /** Buffers moved to the caller instead of copied. */
  transfer?: Transferable[];
}

/** Options of a {@link ThreadPool}. */
export interface ThreadPoolOptions {
  /** Sent once to every worker before its first request (structured-cloned). */
  init?: unknown;
  /** Requests in flight per worker; default 1. */
  perWorker?: number;
  /** Name prefix of the workers (shows in traces). */
  name?: string;
}

interface Job<Res> {
  id: number;
  req: unknown;
  transfer: Transferable[];
  resolve: (r: Res) => void;
  reject: (e: Error) => void;
}

interface Slot<Res> {
  worker: Worker;
  jobs: Map<number, Job<Res>>;
}

type Answer<Res> = { id: number; result: Res; error?: undefined } | { id: number; error: string };

/** A pool of `size` workers running the module at `url` (see {@link serveThread}); `size` must be ≥ 1. */
export class ThreadPool<Req, Res> {
  /** Number of workers. */
  readonly size: number;
  readonly #url: string;
  readonly #opts: ThreadPoolOptions;
  readonly #perWorker: number;
  #slots: Slot<Res>[] = [];
  #queue: Job<Res>[] = [];
  #nextId = 0;
  #closed = false;

  /** Starts `size` workers running the module at `url`. */
  constructor(url: string | URL, size: number, opts: ThreadPoolOptions = {}) {
    if (!(Number.isInteger(size) && size >= 1)) {
      throw new Error(`a thread pool needs an integer ≥ 1 workers, got ${size}`);
    }
    const perWorker = opts.perWorker ?? 1;
    if (!(Number.isInteger(perWorker) && perWorker >= 1)) throw new Error(`perWorker must be an integer ≥ 1`);
    this.size = size, this.#url = String(url), this.#opts = opts, this.#perWorker = perWorker;
    for (let i = 0; i < size; i++) this.#slots.push(this.#spawn(i));
  }

  #spawn(i: number): Slot<Res> {
    const worker = new Worker(this.#url, { type: "module", name: `${this.#opts.name ?? "thread"}-${i}` });
    const slot: Slot<Res> = { worker, jobs: new Map() };
    worker.onmessage = (e: MessageEvent<Answer<Res>>) => {
      const job = slot.jobs.get(e.data.id);
      if (!job) return;
      slot.jobs.delete(e.data.id);
      if (e.data.error !== undefined) job.reject(new Error(e.data.error));
      else job.resolve(e.data.result);
      this.#pump();
    };
    worker.onerror = (e: ErrorEvent) => {
      // a crashed worker fails what it was running and is replaced, so the pool keeps its size
      e.preventDefault();
      worker.terminate();
      const k = this.#slots.indexOf(slot);
      if (k >= 0 && !this.#closed) this.#slots[k] = this.#spawn(k);
      for (const job of slot.jobs.values()) job.reject(new ThreadCrashError(e.message || "worker crashed"));
      slot.jobs.clear();
      this.#pump();
    };
    worker.postMessage({ init: this.#opts.init });
    return slot;
  }

  #pump(): void {
    for (let more = true; more && this.#queue.length > 0;) {
      more = false;
      // one job per free slot per round, so the work spreads over all workers
      for (const slot of this.#slots) {
        if (slot.jobs.size >= this.#perWorker || this.#queue.length === 0) continue;
        const job = this.#queue.shift()!;
        slot.jobs.set(job.id, job);
        slot.worker.postMessage({ id: job.id, req: job.req }, job.transfer);
        more = true;
      }
    }
  }

  /** Runs one request (its `transfer` buffers move to the worker). */
  run(req: Req, transfer: Transferable[] = []): Promise<Res> {
    if (this.#closed) return Promise.reject(new Error("ThreadPool is closed"));
    return new Promise((resolve, reject) => {
      this.#queue.push({ id: this.#nextId++, req, transfer, resolve, reject });
      this.#pump();
    });
  }

  /** Runs `reqs` with at most `prefetch` started but not yet consumed, yielding results in request order. */
  map(reqs: Iterable<Req>, prefetch: number = 2 * this.size * this.#perWorker): AsyncGenerator<Res> {
    return ordered(reqs, (r) => this.run(r), prefetch);
  }

  /** Stops the workers; pending requests are rejected. */
  close(): void {
    if (this.#closed) return;
    this.#closed = true;
    const closed = () => new Error("ThreadPool closed");
    for (const s of this.#slots) {
      s.worker.terminate();
      for (const job of s.jobs.values()) job.reject(closed());
    }
    for (const j of this.#queue) j.reject(closed());
    this.#slots = [], this.#queue = [];
  }

  /** Whether {@link close} was called. */
  get closed(): boolean {
    return this.#closed;
  }
}

/**
 * Runs `run` over `items` with at most `prefetch` (≥ 1) started but not yet consumed, yielding results in
 * item order. A rejection surfaces when its turn comes.
 */
export async function* ordered<T, R>(
  items: Iterable<T>,
  run: (item: T) => Promise<R>,
  prefetch: number,
): AsyncGenerator<R> {
  const it = items[Symbol.iterator](), window: Promise<R>[] = [];
  const fill = () => {
    while (window.length < Math.max(1, prefetch)) {
      const n = it.next();
      if (n.done) break;
      const p = run(n.value);
      p.catch(() => {}); // rejections surface when awaited in order
      window.push(p);
    }
  };
  fill();
  while (window.length > 0) {
    const r = await window.shift()!;
    fill();
    yield r;
  }
}

/**
 * The worker side: call once at the top of a worker module. `start` gets the pool's `init` and returns the
 * request handler; if it throws, every request is answered with its error.
 */
export function serveThread<Init, Req, Res>(
  start: (init: Init) => Promise<(req: Req) => Promise<ThreadReply<Res>>> | ((req: Req) => Promise<ThreadReply<Res>>),
): void {
  // Deno types `self` as the window scope; in a worker it is the worker scope
  const scope = self as unknown as {
    onmessage: ((e: MessageEvent<{ init: Init } | { id: number; req: Req }>) => void) | null;
    postMessage(msg: unknown, transfer?: Transferable[]): void;
  };
  let handler: Promise<(req: Req) => Promise<ThreadReply<Res>>> | null = null;
  scope.onmessage = async (e) => {
    if ("init" in e.data) {
      const init = e.data.init;
      handler = Promise.resolve().then(() => start(init));
      handler.catch(() => {}); // reported to each request
      return;
    }
    const { id, req } = e.data;
    try {
      if (!handler) throw new Error("thread: request before init");
      const { result, transfer = [] } = await (await handler)(req);
      scope.postMessage({ id, result }, transfer);
    } catch (err) {
      scope.postMessage({ id, error: err instanceof Error ? err.message : String(err) });
    }
  };
}
