/**
 * Gradient accumulation: a step of 8 images as 2 micro-batches of 4 must equal two data-parallel "GPUs" of
 * 4 images each, i.e. two separate 4-image steps from the same state: the mean of their gradients, loss
 * values, centre moves and updated parameters, and both sets of keys in the queue.
 */
import assert from "node:assert/strict";
import { splitBatch } from "../../src/data/batch.ts";
import { assertClose, GPU_TEST, maxRelErr } from "../util.ts";
import { type After, eightImages as eight, oneStep as step } from "./one_step.ts";

const SEED = Number(Deno.env.get("PLRC_TEST_SEED") ?? Math.floor(Math.random() * 2 ** 31));

const oneStep = (
  batch: number,
  accumulate: number,
  data: Awaited<ReturnType<typeof eight>>,
  shuffleBn = false,
  method = "plrc",
): Promise<After> => step({ batch, accumulate, shuffleBn, method, seed: SEED }, data);
const eightImages = () => eight(SEED);

const mean = (a: Float64Array, b: Float64Array) => a.map((x, i) => (x + b[i]) / 2);

Deno.test({
  name: "accumulate: 2 micro-batches of 4 equal two 4-image steps (gradients, losses, parameters, queue, centre)",
  ...GPU_TEST,
  async fn() {
    const whole = await eightImages();
    const [h0, h1] = splitBatch(whole, 2);
    const acc = await oneStep(8, 2, whole);
    const a = await oneStep(4, 1, h0), b = await oneStep(4, 1, h1);
    const at = `(seed ${SEED})`;
    for (const r of [acc, a, b]) assert.ok(r.grads.every(Number.isFinite), `finite gradients ${at}`);
    // the two halves really differ, so agreeing with their mean is not agreeing with either
    assert.ok(maxRelErr(a.grads, b.grads) > 1e-2, `the halves' gradients differ ${at}`);
    assertClose(acc.grads, mean(a.grads, b.grads), { rtol: 1e-4, atol: 1e-7 }, `mean gradient ${at}`);
    assertClose(acc.losses, a.losses.map((x, k) => (x + b.losses[k]) / 2), { rtol: 1e-5, atol: 1e-6 }, `losses ${at}`);
    // first SGD step (momentum buffer 0) and EMA are linear in the gradient
    assertClose(acc.params, mean(a.params, b.params), { rtol: 1e-5, atol: 1e-7 }, `parameters ${at}`);
    assertClose(acc.momentum, mean(a.momentum, b.momentum), { rtol: 1e-5, atol: 1e-7 }, `momentum encoder ${at}`);
    assertClose(acc.center, mean(a.center, b.center), { rtol: 1e-4, atol: 1e-7 }, `distillation centre ${at}`);
    // queue (16 rows of 16): rows 0–3 the first micro-batch's keys, 4–7 the second's, the rest as initialised
    const D = 16, rows = (q: Float64Array, r0: number, r1: number) => q.slice(r0 * D, r1 * D);
    assertClose(rows(acc.queue, 0, 4), rows(a.queue, 0, 4), { rtol: 1e-5, atol: 1e-7 }, `queue rows 0-3 ${at}`);
    assertClose(rows(acc.queue, 4, 8), rows(b.queue, 0, 4), { rtol: 1e-5, atol: 1e-7 }, `queue rows 4-7 ${at}`);
    assert.deepEqual(rows(acc.queue, 8, 16), rows(a.queue, 8, 16), `untouched queue rows ${at}`);
    assert.ok(maxRelErr(rows(acc.queue, 0, 4), rows(acc.queue, 4, 8)) > 1e-2, `the two key sets differ ${at}`);
  },
});

Deno.test({
  name: "accumulate with shuffle-BN: the key encoder's BN groups mix images across micro-batches, as one pass does",
  ...GPU_TEST,
  async fn() {
    // one pass of 8 in BN groups of 4 and 2 micro-batches of 4 draw the same permutation of the 8 images, so the
    // key encoder sees the same groups and the queue gets the same keys; the query groups are the same too, so
    // the image loss (a mean over rows) agrees. Shuffling only within each micro-batch would give other groups.
    const whole = await eightImages();
    const one = await oneStep(8, 1, whole, true), acc = await oneStep(8, 2, whole, true);
    const at = `(seed ${SEED})`;
    const keys = (q: Float64Array) => q.slice(0, 8 * 16);
    assertClose(keys(acc.queue), keys(one.queue), { rtol: 1e-4, atol: 1e-6 }, `the step's keys ${at}`);
    assertClose([acc.losses[0]], [one.losses[0]], { rtol: 1e-5, atol: 1e-6 }, `image loss ${at}`);
  },
});

Deno.test({
  name: "accumulate: moco and detcon too: 2 micro-batches of 4 equal two 4-image steps (gradients, losses)",
  ...GPU_TEST,
  async fn() {
    const whole = await eightImages();
    const [h0, h1] = splitBatch(whole, 2);
    for (const method of ["moco", "detcon"]) {
      const at = `(${method}, seed ${SEED})`;
      const acc = await oneStep(8, 2, whole, false, method);
      const a = await oneStep(4, 1, h0, false, method), b = await oneStep(4, 1, h1, false, method);
      assertClose(acc.grads, mean(a.grads, b.grads), { rtol: 1e-4, atol: 1e-7 }, `mean gradient ${at}`);
      const losses = a.losses.map((x, k) => (x + b.losses[k]) / 2);
      assertClose(acc.losses, losses, { rtol: 1e-5, atol: 1e-6 }, `losses ${at}`);
      assertClose(acc.params, mean(a.params, b.params), { rtol: 1e-5, atol: 1e-7 }, `parameters ${at}`);
    }
  },
});
