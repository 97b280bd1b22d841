/**
 * Data-parallel training across processes: MPI bound through Deno's FFI (MPICH and Open MPI), the ranks'
 * collectives with a deadline ({@link MpiRanks}, what `TrainPlan.ranks` takes), the sharding of each batch
 * over the ranks, and the choice of each rank's GPU. `plrc pretrain --distributed mpi` is built from these;
 * docs/distributed.md says how to launch it.
 *
 * @example Which images each of 4 ranks takes at a step, without MPI
 * ```ts
 * import { detectLaunch, shardStep } from "./mod.ts";
 *
 * // null unless mpirun, srun or another MPI launcher started this process
 * console.log(detectLaunch());
 * for (let rank = 0; rank < 4; rank++) {
 *   const { epoch, items } = shardStep({ seed: 1, count: 100, batch: 16, ranks: 4, rank }, 7);
 *   console.log(rank, epoch, items.map((x) => x.index)); // 4 images each, 16 different ones in all
 * }
 * ```
 *
 * @module
 */
export { detectLaunch, Mpi, MPI_LIBRARY_ENV, MpiError, MpiRequest } from "./mpi.ts";
export type { Abi, MpiErrorKind, MpiInitOptions, MpiLaunch } from "./mpi.ts";
export { MpiRanks } from "./comm.ts";
export type { RanksOptions } from "./comm.ts";
export { epochPermutation, shardEpoch, ShardError, shardStep, shardStepsPerEpoch } from "./shard.ts";
export type { ShardSpec } from "./shard.ts";
export { driPrimeTag, listPciGpus, localRankFromEnv, planRankDevice } from "./device_select.ts";
export type { PciGpu, RankDevice } from "./device_select.ts";
