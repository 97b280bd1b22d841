/**
 * The point head and the DINO head (BN1d in training mode, L2 bottleneck, weight-normalised prototypes
 * with gain 1) against PyTorch (tools/make_heads_fixture.py): outputs, the gradient reaching C5, every
 * head parameter's gradient and the BN running statistics, to relative error ≤ 1e-4 (max-abs metric).
 */
import assert from "node:assert/strict";
import { readSafetensors, toFloat32 } from "../../src/io/safetensors.ts";
import { buildHeads, type HeadsConfig, headSpecs } from "../../src/models/heads.ts";
import { isTrainable, ParamStore } from "../../src/nn/params.ts";
import { Recorder, sync } from "../../src/gpu/recorder.ts";
import { Tensor } from "../../src/gpu/tensor.ts";
import { gpu, GPU_TEST } from "../util.ts";
import { fixtureValue } from "./fixture_values.ts";

/** max |a − e| / max(max |e|, scale). */
function relErr(a: ArrayLike<number>, e: ArrayLike<number>, scale = 0): number {
  let num = 0, den = 0;
  for (let i = 0; i < e.length; i++) num = Math.max(num, Math.abs(a[i] - e[i])), den = Math.max(den, Math.abs(e[i]));
  return num / Math.max(den, scale, 1e-30);
}

const maxAbs = (a: ArrayLike<number>) => Array.from(a).reduce((m, v) => Math.max(m, Math.abs(v)), 0);

// The biases of the linear layers that feed a BN have gradient 0 in exact arithmetic (BN removes any
// shift), so only rounding noise remains: measure it against the scale of the layer's weight gradient.
const ZERO_IN_THEORY = new Set(["dino_head.mlp.0.bias", "dino_head.mlp.3.bias"]);

function kindFor(name: string, shape: number[]): string {
  if (shape.length === 2) return "linear";
  if (name.includes("running_var")) return "running_var";
  if (name.includes("running_mean")) return "running_mean";
  return name.endsWith("weight") ? "bn_weight" : "bn_bias";
}

Deno.test({
  name: "point head and DINO head match PyTorch: outputs, d C5, every parameter gradient, BN statistics",
  ...GPU_TEST,
  async fn() {
    const g = await gpu();
    const fx = await readSafetensors(new URL("../fixtures/heads.safetensors", import.meta.url).pathname);
    const get = (n: string) => toFloat32(fx.tensors.get(n) ?? assert.fail(`fixture lacks ${n}`));
    const [N, C, PH, PD, DH, BOT, K] = fx.metadata.sizes.split(",").map(Number);
    const cfg: HeadsConfig = {
      inDim: C,
      pointHidden: PH,
      pointDim: PD,
      dinoHidden: DH,
      bottleneck: BOT,
      prototypes: K,
    };
    const store = new ParamStore(headSpecs(cfg)).allocate(g);
    for (const s of store.specs) store.set(s.name, fixtureValue(s.name, s.shape, kindFor(s.name, s.shape)));
    const c5 = Tensor.from(g, [N, C], fixtureValue("heads.c5", [N, C], "other"));
    const dC5 = Tensor.empty(g, [N, C]);
    const h = await buildHeads(g, store, cfg, c5, { rows: N, train: true, backward: true, dC5 });
    h.dY1!.upload(fixtureValue("heads.dy1", [N, PD], "other"));
    h.dZ!.upload(fixtureValue("heads.dz", [N, BOT], "other"));
    h.dLogits!.upload(fixtureValue("heads.dlogits", [N, K], "other"));
    new Recorder(g).runAll(h.forward).runAll(h.backward).submit();
    await sync(g);
    const errs: string[] = [];
    const note = (what: string, e: number) => (e > 1e-4 || Number.isNaN(e)) && errs.push(`${what}: ${e}`);
    note("y1", relErr(await h.y1.read(), get("y1")));
    note("z", relErr(await h.z.read(), get("z")));
    note("logits", relErr(await h.logits.read(), get("logits")));
    note("dc5", relErr(await dC5.read(), get("dc5")));
    let grads = 0;
    for (const s of store.specs) {
      if (isTrainable(s.kind)) {
        const scale = ZERO_IN_THEORY.has(s.name) ? maxAbs(get(`grad.${s.name.replace(/bias$/, "weight")}`)) : 0;
        note(`grad ${s.name}`, relErr(await store.getGrad(s.name), get(`grad.${s.name}`), scale)), grads++;
      } else note(`stat ${s.name}`, relErr(await store.get(s.name), get(`stats.${s.name}`)));
    }
    assert.equal(grads, [...fx.tensors.keys()].filter((k) => k.startsWith("grad.")).length);
    assert.deepEqual(errs, []);
    h.dispose();
    c5.dispose(), dC5.dispose();
  },
});
