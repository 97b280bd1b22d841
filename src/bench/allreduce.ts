/**
 * `plrc bench allreduce`: float32 sum all-reduce over every rank of the MPI job, a message-size sweep.
 *
 * Each size is timed over `reps` back-to-back all-reduces after a barrier and one warm-up; the time is the
 * slowest rank's mean. Bandwidths as nccl-tests report them: algorithm bandwidth `bytes / t`, and bus
 * bandwidth `2 (R − 1) / R · bytes / t` (what a ring all-reduce moves over each link, comparable across rank
 * counts). Two ways are timed: the blocking `MPI_Allreduce`, and `MPI_Iallreduce` completed by polling
 * `MPI_Test` from the event loop (how the trainer overlaps it with awaited GPU work). The sums are checked.
 *
 * @module
 */
import type { Mpi } from "../dist/mpi.ts";

/** One size, one way. */
export interface AllreduceMeasurement {
  bench: "allreduce";
  mode: "blocking" | "nonblocking";
  bytes: number;
  floats: number;
  ranks: number;
  reps: number;
  /** Mean time of one all-reduce on the slowest rank. */
  ms: number;
  algGBps: number;
  busGBps: number;
  library: string;
}

/** The default sweep: 4 KiB to 128 MiB by factors of 4, and 128 MiB. */
export const ALLREDUCE_SIZES = [4, 16, 64, 256, 1024, 4096, 16384, 65536, 131072].map((k) => k * 1024);

/** Repetitions for a message of `bytes`: about 256 MiB moved per size, 3 to 200 (the same on every rank). */
export function allreduceReps(bytes: number): number {
  return Math.min(200, Math.max(3, Math.floor((256 << 20) / bytes)));
}

/** Runs the sweep on every rank (all ranks must call it with the same arguments); returns the rows. */
export async function benchAllreduce(
  mpi: Mpi,
  opts: { sizes?: number[]; reps?: number; modes?: ("blocking" | "nonblocking")[] } = {},
  onRow?: (r: AllreduceMeasurement) => void,
): Promise<AllreduceMeasurement[]> {
  const sizes = opts.sizes ?? ALLREDUCE_SIZES;
  const modes = opts.modes ?? ["blocking", "nonblocking"];
  const maxFloats = Math.max(...sizes.map((b) => Math.ceil(b / 4)));
  const buf = new Float32Array(maxFloats);
  const rows: AllreduceMeasurement[] = [];
  const R = mpi.size;
  for (const bytes of sizes) {
    const n = Math.max(1, Math.round(bytes / 4));
    const x = buf.subarray(0, n);
    const reps = opts.reps ?? allreduceReps(bytes);
    for (const mode of modes) {
      const once = async () => {
        if (mode === "blocking") mpi.allreduceSum(x);
        else await mpi.iallreduceSum(x).done();
      };
      // every element becomes rank + 1 and, summed once, R(R+1)/2: a check that the timed calls reduce
      x.fill(mpi.rank + 1);
      await once();
      const want = R * (R + 1) / 2;
      if (x[0] !== want || x[n - 1] !== want) {
        throw new Error(`all-reduce of ${bytes} bytes gave ${x[0]}, ${x[n - 1]} instead of ${want}`);
      }
      mpi.barrier();
      const t0 = mpi.wtime();
      for (let i = 0; i < reps; i++) await once();
      const t = Float32Array.of((mpi.wtime() - t0) / reps);
      mpi.allreduceMax(t);
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
      };
      rows.push(row);
      onRow?.(row);
    }
  }
  return rows;
}

/** A size in bytes as "4 KiB", "128 MiB". */
export function formatBytes(b: number): string {
  return b >= 1 << 20 ? `${+(b / (1 << 20)).toFixed(1)} MiB` : `${+(b / 1024).toFixed(1)} KiB`;
}
