/**
 * Joining a data-parallel MPI job from the CLI: each rank's GPU is chosen before the first adapter request,
 * then MPI is initialised. `cli.ts` finalises MPI when the command returns, or aborts the job when it fails.
 *
 * @module
 */
import { detectLaunch, Mpi } from "../dist/mpi.ts";
import { MpiRanks } from "../dist/comm.ts";
import { listPciGpus, localRankFromEnv, planRankDevice, type RankDevice } from "../dist/device_select.ts";

/** This process's place in a data-parallel job, and how its GPU was chosen. */
export interface Joined {
  /** The ranks and their collectives. */
  ranks: MpiRanks;
  /** How this rank's GPU was chosen (and whether another local rank shares it). */
  device: RankDevice;
}

/**
 * Joins the MPI job that launched this process, or returns null when no launcher started several ranks
 * (one process then runs as without MPI). `timeoutS`: the longest wait for the other ranks in one exchange.
 */
export function joinRanks(timeoutS: number): Joined | null {
  const launch = detectLaunch();
  if (!launch || launch.size <= 1) return null;
  const env = Deno.env.toObject();
  const local = localRankFromEnv(env) ?? { rank: launch.localRank ?? 0, size: launch.localSize ?? 1 };
  const device = planRankDevice(local.rank, local.size, listPciGpus(), env);
  for (const [k, v] of Object.entries(device.env)) Deno.env.set(k, v);
  const mpi = Mpi.current ?? Mpi.init();
  return { ranks: new MpiRanks(mpi, { timeoutMs: timeoutS * 1000 }), device };
}
