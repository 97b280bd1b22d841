/**
 * The baselines train from the same trainer: `moco` (image-level contrast only) and `detcon` (region
 * features averaged from their points, contrasted region against region); each runs, reports finite
 * losses, changes the parameters and leaves the unused terms at zero.
 */
import assert from "node:assert/strict";
import { resolveConfig } from "../../src/train/config/mod.ts";
import { makePlan } from "../../src/train/plan.ts";
import { scenesSource } from "../../src/data/sources.ts";
import { train } from "../../src/train/trainer.ts";
import { gpu, GPU_TEST, TINY_MODEL } from "../util.ts";

for (const method of ["moco", "detcon"] as const) {
  Deno.test({
    name: `method ${method} trains from the same trainer`,
    ...GPU_TEST,
    async fn() {
      const dir = await Deno.makeTempDir();
      try {
        const cfg = resolveConfig({
          sets: [
            `method=${method}`,
            ...TINY_MODEL,
            "data.resolution=32",
            "data.scenes.count=16",
            "data.scenes.size=48",
            "loss.image.queue=8",
            "train.batchSize=4",
            "train.maxSteps=3",
          ],
        });
        const sc = cfg.data.scenes;
        const source = scenesSource({ count: sc.count, size: sc.size, classes: sc.classes, seed: sc.seed });
        const r = await train(await gpu(), makePlan(cfg, source, dir, { quiet: true }), () => {});
        assert.equal(r.steps, 3);
        const m = (await Deno.readTextFile(`${dir}/metrics.jsonl`)).trim().split("\n").map((l) => JSON.parse(l));
        assert.equal(m.length, 3);
        for (const x of m) {
          assert.ok(Number.isFinite(x.loss) && Number.isFinite(x.loss_image), JSON.stringify(x));
          assert.equal(x.loss_distill, 0);
          if (method === "moco") {
            assert.equal(x.loss_point, 0);
            assert.ok(Math.abs(x.loss - 0.7 * x.loss_image) < 1e-6, JSON.stringify(x)); // loss.image.weight
          } else assert.ok(x.loss_point > 0 && Math.abs(x.loss - x.loss_point) < 1e-6, JSON.stringify(x));
        }
      } finally {
        await Deno.remove(dir, { recursive: true });
      }
    },
  });
}
