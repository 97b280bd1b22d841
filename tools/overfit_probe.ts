// Experiment: PLRC step on one fixed batch for N steps; prints the loss terms. usage: deno run -A tools/overfit_probe.ts steps lr [k=v ...]
import { getGpu } from "../src/gpu/device.ts";
import { makeBatch } from "../src/data/batch.ts";
import { dataConfigOf, deriveConfig, resolveConfig } from "../src/train/config.ts";
import { stepConfigOf } from "../src/train/plan.ts";
import { scenesSource } from "../src/train/sources.ts";
import { PlrcStep } from "../src/train/step.ts";

const [stepsArg, lrArg, ...sets] = Deno.args;
const cfg = resolveConfig({ sets });
const gpu = await getGpu();
const src = scenesSource({ count: 64, size: cfg.data.scenes.size, classes: 6, seed: 1 });
const d = deriveConfig(cfg, { datasetSize: src.count });
const sc = stepConfigOf(cfg, d);
const step = await PlrcStep.build(gpu, sc);
const items = await Promise.all(Array.from({ length: sc.batch }, async (_, i) => ({ ...(await src.get(i)), key: i })));
const batch = makeBatch(items, dataConfigOf(cfg));
step.upload(batch);
const lr = Number(lrArg);
const out: unknown[] = [];
for (let i = 0; i < Number(stepsArg); i++) {
  const r = await step.run(i, { lr, ema: sc.ema, teacherTemperature: sc.temperatures.teacher });
  if (r) out.push(r);
}
for (const r of await step.ring.drain()) out.push(r);
for (const r of out) console.log(JSON.stringify(r));
