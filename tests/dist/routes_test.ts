/**
 * Shuffle-BN routes between ranks (src/train/exchange.ts), simulated without MPI for 2, 3 and 4 ranks: after
 * the forward exchange each rank holds the images of its slots in slot order, and sending the slots' outputs
 * back the reversed way gives every rank its own images' outputs in image order.
 */
import assert from "node:assert/strict";
import { shuffleRoutes } from "../../src/train/exchange.ts";
import { freshSeed, Rng } from "../util.ts";

Deno.test("routes: shuffle-BN over 2, 3 and 4 ranks delivers each slot's image and returns each image's output", () => {
  const seed = freshSeed(), rng = new Rng(seed);
  for (const R of [2, 3, 4]) {
    for (const b of [1, 3, 8]) {
      const B = R * b, at = `(R ${R}, b ${b}, seed ${seed})`;
      const perm = rng.shuffle(Array.from({ length: B }, (_, i) => i));
      const routes = Array.from({ length: R }, (_, r) => shuffleRoutes(perm, R, r));
      // forward: rank r's image i is the global image r·b + i; deliver per (source, destination) pair in order
      const slots: number[][] = Array.from({ length: R }, () => new Array(b).fill(-1));
      for (let src = 0; src < R; src++) {
        for (let dst = 0; dst < R; dst++) {
          const sent = routes[src].sendImages[dst].map((i) => src * b + i);
          const places = routes[dst].recvSlots[src];
          assert.equal(sent.length, places.length, `counts agree ${src} → ${dst} ${at}`);
          sent.forEach((img, t) => slots[dst][places[t]] = img);
        }
      }
      for (let r = 0; r < R; r++) {
        assert.deepEqual(slots[r], perm.slice(r * b, (r + 1) * b), `rank ${r}'s slots hold perm ${at}`);
      }
      // backward: the output of global slot j is "out j"; each rank must end with its images' outputs
      const inv = new Array(B);
      perm.forEach((img, j) => inv[img] = j);
      const mine: number[][] = Array.from({ length: R }, () => new Array(b).fill(-1));
      for (let src = 0; src < R; src++) {
        for (let dst = 0; dst < R; dst++) {
          const sent = routes[src].recvSlots[dst].map((s) => src * b + s); // global slots whose image dst owns
          const places = routes[dst].sendImages[src];
          sent.forEach((slot, t) => mine[dst][places[t]] = slot);
        }
      }
      for (let r = 0; r < R; r++) {
        assert.deepEqual(mine[r], Array.from({ length: b }, (_, i) => inv[r * b + i]), `rank ${r}'s outputs ${at}`);
      }
    }
  }
  assert.throws(() => shuffleRoutes([0, 1, 2], 2, 0), /does not split/);
});
