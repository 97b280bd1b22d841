/** Feature levels: parsing '+'-joined lists and concatenating upsampled maps per cell. */
import assert from "node:assert/strict";
import { concatLevels, parseLevels, upsampleBilinear } from "../../src/eval/features.ts";
import { freshSeed, Rng } from "../util.ts";

Deno.test("parseLevels: one level or a '+'-joined list, in network order; anything else names the choices", () => {
  assert.deepEqual(parseLevels("c4"), ["c4"]);
  assert.deepEqual(parseLevels("c4+c3"), ["c3", "c4"]);
  assert.deepEqual(parseLevels("c3+c4+c5"), ["c3", "c4", "c5"]);
  for (const bad of ["c9", "c3+c3", "", "c3+", "C4", "c3,c4"]) {
    assert.throws(() => parseLevels(bad), /c3, c4 or c5.*c3\+c4/, bad);
  }
});

Deno.test("concatLevels: each level upsampled to T×T, concatenated per cell in order", () => {
  const seed = freshSeed(), rng = new Rng(seed);
  const a = { level: "c3" as const, h: 4, w: 4, C: 3 }, b = { level: "c4" as const, h: 2, w: 2, C: 2 };
  const fa = Float32Array.from({ length: 4 * 4 * 3 }, () => rng.normal());
  const fb = Float32Array.from({ length: 2 * 2 * 2 }, () => rng.normal());
  const T = 8, got = concatLevels([fa, fb], [a, b], T);
  const ua = upsampleBilinear(fa, 4, 4, 3, T), ub = upsampleBilinear(fb, 2, 2, 2, T);
  assert.equal(got.length, T * T * 5);
  for (let p = 0; p < T * T; p++) {
    assert.deepEqual([...got.subarray(p * 5, p * 5 + 5)], [
      ...ua.subarray(p * 3, p * 3 + 3),
      ...ub.subarray(p * 2, p * 2 + 2),
    ]);
  }
  // a level already at T×T passes through unchanged
  assert.deepEqual([...concatLevels([fa], [a], 4)], [...fa]);
});
