/**
 * The momentum encoder's two views write their backbone activations into the online backbone's buffers (the
 * key passes run before the online pass): the step must leave exactly what it leaves with separate buffers
 * (gradients, losses, parameters, momentum encoder, queue, centre), with and without accumulation and
 * shuffle-BN, in less memory.
 */
import assert from "node:assert/strict";
import { freshSeed, GPU_TEST } from "../util.ts";
import { eightImages, oneStep } from "./one_step.ts";

Deno.test({
  name:
    "memory: the key views in the online backbone's buffers leave exactly what separate buffers leave, in less memory",
  ...GPU_TEST,
  async fn() {
    const seed = freshSeed();
    const data = await eightImages(seed);
    for (const [accumulate, shuffleBn] of [[1, false], [2, true]] as const) {
      const at = `(accumulate ${accumulate}, shuffle-BN ${shuffleBn}, seed ${seed})`;
      const c = { batch: 8, accumulate, shuffleBn, seed };
      const shared = await oneStep({ ...c, shareKeyActivations: true }, data);
      const separate = await oneStep({ ...c, shareKeyActivations: false }, data);
      for (const k of ["grads", "params", "momentum", "losses", "queue", "center"] as const) {
        assert.deepEqual(Array.from(shared[k]), Array.from(separate[k]), `${k} ${at}`);
      }
      assert.ok(shared.grads.some((g) => g !== 0) && shared.grads.every(Number.isFinite), `real gradients ${at}`);
      const m = (r: typeof shared) => r.bufferBytes!["momentum encoder"];
      assert.ok(m(shared) < 0.6 * m(separate), `momentum encoder ${m(shared)} B shared, ${m(separate)} B not ${at}`);
    }
  },
});
