/**
 * The assembled step's gradient is the gradient of its loss: on a fixed batch with the queue, centre and
 * momentum encoder held still, one plain SGD step of size η must lower the weighted loss by η·‖g‖²
 * (to first order), and a step of −η must raise it by the same amount. This checks the wiring of the
 * three losses, their weights, the heads and the backbone together.
 */
import assert from "node:assert/strict";
import { Recorder, sync } from "../../src/gpu/recorder.ts";
import { makeBatch } from "../../src/data/batch.ts";
import { dataConfigOf, deriveConfig, resolveConfig } from "../../src/train/config/mod.ts";
import { stepConfigOf } from "../../src/train/plan.ts";
import { scenesSource } from "../../src/data/sources.ts";
import { PlrcStep } from "../../src/train/step.ts";
import { gpu, GPU_TEST, TINY_MODEL } from "../util.ts";

Deno.test({
  name: "the step's gradient predicts the change of the weighted PLRC loss (directional derivative)",
  ...GPU_TEST,
  async fn() {
    const g = await gpu();
    const cfg = resolveConfig({
      sets: [
        ...TINY_MODEL,
        "data.resolution=64",
        "data.points=4",
        "data.regions.count=2",
        "loss.image.queue=16",
        "train.batchSize=4",
        "model.bnGroup=4",
      ],
    });
    const src = scenesSource({ count: 8, size: 80, classes: 6, seed: 3 });
    const d = deriveConfig(cfg, { datasetSize: src.count });
    const sc = { ...stepConfigOf(cfg, d), optim: { lr: 0, momentum: 0, weightDecay: 0, nesterov: false } };
    const step = await PlrcStep.build(g, sc);
    const items = await Promise.all([0, 1, 2, 3].map(async (i) => ({ ...(await src.get(i)), key: i })));
    step.upload(makeBatch(items, dataConfigOf(cfg)));
    const w = sc.weights;
    // in the step's order: the key views' backbones write into the online backbone's buffers, so they go first
    const forward = [
      ...step.kA1.forward,
      ...step.kB0.forward,
      ...step.q.forward,
      ...step.losses.image.forward,
      ...step.losses.point!.forward,
      ...step.losses.distill!.forward,
    ];
    const loss = async () => {
      new Recorder(g).runAll(forward).submit();
      const [li, lp, ld] = await Promise.all(step.lossTensors.map((t) => t.read()));
      return w.image * li[0] + w.point * lp[0] + w.distill * ld[0];
    };
    const l0 = await loss();
    // gradient of the weighted loss into the flat gradient buffer
    new Recorder(g).runAll([
      ...step.losses.image.backward,
      ...step.losses.point!.backward,
      ...step.losses.distill!.backward,
      ...step.gradDispatches,
      ...step.q.backward,
    ]).submit();
    const flat = step.online.flat();
    const grad = (await flat.grads.read()) as Float32Array;
    let g2 = 0;
    for (const v of grad) g2 += v * v;
    assert.ok(g2 > 0 && Number.isFinite(g2), `gradient norm² ${g2}`);
    const eta = 2e-3 * Math.abs(l0) / g2; // a loss change of about 0.2%
    const moveBy = async (lr: number) => {
      step.sgd.setParams({ lr, momentum: 0, wd: 0 });
      new Recorder(g).run(step.sgd).submit();
      await sync(g);
    };
    await moveBy(eta);
    const lDown = await loss();
    await moveBy(-2 * eta); // to θ + η·g (the momentum buffer is overwritten with g each time: momentum 0)
    const lUp = await loss();
    const predicted = eta * g2;
    const down = l0 - lDown, up = lUp - l0;
    const msg = `L0 ${l0}, L(θ−ηg) ${lDown}, L(θ+ηg) ${lUp}, predicted change ${predicted}`;
    assert.ok(down > 0.7 * predicted && down < 1.3 * predicted, `descent: ${msg}`);
    assert.ok(up > 0.7 * predicted && up < 1.3 * predicted, `ascent: ${msg}`);
    step.dispose();
  },
});
