import { getGpu } from "../src/gpu/device.ts";
import { Recorder, sync } from "../src/gpu/encoder.ts";
import { makeBatch } from "../src/data/batch.ts";
import { dataConfigOf, deriveConfig, resolveConfig } from "../src/train/config.ts";
import { stepConfigOf } from "../src/train/plan.ts";
import { scenesSource } from "../src/train/sources.ts";
import { PlrcStep } from "../src/train/step.ts";
const cfg = resolveConfig({ sets: ["method=moco", ...Deno.args] });
const gpu = await getGpu();
const src = scenesSource({ count: 64, size: cfg.data.scenes.size, classes: 6, seed: 1 });
const d = deriveConfig(cfg, { datasetSize: src.count });
const sc = stepConfigOf(cfg, d);
sc.optim.lr = 0;
const step = await PlrcStep.build(gpu, sc);
const items = await Promise.all(Array.from({ length: sc.batch }, async (_, i) => ({ ...(await src.get(i)), key: i })));
step.upload(makeBatch(items, dataConfigOf(cfg)), 3);
new Recorder(gpu).runAll(step.dispatches).submit();
await sync(gpu);
const find = (n: string) => step.losses.image.tensors.find((t) => t.name === n)!;
const q = await find("image contrast query").read(), k = await step.losses.image.keys.read();
const qr = await find("image contrast query mean").read();
const D = q.length / sc.batch;
console.log(
  "raw q norms",
  Array.from({ length: sc.batch }, (_, i) => Math.hypot(...qr.subarray(i * D, (i + 1) * D)).toFixed(3)).join(" "),
);
for (let i = 0; i < sc.batch; i++) {
  const row = [];
  for (let j = 0; j < sc.batch; j++) {
    let s = 0;
    for (let c = 0; c < D; c++) s += q[i * D + c] * k[j * D + c];
    row.push(s.toFixed(3));
  }
  console.log(row.join(" "));
}
