/** tools/dump_batches.ts writes exactly the batches the trainer makes (the PyTorch twin trains on them). */
import assert from "node:assert/strict";
import { makeBatch } from "../../src/data/batch.ts";
import { dataConfigOf, resolveConfig } from "../../src/train/config/mod.ts";
import { scenesSource } from "../../src/data/sources.ts";
import { regionModeOf } from "../../src/train/config/mod.ts";
import { batchIndices } from "../../src/train/trainer.ts";

Deno.test("dump_batches: the trainer's first batches, views NHWC float32 and pairs [3, M] uint32", async () => {
  const out = await Deno.makeTempDir({ prefix: "plrc-dump-" });
  try {
    const sets = ["data.scenes.count=16", "train.batchSize=4"];
    const o = await new Deno.Command(Deno.execPath(), {
      args: [
        "run",
        "-A",
        new URL("../../tools/dump_batches.ts", import.meta.url).pathname,
        "--out",
        out,
        "--steps",
        "2",
        ...sets.flatMap((s) => ["--set", s]),
      ],
    }).output();
    assert.equal(o.code, 0, new TextDecoder().decode(o.stderr));
    const index = JSON.parse(await Deno.readTextFile(`${out}/index.json`));
    assert.equal(index.steps.length, 2);
    const cfg = resolveConfig({ sets });
    const src = scenesSource(cfg.data.scenes, regionModeOf(cfg));
    // step 1 rebuilt here as the trainer builds it
    const { epoch, indices } = batchIndices(cfg.seed, src.count, 4, 1);
    const items = await Promise.all(indices.map(async (i) => ({ ...(await src.get(i)), key: epoch * src.count + i })));
    const b = makeBatch(items, dataConfigOf(cfg));
    const f32 = async (name: string) => new Float32Array((await Deno.readFile(`${out}/step_0001.${name}.f32`)).buffer);
    assert.deepEqual(await f32("a0"), b.viewA0);
    assert.deepEqual(await f32("a1"), b.viewA1);
    assert.deepEqual(await f32("b0"), b.viewB0);
    const pairs = new Uint32Array((await Deno.readFile(`${out}/step_0001.pairs.u32`)).buffer);
    const M = index.steps[1].pairs;
    assert.ok(M > 0 && M === b.pairA.length);
    assert.deepEqual(pairs, Uint32Array.from([...b.pairA, ...b.pairB, ...b.pairImage]));
    // and the two steps are different batches
    assert.notDeepEqual(new Float32Array((await Deno.readFile(`${out}/step_0000.a0.f32`)).buffer), b.viewA0);
  } finally {
    await Deno.remove(out, { recursive: true });
  }
});
