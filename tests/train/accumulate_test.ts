/**
 * Gradient accumulation: a step of 8 images as 2 micro-batches of 4 must equal two data-parallel "GPUs" of
 * 4 images each, i.e. two separate 4-image steps from the same state: the mean of their gradients, loss
 * values, centre moves and updated parameters, and both sets of keys in the queue.
 */
import assert from "node:assert/strict";
import { sync } from "../../src/gpu/recorder.ts";
import { makeBatch, splitBatch } from "../../src/data/batch.ts";
import { dataConfigOf, deriveConfig, resolveConfig } from "../../src/train/config/mod.ts";
import { stepConfigOf } from "../../src/train/plan.ts";
import { scenesSource } from "../../src/data/sources.ts";
import { PlrcStep } from "../../src/train/step.ts";
import { assertClose, gpu, GPU_TEST, maxRelErr, TINY_MODEL } from "../util.ts";

const SEED = Number(Deno.env.get("PLRC_TEST_SEED") ?? Math.floor(Math.random() * 2 ** 31));

interface After {
  grads: Float64Array;
  params: Float64Array;
  momentum: Float64Array;
  losses: number[];
  queue: Float64Array;
  center: Float64Array;
}

const f64 = async (t: { read(): Promise<ArrayLike<number>> }) => Float64Array.from(await t.read());

async function oneStep(
  batch: number,
  accumulate: number,
  data: ReturnType<typeof makeBatch>,
  shuffleBn = false,
  method = "plrc",
): Promise<After> {
  const g = await gpu();
  const cfg = resolveConfig({
    sets: [
      ...TINY_MODEL,
      "data.resolution=32",
      "loss.image.queue=16",
      `train.batchSize=${batch}`,
      `train.accumulate=${accumulate}`,
      "model.bnGroup=4",
      `model.shuffleBn=${shuffleBn}`,
      `method=${method}`,
      `seed=${SEED % 1000}`,
    ],
  });
  const d = deriveConfig(cfg, { datasetSize: 16 });
  const sc = stepConfigOf(cfg, d);
  const step = await PlrcStep.build(g, sc);
  // poison what a step must overwrite: gradients and the accumulation buffers
  step.online.flat().grads.fill(NaN);
  for (const t of step.owned) if (t.name.startsWith("mean ") || t.name.startsWith("keys of")) t.fill(NaN);
  step.upload(data, 3);
  await step.run(3, { lr: 0.05, ema: 0.9, teacherTemperature: 0.04 });
  await sync(g);
  // the trainable entries only (the flat buffers pad entries to alignment; nothing reads the padding)
  const entries = [...step.online.entries.values()].filter((e) =>
    e.spec.kind !== "running_mean" && e.spec.kind !== "running_var"
  );
  const live = (x: Float64Array) =>
    Float64Array.from(entries.flatMap((e) => [...x.subarray(e.offset, e.offset + e.numel)]));
  const out: After = {
    grads: live(await f64(step.online.flat().grads)),
    params: live(await f64(step.online.flat().params)),
    momentum: live(await f64(step.momentum.flat().params)),
    losses: await Promise.all(step.lossValues.map(async (t) => (await t.read())[0])),
    queue: await f64(step.losses.image.queue),
    center: step.losses.distill ? await f64(step.losses.distill.center) : new Float64Array(),
  };
  step.dispose();
  return out;
}

const mean = (a: Float64Array, b: Float64Array) => a.map((x, i) => (x + b[i]) / 2);

/** One batch of 8 scenes at 32 px, made with the tests' configuration seed. */
async function eightImages(): Promise<ReturnType<typeof makeBatch>> {
  const src = scenesSource({ count: 16, size: 48, classes: 6, seed: 5 });
  const items = await Promise.all([...Array(8).keys()].map(async (i) => ({ ...(await src.get(i)), key: i })));
  return makeBatch(items, dataConfigOf(resolveConfig({ sets: ["data.resolution=32", `seed=${SEED % 1000}`] })));
}

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
