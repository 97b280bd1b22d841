/**
 * `plrc bench allreduce`: float32 sum all-reduce over every rank of the MPI job, a message-size sweep.
 *
 * Each size is timed over `reps` back-to-back all-reduces after a barrier and one warm-up; the time is the
 * slowest rank's mean. Bandwidths as nccl-tests report them: algorithm bandwidth `bytes / t`, and bus
 * bandwidth `2 (R − 1) / R · bytes / t` (what a ring all-reduce moves over each link, comparable across rank
 * counts). Two ways are timed: the blocking `MPI_Allreduce`, and `MPI_Iallreduce` completed by polling
 * `MPI_Test` from the event loop (how the trainer overlaps it with awaited GPU work). The sums are checked.
 * A third way, `through-gpu` (with a device), is a data-parallel step's exchange of its gradient
 * (src/train/exchange.ts): the tensor read back from the GPU in 16 MiB chunks, each all-reduced as soon as
 * it arrives and uploaded again as soon as it is reduced; the time until the last readback and the rest are
 * reported apart.
 *
 * @module
 */
import type { Mpi } from "../dist/mpi.ts";
import { MpiRanks } from "../dist/comm.ts";
import type { Gpu } from "../gpu/device.ts";
import { Readback } from "../gpu/readback.ts";
import { SumExchange } from "../train/exchange.ts";

/** One size, one way. */
export interface AllreduceMeasurement {
  bench: "allreduce";
  mode: AllreduceMode;
  bytes: number;
  floats: number;
  ranks: number;
  reps: number;
  /** Mean time of one all-reduce on the slowest rank. */
  ms: number;
  algGBps: number;
  busGBps: number;
  library: string;
  /**
   * `through-gpu`: the parts of `ms` (slowest rank's means): until the last chunk was read back (the first
   * chunks' all-reduces already running), then until the last upload was queued; and the chunk count.
   */
  parts?: { readbackMs: number; reduceAndUploadMs: number; chunks: number };
}

/** How the all-reduce is driven. */
export type AllreduceMode = "blocking" | "nonblocking" | "through-gpu";

/** The default sweep: 4 KiB to 128 MiB by factors of 4, and 128 MiB. */
export const ALLREDUCE_SIZES = [4, 16, 64, 256, 1024, 4096, 16384, 65536, 131072].map((k) => k * 1024);

/** Repetitions for a message of `bytes`: about 256 MiB moved per size, 3 to 200 (the same on every rank). */
export function allreduceReps(bytes: number): number {
  return Math.min(200, Math.max(3, Math.floor((256 << 20) / bytes)));
}

/** Runs the sweep on every rank (all ranks must call it with the same arguments); returns the rows. */
export async function benchAllreduce(
  mpi: Mpi,
  opts: { sizes?: number[]; reps?: number; modes?: AllreduceMode[]; gpu?: Gpu } = {},
  onRow?: (r: AllreduceMeasurement) => void,
): Promise<AllreduceMeasurement[]> {
  const sizes = opts.sizes ?? ALLREDUCE_SIZES;
  const modes = opts.modes ?? ["blocking", "nonblocking"];
  if (modes.includes("through-gpu") && !opts.gpu) throw new Error("bench allreduce: through-gpu needs a device");
  const ranks = new MpiRanks(mpi);
  const maxFloats = Math.max(...sizes.map((b) => Math.ceil(b / 4)));
  const buf = new Float32Array(maxFloats);
  const rows: AllreduceMeasurement[] = [];
  const R = mpi.size;
  for (const bytes of sizes) {
    const n = Math.max(1, Math.round(bytes / 4));
    const x = buf.subarray(0, n);
    const reps = opts.reps ?? allreduceReps(bytes);
    for (const mode of modes) {
      // through-gpu: a device buffer of the size, read back, all-reduced and uploaded as a step does
      const dev = mode === "through-gpu" ? gpuRoundTrip(opts.gpu!, ranks, n) : null;
      const parts = new Float32Array(2);
      const once = async () => {
        if (mode === "blocking") mpi.allreduceSum(x);
        else if (mode === "nonblocking") await mpi.iallreduceSum(x).done();
        else {
          const t = await dev!.exchange.run();
          parts[0] += t.readbackMs, parts[1] += t.reduceAndUploadMs;
        }
      };
      // every element becomes rank + 1 and, summed once, R(R+1)/2: a check that the timed calls reduce
      const want = R * (R + 1) / 2;
      if (dev) {
        opts.gpu!.device.queue.writeBuffer(dev.buffer, 0, new Float32Array(n).fill(mpi.rank + 1));
        await once();
        const [h] = await dev.reader.read();
        if (h[0] !== want || h[n - 1] !== want) {
          throw new Error(`all-reduce through the GPU of ${bytes} bytes gave ${h[0]}, ${h[n - 1]} instead of ${want}`);
        }
      } else {
        x.fill(mpi.rank + 1);
        await once();
        if (x[0] !== want || x[n - 1] !== want) {
          throw new Error(`all-reduce of ${bytes} bytes gave ${x[0]}, ${x[n - 1]} instead of ${want}`);
        }
      }
      parts.fill(0);
      mpi.barrier();
      const t0 = mpi.wtime();
      for (let i = 0; i < reps; i++) await once();
      const t = Float32Array.of((mpi.wtime() - t0) / reps, ...parts.map((p) => p / reps));
      mpi.allreduceMax(t);
      dev?.reader.destroy(), dev?.exchange.destroy(), dev?.buffer.destroy();
      const s = t[0];
      const row: AllreduceMeasurement = {
        bench: "allreduce",
        mode,
        bytes: n * 4,
        floats: n,
        ranks: R,
        reps,
        ms: s * 1e3,
        algGBps: n * 4 / s / 1e9,
        busGBps: 2 * (R - 1) / R * n * 4 / s / 1e9,
        library: mpi.library.version,
        ...(dev ? { parts: { readbackMs: t[1], reduceAndUploadMs: t[2], chunks: dev.exchange.chunks } } : {}),
      };
      rows.push(row);
      onRow?.(row);
    }
  }
  return rows;
}

/** A device buffer of `n` floats, its exchange as a step's gradient, and a reader to check it. */
function gpuRoundTrip(
  gpu: Gpu,
  ranks: MpiRanks,
  n: number,
): { buffer: GPUBuffer; exchange: SumExchange; reader: Readback } {
  const buffer = gpu.device.createBuffer({
    label: "bench allreduce: gradient",
    size: n * 4,
    usage: GPUBufferUsage.COPY_SRC | GPUBufferUsage.COPY_DST,
  });
  const range = { buffer, offset: 0, bytes: n * 4 };
  return {
    buffer,
    exchange: new SumExchange(gpu, ranks, [range]),
    reader: new Readback(gpu, [range], "bench allreduce"),
  };
}

/** A size in bytes as "4 KiB", "128 MiB". */
export function formatBytes(b: number): string {
  return b >= 1 << 20 ? `${+(b / (1 << 20)).toFixed(1)} MiB` : `${+(b / 1024).toFixed(1)} KiB`;
}
