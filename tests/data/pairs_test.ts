import assert from "node:assert/strict";
import { Rng } from "../../src/util/rng.ts";
import { cropCoords, randomResizedCrop, sampleCropPair } from "../../src/data/crops.ts";
import { matchPairs, matchPairsBruteForce, type Pairs, rowPointers, transposeIndex } from "../../src/data/pairs.ts";

const SEED = Number(Deno.env.get("PLRC_TEST_SEED") ?? Math.floor(Math.random() * 2 ** 31));
const at = `(seed ${SEED})`;

/** Random A0/B0 coords as the pipeline makes them (overlapping pair, independent flips), or independent crops. */
function draw(rng: Rng): { q: number[]; k: number[] } {
  const W = 20 + rng.int(800), H = 20 + rng.int(800);
  const pair = rng.next() < 0.7
    ? sampleCropPair(W, H, rng)
    : { a: randomResizedCrop(W, H, rng), b: randomResizedCrop(W, H, rng) };
  return { q: cropCoords(pair.a, W, H, rng.next() < 0.5), k: cropCoords(pair.b, W, H, rng.next() < 0.5) };
}

/** An independent float64 statement of the rule (PixPro's), for checking distances. */
function distance(q: number[], k: number[], S: number, u: number, v: number): number {
  const bq = [(q[2] - q[0]) / S, (q[3] - q[1]) / S], bk = [(k[2] - k[0]) / S, (k[3] - k[1]) / S];
  const cq = [q[0] + ((u % S) + 0.5) * bq[0], q[1] + (Math.floor(u / S) + 0.5) * bq[1]];
  const ck = [k[0] + ((v % S) + 0.5) * bk[0], k[1] + (Math.floor(v / S) + 0.5) * bk[1]];
  const D = Math.max(Math.hypot(bq[0], bq[1]), Math.hypot(bk[0], bk[1]));
  return Math.hypot(cq[0] - ck[0], cq[1] - ck[1]) / D;
}

const same = (a: Pairs, b: Pairs) => {
  assert.deepEqual(a.a, b.a, at);
  assert.deepEqual(a.b, b.b, at);
};

Deno.test("matchPairs equals the O(S⁴) brute force on random draws (flips included)", () => {
  const rng = new Rng(SEED);
  let total = 0;
  for (let t = 0; t < 400; t++) {
    const { q, k } = draw(rng), S = [1, 2, 3, 4, 7, 8, 13, 16][rng.int(8)];
    const fast = matchPairs(q, k, S), slow = matchPairsBruteForce(q, k, S);
    same(fast, slow);
    total += fast.a.length;
  }
  assert.ok(total > 1000, `only ${total} pairs in all ${at}`);
});

Deno.test("matchPairs equals brute force at S = 56 (the paper's grid)", () => {
  const rng = new Rng(SEED ^ 0x5555);
  for (let t = 0; t < 4; t++) {
    const { q, k } = draw(rng);
    same(matchPairs(q, k, 56), matchPairsBruteForce(q, k, 56));
  }
});

Deno.test("matched positions are within the threshold, unmatched ones are not, sorted by (u, v)", () => {
  const rng = new Rng(SEED);
  for (let t = 0; t < 100; t++) {
    const { q, k } = draw(rng), S = 2 + rng.int(12);
    const p = matchPairs(q, k, S);
    const set = new Set<number>();
    for (let m = 0; m < p.a.length; m++) {
      set.add(p.a[m] * S * S + p.b[m]);
      if (m > 0) assert.ok(p.a[m - 1] < p.a[m] || (p.a[m - 1] === p.a[m] && p.b[m - 1] < p.b[m]), at);
    }
    for (let u = 0; u < S * S; u++) {
      for (let v = 0; v < S * S; v++) {
        const d = distance(q, k, S, u, v);
        if (Math.abs(d - 0.5) < 1e-9) continue; // on the boundary either answer is acceptable
        assert.equal(set.has(u * S * S + v), d < 0.5, `u ${u} v ${v} d ${d} ${at}`);
      }
    }
  }
});

Deno.test("hand cases: same crop matches each cell to itself; a flipped copy mirrors the columns", () => {
  const self = matchPairs([0, 0, 1, 1], [0, 0, 1, 1], 4);
  assert.deepEqual([...self.a], [...Array(16).keys()]);
  assert.deepEqual([...self.b], [...Array(16).keys()]);
  const mirror = matchPairs([0, 0, 1, 1], [1, 0, 0, 1], 4);
  assert.deepEqual([...mirror.a], [...Array(16).keys()]);
  assert.deepEqual([...mirror.b], [...Array(16).keys()].map((u) => Math.floor(u / 4) * 4 + 3 - (u % 4)));
  // Disjoint crops match nothing.
  assert.equal(matchPairs([0, 0, 0.4, 0.4], [0.6, 0.6, 1, 1], 8).a.length, 0);
});

Deno.test("CSR helpers: row pointers and the stable transpose", () => {
  assert.deepEqual([...rowPointers(Uint32Array.from([0, 0, 2, 3, 3, 3]), 5)], [0, 2, 2, 3, 6, 6]);
  const t = transposeIndex(Uint32Array.from([2, 0, 2, 1, 0]), 4);
  assert.deepEqual([...t.ptr], [0, 2, 3, 5, 5]);
  assert.deepEqual([...t.entries], [1, 4, 3, 0, 2]);
});
