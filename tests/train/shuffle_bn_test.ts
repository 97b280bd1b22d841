/**
 * Shuffle-BN emulation: the key encoder sees its views in a random image order and its outputs are put
 * back in image order. With one BN group the statistics do not depend on the order, so the key outputs
 * must match an unshuffled run (to float rounding of the reordered sums); with two groups they differ.
 */
import assert from "node:assert/strict";
import { Recorder, sync } from "../../src/gpu/recorder.ts";
import { makeBatch } from "../../src/data/batch.ts";
import { dataConfigOf, deriveConfig, resolveConfig } from "../../src/train/config/mod.ts";
import { stepConfigOf } from "../../src/train/plan.ts";
import { scenesSource } from "../../src/data/sources.ts";
import { PlrcStep } from "../../src/train/step.ts";
import { assertClose, gpu, GPU_TEST, maxRelErr, TINY_MODEL } from "../util.ts";

async function keyOutputs(shuffle: boolean, groupSize: number): Promise<Float64Array[]> {
  const g = await gpu();
  const cfg = resolveConfig({
    sets: [
      ...TINY_MODEL,
      "data.resolution=32",
      "loss.image.queue=16",
      "train.batchSize=4",
      `model.bnGroup=${groupSize}`,
      `model.shuffleBn=${shuffle}`,
    ],
  });
  const src = scenesSource({ count: 8, size: 48, classes: 6, seed: 5 });
  const d = deriveConfig(cfg, { datasetSize: src.count });
  const step = await PlrcStep.build(g, stepConfigOf(cfg, d));
  const items = await Promise.all([0, 1, 2, 3].map(async (i) => ({ ...(await src.get(i)), key: i })));
  step.upload(makeBatch(items, dataConfigOf(cfg)), 7);
  new Recorder(g).runAll(step.dispatches).submit();
  await sync(g);
  // the tensors the losses read: the image-contrast keys come from y1(A1) in image order
  const out = [
    Float64Array.from(await step.losses.image.keys.read()),
    Float64Array.from(await step.lossTensors[0].read()),
  ];
  step.dispose();
  return out;
}

Deno.test({
  name: "shuffle-BN: one BN group gives the unshuffled keys; two groups give different keys",
  ...GPU_TEST,
  async fn() {
    const [plainKeys, plainLoss] = await keyOutputs(false, 4);
    const [shufKeys, shufLoss] = await keyOutputs(true, 4);
    assertClose(shufKeys, plainKeys, { rtol: 1e-4, atol: 1e-5 }, "keys with one group, shuffled vs not");
    assertClose(shufLoss, plainLoss, { rtol: 1e-4, atol: 1e-5 }, "image loss with one group");
    const [plain2] = await keyOutputs(false, 2);
    const [shuf2] = await keyOutputs(true, 2);
    assert.ok(maxRelErr(shuf2, plain2) > 1e-3, "with two groups the shuffle changes the key statistics");
  },
});
