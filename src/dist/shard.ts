/**
 * Data sharding for data-parallel training: which images each rank takes at each step.
 *
 * The global batch of a step is the single-process trainer's batch: the same epoch permutation derived from
 * (seed, epoch), the same `stepsPerEpoch` (incomplete last batches dropped, as drop_last). Rank `r` of `R`
 * takes the `r`-th contiguous slice of `B / R` images of that batch. So:
 * - within an epoch every image of the epoch's first `stepsPerEpoch · B` positions is taken by exactly one
 *   rank at exactly one step; the `count − stepsPerEpoch · B` images left at the end of the permutation are
 *   dropped for that epoch (different ones each epoch), as the single-process trainer drops them;
 * - every rank takes the same number of images (`stepsPerEpoch · B / R`);
 * - rank `r`'s slice at a step is micro-batch `r` of the single-process step run as `R` micro-batches, which
 *   is what makes an `R`-rank run comparable image for image with one process accumulating `R` micro-batches;
 * - the permutation needs no communication: every rank computes it from (seed, epoch).
 *
 * When the data set is smaller than one global batch, the one step of an epoch wraps around the permutation
 * (an image can appear twice), again as the single-process trainer does.
 *
 * @module
 */
import { Rng } from "../util/rng.ts";

/** A sharding that cannot be made (the batch does not split over the ranks). */
export class ShardError extends Error {
  /** `message` says what does not split. */
  constructor(message: string) {
    super(message);
    this.name = "ShardError";
  }
}

/** Steps per epoch for `count` images at global batch `batch`: incomplete batches dropped, at least 1. */
export function shardStepsPerEpoch(count: number, batch: number): number {
  return Math.max(1, Math.floor(count / batch));
}

/** The epoch permutation of `count` images: identical on every rank for the same (seed, epoch). */
export function epochPermutation(seed: number, epoch: number, count: number): number[] {
  return Rng.derive(seed ^ 0x5eed, epoch).shuffle(Array.from({ length: count }, (_, i) => i));
}

/** Where one rank stands in the sharding. */
export interface ShardSpec {
  /** The run's seed (the epoch permutations derive from it). */
  seed: number;
  /** Images in the data set. */
  count: number;
  /** The global batch (all ranks together). */
  batch: number;
  /** Ranks sharing the batch. */
  ranks: number;
  /** This rank, 0 … ranks − 1. */
  rank: number;
  /** Steps per epoch; default {@link shardStepsPerEpoch}. */
  stepsPerEpoch?: number;
}

function validate(s: ShardSpec): { perRank: number; spe: number } {
  const ok = (n: number) => Number.isInteger(n) && n >= 1;
  if (!ok(s.count)) throw new ShardError(`the data set must have at least one image, got ${s.count}`);
  if (!ok(s.ranks) || !ok(s.batch)) throw new ShardError(`batch ${s.batch} and ranks ${s.ranks} must be ≥ 1`);
  if (!(Number.isInteger(s.rank) && s.rank >= 0 && s.rank < s.ranks)) {
    throw new ShardError(`rank ${s.rank} is not in 0..${s.ranks - 1}`);
  }
  if (s.batch % s.ranks !== 0) {
    throw new ShardError(
      `the global batch ${s.batch} does not split over ${s.ranks} ranks: choose a batch that is a multiple of ${s.ranks}`,
    );
  }
  const spe = s.stepsPerEpoch ?? shardStepsPerEpoch(s.count, s.batch);
  if (!ok(spe)) throw new ShardError(`steps per epoch must be ≥ 1, got ${spe}`);
  return { perRank: s.batch / s.ranks, spe };
}

/**
 * The images of `rank` at `step`: their indices and stream keys (`epoch · count + index`, the key the
 * single-process trainer gives the same image at the same step, so the crops are the same whoever makes them).
 */
export function shardStep(s: ShardSpec, step: number): { epoch: number; items: { index: number; key: number }[] } {
  const { perRank, spe } = validate(s);
  const epoch = Math.floor(step / spe);
  const order = epochPermutation(s.seed, epoch, s.count);
  const start = (step % spe) * s.batch + s.rank * perRank;
  const items = Array.from({ length: perRank }, (_, i) => {
    const index = order[(start + i) % s.count];
    return { index, key: epoch * s.count + index };
  });
  return { epoch, items };
}

/** Every image index `rank` takes during `epoch`, in step order. */
export function shardEpoch(s: ShardSpec, epoch: number): number[] {
  const { spe } = validate(s);
  const out: number[] = [];
  for (let k = 0; k < spe; k++) out.push(...shardStep(s, epoch * spe + k).items.map((x) => x.index));
  return out;
}
