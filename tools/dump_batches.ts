/**
 * Writes the first N training batches of a configuration as raw little-endian files, for the PyTorch twin
 * (`tools/torch_reference/distill_dynamics.py`) to train on exactly the data plrc trains on.
 *
 *   deno run -A tools/dump_batches.ts --out DIR [--steps N] [--set k=v ...]
 *
 * DIR/index.json lists, per step, the number of matched pairs M; DIR/step_NNNN.{a0,a1,b0}.f32 hold the views
 * [B, R, R, 3] (NHWC, normalised) and DIR/step_NNNN.pairs.u32 the pairs as [3, M] (A0 position, B0
 * position, image). Batches are made as the trainer makes them (same indices, keys and seeds).
 */
import { parseArgs } from "node:util";
import { makeBatch, scenesSource } from "../src/data/mod.ts";
import { batchRequests, dataConfigOf, deriveConfig, regionModeOf, resolveConfig } from "../src/train/mod.ts";

const { values } = parseArgs({
  args: Deno.args,
  options: { out: { type: "string" }, steps: { type: "string" }, set: { type: "string", multiple: true } },
});
if (!values.out) throw new Error("--out DIR is required");
const cfg = resolveConfig({ sets: values.set ?? [] });
if (cfg.data.source !== "scenes") throw new Error("dump_batches serves the built-in scenes only");
const src = scenesSource(cfg.data.scenes, regionModeOf(cfg));
const d = deriveConfig(cfg, { datasetSize: src.count });
const steps = Math.min(Number(values.steps ?? 64), d.totalSteps!);
const data = dataConfigOf(cfg), B = cfg.train.batchSize;
await Deno.mkdir(values.out, { recursive: true });
const index = { batch: B, resolution: cfg.data.resolution, maskSize: data.maskSize, steps: [] as { pairs: number }[] };
for (let s = 0; s < steps; s++) {
  const reqs = batchRequests(cfg.seed, src.count, B, s);
  const items = await Promise.all(reqs.map(async (r) => ({ ...(await src.get(r.index)), key: r.key })));
  const b = makeBatch(items, data);
  const base = `${values.out}/step_${String(s).padStart(4, "0")}`;
  await Deno.writeFile(`${base}.a0.f32`, new Uint8Array(b.viewA0.buffer));
  await Deno.writeFile(`${base}.a1.f32`, new Uint8Array(b.viewA1.buffer));
  await Deno.writeFile(`${base}.b0.f32`, new Uint8Array(b.viewB0.buffer));
  const M = b.pairA.length, pairs = new Uint32Array(3 * M);
  pairs.set(b.pairA, 0), pairs.set(b.pairB, M), pairs.set(b.pairImage, 2 * M);
  await Deno.writeFile(`${base}.pairs.u32`, new Uint8Array(pairs.buffer));
  index.steps.push({ pairs: M });
}
await Deno.writeTextFile(`${values.out}/index.json`, JSON.stringify({ config: cfg, ...index }));
console.log(`wrote ${steps} batches of ${B} to ${values.out}`);
