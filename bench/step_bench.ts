/**
 * `deno bench` for the whole PLRC training step at the cpu-tiny size: one pass over the batch of 8 against
 * the same batch as 2 and 4 micro-batches (`train.accumulate`), each step submitted and waited for once.
 * `plrc bench step` reports the same step with a per-family breakdown.
 */
import {
  dataConfigOf,
  deriveConfig,
  getGpu,
  makeBatch,
  PlrcStep,
  resolveConfig,
  scenesSource,
  stepConfigOf,
  sync,
} from "../mod.ts";

const gpu = await getGpu();
const base = resolveConfig({});
const src = scenesSource({ count: 16, size: base.data.scenes.size, classes: 6, seed: 1 });
const items = await Promise.all(
  Array.from({ length: base.train.batchSize }, async (_, i) => ({ ...(await src.get(i)), key: i })),
);
const batch = makeBatch(items, dataConfigOf(base));

for (const accumulate of [1, 2, 4]) {
  const cfg = resolveConfig({ sets: [`train.accumulate=${accumulate}`] });
  const sc = stepConfigOf(cfg, deriveConfig(cfg, { datasetSize: 1024 }));
  const step = await PlrcStep.build(gpu, sc);
  step.upload(batch);
  const schedule = { lr: sc.optim.lr, ema: sc.ema, teacherTemperature: sc.temperatures.teacher };
  let s = 0;
  await step.run(s++, schedule); // compile and warm up outside the timing
  await sync(gpu);
  Deno.bench({
    name: accumulate === 1
      ? `cpu-tiny step, one pass of ${sc.batch}`
      : `${accumulate} micro-batches of ${sc.batch / accumulate}`,
    group: "plrc step",
    baseline: accumulate === 1,
    fn: async () => {
      await step.run(s++, schedule);
      await sync(gpu);
    },
  });
}
