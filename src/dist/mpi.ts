/**
 * MPI through `Deno.dlopen`: the few collectives data-parallel training needs (all-reduce of float32 sums,
 * all-gather, broadcast, barrier, abort), on the MPI library that launched the process.
 *
 * Two ABIs are supported, told apart by `MPI_Get_library_version` (callable before `MPI_Init`):
 * - the MPICH ABI (MPICH, Intel MPI, MVAPICH: `libmpich.so.12` / `libmpi.so.12`): handles are C `int`s with
 *   the values of MPICH's `mpi.h`;
 * - Open MPI (`libmpi.so.40`): handles are addresses of the library's predefined globals
 *   (`ompi_mpi_comm_world`, `ompi_mpi_float`, …), read as the addresses of those symbols, and checked after
 *   `MPI_Init` (the world communicator's Fortran handle is 0 and a float is 4 bytes) before any collective.
 *
 * Deno 2.9 needs `--allow-ffi` (or `-A`) for this; `--unstable-ffi` is accepted and not required.
 *
 * @module
 */

/** Why an MPI operation failed. */
export type MpiErrorKind =
  | "no-ffi" // Deno.dlopen is missing or not permitted
  | "not-found" // no MPI library could be opened
  | "abi" // a library whose ABI this module does not know, or whose handles failed their check
  | "state" // called before init, after finalize, or init twice
  | "call" // an MPI function returned an error code
  | "timeout"; // a nonblocking collective did not complete in time (another rank hung or died)

/** A failed MPI operation; `kind` says which way, `mpiCode` is the MPI error code of a failed call. */
export class MpiError extends Error {
  /** `kind`: which way it failed; `mpiCode`: the MPI error code of a failed call. */
  constructor(readonly kind: MpiErrorKind, message: string, readonly mpiCode?: number) {
    super(message);
    this.name = "MpiError";
  }
}

/** How this process was launched, read from the launcher's environment without initialising MPI. */
export interface MpiLaunch {
  /** The launcher family whose variables were found. */
  launcher: "hydra" | "openmpi" | "pmix" | "slurm";
  /** This process's rank in the job. */
  rank: number;
  /** Ranks in the job. */
  size: number;
  /** The rank among the ranks on this machine (what picks a GPU), when the launcher says. */
  localRank: number | null;
  /** Ranks on this machine, when the launcher says. */
  localSize: number | null;
}

const int = (v: string | undefined): number | null => {
  if (v === undefined || !/^\d+$/.test(v.trim())) return null;
  return Number(v);
};

/**
 * The launch this process is part of, or null when no MPI launcher's variables are set: MPICH's Hydra
 * (`PMI_RANK`, `PMI_SIZE`, `MPI_LOCALRANKID`, `MPI_LOCALNRANKS`), Open MPI (`OMPI_COMM_WORLD_*`), a PMIx
 * launcher (`PMIX_RANK`), or Slurm's `srun` (`SLURM_PROCID`, `SLURM_NTASKS`, `SLURM_LOCALID`).
 */
export function detectLaunch(env: Record<string, string | undefined> = safeEnv()): MpiLaunch | null {
  const ompi = int(env.OMPI_COMM_WORLD_RANK);
  if (ompi !== null) {
    return {
      launcher: "openmpi",
      rank: ompi,
      size: int(env.OMPI_COMM_WORLD_SIZE) ?? 1,
      localRank: int(env.OMPI_COMM_WORLD_LOCAL_RANK),
      localSize: int(env.OMPI_COMM_WORLD_LOCAL_SIZE),
    };
  }
  const pmi = int(env.PMI_RANK);
  if (pmi !== null) {
    return {
      launcher: "hydra",
      rank: pmi,
      size: int(env.PMI_SIZE) ?? 1,
      localRank: int(env.MPI_LOCALRANKID),
      localSize: int(env.MPI_LOCALNRANKS),
    };
  }
  const slurm = int(env.SLURM_PROCID);
  if (slurm !== null && int(env.SLURM_NTASKS) !== null) {
    return {
      launcher: "slurm",
      rank: slurm,
      size: int(env.SLURM_NTASKS)!,
      localRank: int(env.SLURM_LOCALID),
      localSize: int(env.SLURM_NTASKS_PER_NODE) ?? null,
    };
  }
  const pmix = int(env.PMIX_RANK);
  if (pmix !== null) {
    return { launcher: "pmix", rank: pmix, size: int(env.PMIX_SIZE) ?? 1, localRank: null, localSize: null };
  }
  return null;
}

function safeEnv(): Record<string, string | undefined> {
  try {
    return Deno.env.toObject();
  } catch {
    return {};
  }
}

/** Names probed when no library is named: the MPICH ABI first, Open MPI's first under Open MPI's launcher. */
const MPICH_NAMES = ["libmpich.so.12", "libmpi.so.12", "libmpich.so"];
const OMPI_NAMES = ["libmpi.so.40", "libmpi.so"];

/** The environment variable naming the MPI shared library to open. */
export const MPI_LIBRARY_ENV = "PLRC_MPI_LIBRARY";

/** Options of {@link Mpi.init}. */
export interface MpiInitOptions {
  /** The shared library to open (a path or a soname); default `$PLRC_MPI_LIBRARY`, else probed. */
  library?: string;
  /**
   * The thread level to ask for (0 single … 3 multiple); default 0: every MPI call here is made from the
   * thread that initialised MPI, nonblocking operations included (progress comes from polling `MPI_Test`).
   */
  threadLevel?: 0 | 1 | 2 | 3;
}

/** The two MPI ABIs driven here: MPICH's (integer handles) and Open MPI's (pointer handles). */
export type Abi = "mpich" | "openmpi";
type Handle = number | Deno.PointerValue;

/** Handle values of the MPICH ABI, as MPICH 4's `mpi.h` defines them. */
const MPICH = {
  COMM_WORLD: 0x44000000,
  FLOAT: 0x4c00040a,
  INT: 0x4c000405,
  BYTE: 0x4c00010d,
  SUM: 0x58000003,
  MAX: 0x58000001,
  ERRORS_RETURN: 0x54000001,
  IN_PLACE: -1n,
  STATUS_IGNORE: 1n,
  REQUEST_NULL: 0x2c000000,
};

/** Open MPI's predefined objects: the handle is the symbol's address. */
const OMPI_GLOBALS = {
  COMM_WORLD: "ompi_mpi_comm_world",
  FLOAT: "ompi_mpi_float",
  INT: "ompi_mpi_int",
  BYTE: "ompi_mpi_byte",
  SUM: "ompi_mpi_op_sum",
  MAX: "ompi_mpi_op_max",
  ERRORS_RETURN: "ompi_mpi_errors_return",
} as const;

type HandleName = keyof typeof OMPI_GLOBALS;

function symbolsFor(h: "i32" | "pointer") {
  // MPI_Request* is a buffer of one handle in either ABI (an int for MPICH, a pointer for Open MPI)
  return {
    MPI_Get_library_version: { parameters: ["buffer", "buffer"], result: "i32" },
    MPI_Init: { parameters: ["pointer", "pointer"], result: "i32" },
    MPI_Init_thread: { parameters: ["pointer", "pointer", "i32", "buffer"], result: "i32" },
    MPI_Initialized: { parameters: ["buffer"], result: "i32" },
    MPI_Finalized: { parameters: ["buffer"], result: "i32" },
    MPI_Finalize: { parameters: [], result: "i32" },
    MPI_Comm_rank: { parameters: [h, "buffer"], result: "i32" },
    MPI_Comm_size: { parameters: [h, "buffer"], result: "i32" },
    MPI_Comm_set_errhandler: { parameters: [h, h], result: "i32" },
    // a macro in MPICH's mpi.h, a function in Open MPI's
    MPI_Comm_c2f: { parameters: [h], result: "i32", optional: true },
    MPI_Type_size: { parameters: [h, "buffer"], result: "i32" },
    MPI_Error_string: { parameters: ["i32", "buffer", "buffer"], result: "i32" },
    MPI_Allreduce: { parameters: ["pointer", "buffer", "i32", h, h, h], result: "i32" },
    MPI_Iallreduce: { parameters: ["pointer", "buffer", "i32", h, h, h, "buffer"], result: "i32" },
    MPI_Test: { parameters: ["buffer", "buffer", "pointer"], result: "i32" },
    MPI_Wait: { parameters: ["buffer", "pointer"], result: "i32" },
    MPI_Allgather: { parameters: ["buffer", "i32", h, "buffer", "i32", h, h], result: "i32" },
    MPI_Iallgather: { parameters: ["buffer", "i32", h, "buffer", "i32", h, h, "buffer"], result: "i32" },
    MPI_Ialltoallv: {
      parameters: ["buffer", "buffer", "buffer", h, "buffer", "buffer", "buffer", h, h, "buffer"],
      result: "i32",
    },
    MPI_Bcast: { parameters: ["buffer", "i32", h, "i32", h], result: "i32" },
    MPI_Barrier: { parameters: [h], result: "i32" },
    MPI_Abort: { parameters: [h, "i32"], result: "i32" },
    MPI_Wtime: { parameters: [], result: "f64" },
  } as const;
}

type Bound = Deno.DynamicLibrary<ReturnType<typeof symbolsFor>>;
// deno-lint-ignore no-explicit-any
type Fn = (...args: any[]) => any;

function dlopen(path: string, symbols: Record<string, unknown>): Deno.DynamicLibrary<Record<string, never>> {
  if (typeof Deno.dlopen !== "function") {
    throw new MpiError("no-ffi", "Deno.dlopen is not available in this runtime (MPI needs Deno's FFI)");
  }
  try {
    // deno-lint-ignore no-explicit-any
    return Deno.dlopen(path, symbols as any) as never;
  } catch (e) {
    if (e instanceof Deno.errors.NotCapable || (e instanceof Error && e.name === "NotCapable")) {
      throw new MpiError("no-ffi", `opening ${path} needs FFI permission: run deno with --allow-ffi (or -A)`);
    }
    throw new MpiError("abi", `cannot bind MPI from ${path}: ${e instanceof Error ? e.message : e}`);
  }
}

/** Opens the MPI library: the named one, or the first of the known names that opens. */
function openLibrary(named: string | undefined): { path: string; abi: Abi; version: string } {
  const launch = detectLaunch();
  const candidates = named
    ? [named]
    : launch?.launcher === "openmpi"
    ? [...OMPI_NAMES, ...MPICH_NAMES]
    : [...MPICH_NAMES, ...OMPI_NAMES];
  const failures: string[] = [];
  for (const path of candidates) {
    let lib;
    try {
      lib = dlopen(path, { MPI_Get_library_version: symbolsFor("i32").MPI_Get_library_version });
    } catch (e) {
      if (e instanceof MpiError && e.kind === "no-ffi") throw e;
      failures.push(
        (e instanceof Error ? e.message.split("\n")[0] : String(e)).replace(/^cannot bind MPI from [^:]+: /, ""),
      );
      continue;
    }
    const buf = new Uint8Array(8192), len = new Int32Array(1);
    const rc = (lib.symbols as unknown as Record<string, Fn>).MPI_Get_library_version(buf, len);
    lib.close();
    const version = rc === 0 ? new TextDecoder().decode(buf.subarray(0, len[0])).replace(/\0+$/, "").trim() : "";
    const first = version.split("\n")[0].replace(/\s+/g, " ");
    if (/Open MPI/i.test(version)) return { path, abi: "openmpi", version: first };
    if (/MPICH|Intel\(R\) MPI|MVAPICH/i.test(version)) return { path, abi: "mpich", version: first };
    throw new MpiError("abi", `${path} reports "${first}": not an MPICH-ABI library nor Open MPI`);
  }
  const install = "install MPICH (Debian/Ubuntu: apt-get install mpich libmpich-dev) or Open MPI " +
    "(apt-get install openmpi-bin libopenmpi-dev)";
  throw new MpiError(
    "not-found",
    named
      ? `cannot open the MPI library ${named} (from ${
        MPI_LIBRARY_ENV in safeEnv() ? `$${MPI_LIBRARY_ENV}` : "the options"
      }): ${failures.join("; ")}; name an installed MPI library, or ${install}`
      : `no MPI library found (tried ${candidates.join(", ")}); ${install}, or name the library in ` +
        `$${MPI_LIBRARY_ENV}`,
  );
}

/** Send buffers of nonblocking all-gathers, kept alive as long as their requests. */
const sendKeep = new WeakMap<MpiRequest, unknown>();

let channel: MessageChannel | null = null;
const waiting: (() => void)[] = [];

/** Resolves on the next event-loop task (a message through a channel that is closed again when idle). */
function nextTask(): Promise<void> {
  if (!channel) {
    channel = new MessageChannel();
    channel.port1.onmessage = () => {
      const w = waiting.splice(0);
      if (waiting.length === 0 && channel) {
        // closed while idle so that an open port does not keep the process alive
        channel.port1.close();
        channel = null;
      }
      for (const r of w) r();
    };
  }
  const p = new Promise<void>((r) => waiting.push(r));
  channel.port2.postMessage(null);
  return p;
}

/** A nonblocking collective in flight; its buffers must not be touched until it completes. */
export class MpiRequest {
  #done = false;
  /** Made by the nonblocking collectives of {@link Mpi}; `req` is the MPI request handle's buffer. */
  constructor(
    private readonly mpi: Mpi,
    private readonly req: Uint8Array,
    /** Kept referenced until completion: MPI writes into it. */
    readonly data: Float32Array | Int32Array | Uint8Array,
    /** What it is, for a timeout's message. */
    readonly what = "a collective",
  ) {}
  /** Whether it has completed; each call lets MPI progress it. */
  test(): boolean {
    if (!this.#done) this.#done = this.mpi._test(this.req);
    return this.#done;
  }
  /** Blocks until it completes. */
  wait(): void {
    if (!this.#done) this.mpi._wait(this.req), this.#done = true;
  }
  /**
   * Resolves when it completes, polling `MPI_Test` from the event loop so that other work (a GPU readback
   * being awaited) proceeds meanwhile. Each turn tests for up to `spinUs` microseconds, then yields one
   * event-loop turn (a message-channel task: nested `setTimeout(0)`s are clamped to 4 ms, which made a
   * 4 KiB all-reduce take ~9 ms). With `timeoutMs`, throws `MpiError("timeout")` once that long has passed
   * without completion: another rank has hung or died, and the caller should abort the job.
   */
  async done(spinUs = 50, timeoutMs = Infinity): Promise<void> {
    const start = performance.now();
    for (;;) {
      const t0 = performance.now();
      do if (this.test()) return; while ((performance.now() - t0) * 1e3 < spinUs);
      if (performance.now() - start > timeoutMs) {
        throw new MpiError(
          "timeout",
          `rank ${this.mpi.rank}: ${this.what} did not complete within ${(timeoutMs / 1000).toFixed(0)} s: ` +
            `another rank has hung or died`,
        );
      }
      await nextTask();
    }
  }
}

/** An initialised MPI world: rank, size and collectives over `MPI_COMM_WORLD`. */
export class Mpi {
  static #current: Mpi | null = null;
  #finalized = false;
  readonly #f: Record<string, Fn>;
  readonly #h: Record<HandleName, Handle>;
  readonly #inPlace: Deno.PointerValue;
  readonly #statusIgnore: Deno.PointerValue;

  private constructor(
    private readonly lib: Bound,
    /** The library opened (`path`), the ABI it was driven with (`abi`) and its version line. */
    readonly library: { path: string; abi: Abi; version: string },
    handles: Record<HandleName, Handle>,
    readonly rank: number,
    readonly size: number,
    /** The thread level MPI provides. */
    readonly threadLevel: number,
  ) {
    this.#f = lib.symbols as unknown as Record<string, Fn>;
    this.#h = handles;
    const abi = library.abi;
    this.#inPlace = Deno.UnsafePointer.create(abi === "mpich" ? BigInt.asUintN(64, MPICH.IN_PLACE) : 1n);
    this.#statusIgnore = abi === "mpich" ? Deno.UnsafePointer.create(MPICH.STATUS_IGNORE) : null;
  }

  /** The world initialised by this process, if any. */
  static get current(): Mpi | null {
    return Mpi.#current;
  }

  /**
   * Initialises MPI (once per process): opens the library, calls `MPI_Init_thread`, and makes errors on the
   * world communicator return codes (thrown here as {@link MpiError}) instead of aborting silently.
   */
  static init(options: MpiInitOptions = {}): Mpi {
    if (Mpi.#current) throw new MpiError("state", "MPI is already initialised in this process");
    const named = options.library ?? (safeEnv()[MPI_LIBRARY_ENV] || undefined);
    const info = openLibrary(named);
    const lib = dlopen(info.path, symbolsFor(info.abi === "mpich" ? "i32" : "pointer")) as unknown as Bound;
    const f = lib.symbols as unknown as Record<string, Fn>;
    let handles: Record<HandleName, Handle>;
    if (info.abi === "mpich") {
      handles = {
        COMM_WORLD: MPICH.COMM_WORLD,
        FLOAT: MPICH.FLOAT,
        INT: MPICH.INT,
        BYTE: MPICH.BYTE,
        SUM: MPICH.SUM,
        MAX: MPICH.MAX,
        ERRORS_RETURN: MPICH.ERRORS_RETURN,
      };
    } else {
      const statics: Record<string, { type: "pointer" }> = {};
      for (const sym of Object.values(OMPI_GLOBALS)) statics[sym] = { type: "pointer" };
      const g = dlopen(info.path, statics).symbols as unknown as Record<string, Deno.PointerValue>;
      handles = {} as Record<HandleName, Handle>;
      for (const [k, sym] of Object.entries(OMPI_GLOBALS)) {
        if (!g[sym]) throw new MpiError("abi", `${info.path} has no symbol ${sym}`);
        handles[k as HandleName] = g[sym];
      }
    }
    const provided = new Int32Array(1);
    const rc = f.MPI_Init_thread(null, null, options.threadLevel ?? 0, provided);
    if (rc !== 0) throw new MpiError("call", `MPI_Init_thread failed with code ${rc} (${info.version})`, rc);
    const check = (name: string, code: number) => {
      if (code !== 0) throw new MpiError("call", `${name} failed with code ${code}`, code);
    };
    check("MPI_Comm_set_errhandler", f.MPI_Comm_set_errhandler(handles.COMM_WORLD, handles.ERRORS_RETURN));
    if (info.abi === "openmpi") {
      // the addresses read as handles must be the objects MPI itself uses
      const tsize = new Int32Array(1);
      check("MPI_Type_size", f.MPI_Type_size(handles.FLOAT, tsize));
      const fworld = f.MPI_Comm_c2f(handles.COMM_WORLD);
      if (tsize[0] !== 4 || fworld !== 0) {
        throw new MpiError(
          "abi",
          `Open MPI handles failed their check (MPI_FLOAT size ${tsize[0]}, world Fortran handle ${fworld})`,
        );
      }
    }
    const r = new Int32Array(1), s = new Int32Array(1);
    check("MPI_Comm_rank", f.MPI_Comm_rank(handles.COMM_WORLD, r));
    check("MPI_Comm_size", f.MPI_Comm_size(handles.COMM_WORLD, s));
    const mpi = new Mpi(lib, info, handles, r[0], s[0], provided[0]);
    Mpi.#current = mpi;
    return mpi;
  }

  #live(): void {
    if (this.#finalized) throw new MpiError("state", "MPI has been finalized");
  }

  #check(name: string, rc: number): void {
    if (rc === 0) return;
    const buf = new Uint8Array(512), len = new Int32Array(1);
    const text = this.#f.MPI_Error_string(rc, buf, len) === 0
      ? new TextDecoder().decode(buf.subarray(0, len[0])).trim()
      : "";
    throw new MpiError("call", `${name} failed on rank ${this.rank}: ${text || `code ${rc}`}`, rc);
  }

  /** Sums `data` element-wise over all ranks, in place: every rank ends with the same sums. */
  allreduceSum(data: Float32Array): Float32Array {
    this.#live();
    this.#check(
      "MPI_Allreduce",
      this.#f.MPI_Allreduce(this.#inPlace, data, data.length, this.#h.FLOAT, this.#h.SUM, this.#h.COMM_WORLD),
    );
    return data;
  }

  /** The element-wise maximum of `data` over all ranks, in place. */
  allreduceMax(data: Float32Array): Float32Array {
    this.#live();
    this.#check(
      "MPI_Allreduce",
      this.#f.MPI_Allreduce(this.#inPlace, data, data.length, this.#h.FLOAT, this.#h.MAX, this.#h.COMM_WORLD),
    );
    return data;
  }

  /**
   * Starts summing `data` over all ranks in place (`MPI_Iallreduce`); completes through the returned request.
   * Until then the array must not be read or written.
   */
  iallreduceSum(data: Float32Array): MpiRequest {
    this.#live();
    const req = new Uint8Array(8);
    this.#check(
      "MPI_Iallreduce",
      this.#f.MPI_Iallreduce(this.#inPlace, data, data.length, this.#h.FLOAT, this.#h.SUM, this.#h.COMM_WORLD, req),
    );
    return new MpiRequest(this, req, data, `an all-reduce of ${data.length} floats`);
  }

  /**
   * Starts {@link allgather} without waiting (`MPI_Iallgather`): the request's `data` is the concatenation,
   * valid once it completes.
   */
  iallgather<T extends Float32Array | Int32Array | Uint8Array>(data: T): MpiRequest & { data: T } {
    this.#live();
    const C = data.constructor as { new (n: number): T };
    const out = new C(data.length * this.size);
    const type = data instanceof Float32Array ? this.#h.FLOAT : data instanceof Int32Array ? this.#h.INT : this.#h.BYTE;
    const req = new Uint8Array(8);
    this.#check(
      "MPI_Iallgather",
      this.#f.MPI_Iallgather(data, data.length, type, out, data.length, type, this.#h.COMM_WORLD, req),
    );
    // the send buffer must stay alive too: kept by the closure below
    const r = new MpiRequest(this, req, out, `an all-gather of ${data.length} values`) as MpiRequest & { data: T };
    sendKeep.set(r, data);
    return r;
  }

  /**
   * Starts a personalised exchange (`MPI_Ialltoallv` of floats): `send[sendDispls[q] …]` (`sendCounts[q]`
   * floats) goes to rank q, and what rank p sends here lands at `recv[recvDispls[p] …]` (`recvCounts[p]`).
   * Every array must stay untouched until the request completes.
   */
  ialltoallv(
    send: Float32Array,
    sendCounts: Int32Array,
    sendDispls: Int32Array,
    recv: Float32Array,
    recvCounts: Int32Array,
    recvDispls: Int32Array,
  ): MpiRequest {
    this.#live();
    for (const a of [sendCounts, sendDispls, recvCounts, recvDispls]) {
      if (a.length !== this.size) throw new MpiError("state", `alltoallv: ${a.length} counts for ${this.size} ranks`);
    }
    const req = new Uint8Array(8);
    const f = this.#h.FLOAT;
    this.#check(
      "MPI_Ialltoallv",
      this.#f.MPI_Ialltoallv(send, sendCounts, sendDispls, f, recv, recvCounts, recvDispls, f, this.#h.COMM_WORLD, req),
    );
    const r = new MpiRequest(this, req, recv, `an all-to-all of ${send.length} floats`);
    sendKeep.set(r, [send, sendCounts, sendDispls, recvCounts, recvDispls]);
    return r;
  }

  /** @internal `MPI_Test` of a request buffer. */
  _test(req: Uint8Array): boolean {
    this.#live();
    const flag = new Int32Array(1);
    this.#check("MPI_Test", this.#f.MPI_Test(req, flag, this.#statusIgnore));
    return flag[0] !== 0;
  }

  /** @internal `MPI_Wait` of a request buffer. */
  _wait(req: Uint8Array): void {
    this.#live();
    this.#check("MPI_Wait", this.#f.MPI_Wait(req, this.#statusIgnore));
  }

  /**
   * Concatenates every rank's `data` in rank order: rank r's array is at `r · data.length`. All ranks must
   * give the same length. Float32, Int32 and byte arrays are sent as their own type.
   */
  allgather<T extends Float32Array | Int32Array | Uint8Array>(data: T): T {
    this.#live();
    const C = data.constructor as { new (n: number): T };
    const out = new C(data.length * this.size);
    const type = data instanceof Float32Array ? this.#h.FLOAT : data instanceof Int32Array ? this.#h.INT : this.#h.BYTE;
    this.#check(
      "MPI_Allgather",
      this.#f.MPI_Allgather(data, data.length, type, out, data.length, type, this.#h.COMM_WORLD),
    );
    return out;
  }

  /** Sends `data` from `root` to every rank, in place (every rank passes an array of the same length). */
  bcast<T extends Float32Array | Int32Array | Uint8Array>(data: T, root = 0): T {
    this.#live();
    if (!(root >= 0 && root < this.size)) throw new MpiError("state", `bcast root ${root} is not a rank`);
    const type = data instanceof Float32Array ? this.#h.FLOAT : data instanceof Int32Array ? this.#h.INT : this.#h.BYTE;
    this.#check("MPI_Bcast", this.#f.MPI_Bcast(data, data.length, type, root, this.#h.COMM_WORLD));
    return data;
  }

  /** Waits until every rank has called it. */
  barrier(): void {
    this.#live();
    this.#check("MPI_Barrier", this.#f.MPI_Barrier(this.#h.COMM_WORLD));
  }

  /** MPI's wall clock in seconds. */
  wtime(): number {
    return this.#f.MPI_Wtime();
  }

  /**
   * Ends every rank of the job with exit status `code` (`MPI_Abort`): what a rank does when it cannot go on,
   * so that the others do not wait for it forever. Does not return.
   */
  abort(code = 1): never {
    // MPI_Abort tears down the launcher's forwarding of this rank's output: give what the rank printed last
    // (why it aborts) a moment to get through first (measured: without it the line was lost in ~1 of 10 runs)
    Atomics.wait(new Int32Array(new SharedArrayBuffer(4)), 0, 0, 300);
    this.#f.MPI_Abort(this.#h.COMM_WORLD, code);
    Deno.exit(code || 1);
  }

  /** Ends MPI in this process (every rank must call it); further calls throw. */
  finalize(): void {
    if (this.#finalized) return;
    this.#finalized = true;
    const rc = this.#f.MPI_Finalize();
    if (Mpi.#current === this) Mpi.#current = null;
    if (rc !== 0) throw new MpiError("call", `MPI_Finalize failed with code ${rc}`, rc);
  }
}
