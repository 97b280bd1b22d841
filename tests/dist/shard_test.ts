/** Sharding over ranks: disjoint, complete up to the dropped remainder, equal per rank, and the single-process batch. */
import assert from "node:assert/strict";
import { epochPermutation, shardEpoch, ShardError, shardStep, shardStepsPerEpoch } from "../../src/dist/shard.ts";
import { batchRequests } from "../../src/train/trainer.ts";
import { freshSeed } from "../util.ts";

Deno.test("shard: over an epoch every image is taken once across ranks, the remainder dropped, equal counts", () => {
  const seed = freshSeed();
  for (const [count, batch, ranks] of [[100, 8, 2], [103, 12, 4], [64, 64, 8], [37, 6, 3], [5, 5, 5]]) {
    const spe = shardStepsPerEpoch(count, batch);
    for (const epoch of [0, 1, 7]) {
      const per = Array.from({ length: ranks }, (_, rank) => shardEpoch({ seed, count, batch, ranks, rank }, epoch));
      for (const p of per) assert.equal(p.length, spe * batch / ranks, `seed ${seed}: equal counts`);
      const all = per.flat();
      assert.equal(new Set(all).size, all.length, `seed ${seed} ${count}/${batch}/${ranks}: an image twice`);
      // the images taken are the first spe·B of the epoch's permutation; the rest wait for another epoch
      const order = epochPermutation(seed, epoch, count);
      assert.deepEqual([...all].sort((a, b) => a - b), order.slice(0, spe * batch).sort((a, b) => a - b));
      if (count % batch === 0) assert.deepEqual([...all].sort((a, b) => a - b), order.map((_, i) => i));
    }
  }
});

Deno.test("shard: rank r's slice is micro-batch r of the single-process batch (indices and stream keys)", () => {
  const seed = freshSeed(), count = 53, batch = 8, ranks = 2;
  // three epochs and a step: the trainer's default steps per epoch must agree with the shard's for the
  // epochs (and so the permutations) to line up
  for (let step = 0; step < 3 * shardStepsPerEpoch(count, batch) + 1; step++) {
    const single = batchRequests(seed, count, batch, step);
    const ranked = Array.from({ length: ranks }, (_, rank) => shardStep({ seed, count, batch, ranks, rank }, step));
    assert.deepEqual(ranked.flatMap((r) => r.items), single, `seed ${seed} step ${step}`);
  }
  // a data set smaller than the batch wraps, as the single-process trainer does
  const small = Array.from({ length: 2 }, (_, rank) => shardStep({ seed, count: 3, batch: 4, ranks: 2, rank }, 0));
  assert.deepEqual(small.flatMap((r) => r.items), batchRequests(seed, 3, 4, 0));
});

Deno.test("shard: the permutation depends on (seed, epoch) only; a batch that does not split is refused", () => {
  assert.deepEqual(epochPermutation(5, 2, 50), epochPermutation(5, 2, 50));
  assert.notDeepEqual(epochPermutation(5, 2, 50), epochPermutation(5, 3, 50));
  assert.notDeepEqual(epochPermutation(5, 2, 50), epochPermutation(6, 2, 50));
  assert.throws(() => shardStep({ seed: 1, count: 10, batch: 6, ranks: 4, rank: 0 }, 0), ShardError);
  assert.throws(() => shardStep({ seed: 1, count: 10, batch: 8, ranks: 4, rank: 4 }, 0), ShardError);
  assert.throws(() => shardStep({ seed: 1, count: 0, batch: 8, ranks: 4, rank: 0 }, 0), ShardError);
});
