/**
 * A ResNet graph cut after a stage computes exactly that stage's output of the full network: the cut
 * graph's output equals the full graph's C4 (stages 3) on the same weights and input (eval-mode BN, so the
 * batch does not matter), and a stages-2 graph has the stride-8 shape.
 */
import assert from "node:assert/strict";
import { buildResNet, initResNet, type ResNetConfig, resnetSpecs, resnetWidths } from "../../src/models/resnet.ts";
import { ParamStore } from "../../src/nn/params.ts";
import { freshSeed, gpu, GPU_TEST, readF64, Rng, runOnce } from "../util.ts";

Deno.test({
  name: "stages: the graph cut after layer3 outputs the full graph's C4; after layer2, C3 at stride 8",
  ...GPU_TEST,
  async fn() {
    const g = await gpu(), seed = freshSeed(), rng = new Rng(seed);
    const cfg: ResNetConfig = { depth: 18, width: 0.0625 };
    const store = new ParamStore(resnetSpecs(cfg)).allocate(g);
    initResNet(store, cfg, seed);
    for (const s of store.specs) { // non-zero last-BN γ: every residual branch contributes
      if (s.kind === "bn_weight") {
        store.set(
          s.name,
          Float32Array.from({ length: s.shape[0] }, () => rng.uniform(0.5, 1.5)),
        );
      }
    }
    const o = { batch: 2, resolution: 64, train: false, backward: false };
    const full = await buildResNet(g, store, cfg, { ...o, c4: true });
    const cut3 = await buildResNet(g, store, cfg, { ...o, stages: 3, input: full.input });
    const cut2 = await buildResNet(g, store, cfg, { ...o, stages: 2, input: full.input });
    full.input.upload(Float32Array.from({ length: full.input.numel }, () => rng.normal()));
    cut3.c5.fill(NaN);
    await runOnce(g, [...full.forward, ...cut3.forward, ...cut2.forward]);
    assert.deepEqual(cut3.c5Shape, [2, 4, 4, resnetWidths(cfg).planes[2]]);
    assert.deepEqual(await readF64(cut3.c5), await readF64(full.c4!), `seed ${seed}`);
    assert.deepEqual(cut2.c5Shape, [2, 8, 8, resnetWidths(cfg).planes[1]]);
    assert.ok(cut2.forward.length < cut3.forward.length && cut3.forward.length < full.forward.length);
    for (const n of [full, cut3, cut2]) n.dispose();
  },
});
