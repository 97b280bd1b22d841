/**
 * Whole-model parity with torchvision (fixtures from tools/make_resnet_fixtures.py): a width-reduced
 * ResNet-18 and ResNet-50 at batch 2, 64 px, training-mode BN (last BN γ of each block near zero, as at
 * the start of training; see the script for why). C5, the loss Σ C5·U, every parameter's
 * gradient and the BN running statistics must agree with PyTorch (float64) to a relative error ≤ 1e-4,
 * measured per tensor as max |a − e| / max |e|. One SGD step is checked against torch.optim.SGD.
 */
import assert from "node:assert/strict";
import { readSafetensors, toFloat32 } from "../../src/io/safetensors.ts";
import { sgdStep } from "../../src/kernels/optim.ts";
import { buildResNet, lastBnNames, type ResNetConfig, resnetSpecs } from "../../src/models/resnet.ts";
import { isTrainable, ParamStore } from "../../src/nn/params.ts";
import { Recorder, sync } from "../../src/gpu/recorder.ts";
import { Tensor } from "../../src/gpu/tensor.ts";
import type { GemmShape } from "../../src/kernels/gemm.ts";
import { assertClose, gpu, GPU_TEST, skipTiled } from "../util.ts";
import { fixtureValue, nchwToNhwc } from "./fixture_values.ts";

const FIX = (f: string) => new URL(`../fixtures/${f}`, import.meta.url).pathname;

/** max |a − e| / max |e| over a tensor. */
function tensorRelErr(a: ArrayLike<number>, e: ArrayLike<number>): number {
  let num = 0, den = 0;
  for (let i = 0; i < e.length; i++) num = Math.max(num, Math.abs(a[i] - e[i])), den = Math.max(den, Math.abs(e[i]));
  return num / Math.max(den, 1e-30);
}

const MODELS: [string, ResNetConfig][] = [
  ["resnet18_w0.125.safetensors", { depth: 18, width: 0.125 }],
  ["resnet50_w0.0625.safetensors", { depth: 50, width: 0.0625 }],
];
const SHAPES: GemmShape[] = ["register", "tiled"];

for (const [file, cfg] of MODELS) {
  for (const shape of SHAPES) {
    Deno.test({
      name:
        `ResNet-${cfg.depth} ×${cfg.width} (${shape} GEMMs) matches torchvision: C5, loss, every gradient, BN stats`,
      ...GPU_TEST,
      ignore: skipTiled(shape),
      async fn() {
        const g = await gpu();
        const fx = await readSafetensors(FIX(file));
        const get = (n: string) => toFloat32(fx.tensors.get(n) ?? assert.fail(`fixture lacks ${n}`));
        const B = Number(fx.metadata.batch), R = Number(fx.metadata.resolution);
        const store = new ParamStore(resnetSpecs(cfg)).allocate(g);
        const last = new Set(lastBnNames(cfg));
        for (const s of store.specs) {
          store.set(s.name, fixtureValue(s.name, s.shape, last.has(s.name) ? "bn_last_weight" : s.kind));
        }
        const net = await buildResNet(g, store, cfg, {
          batch: B,
          resolution: R,
          train: true,
          backward: true,
          tile: { shape },
        });
        net.input.upload(nchwToNhwc(get("input"), B, 3, R, R));
        const [, h5, w5, c5] = net.c5Shape;
        const u = fixtureValue("upstream", [B, c5, h5, w5], "other");
        net.dC5!.upload(nchwToNhwc(u, B, c5, h5, w5));
        new Recorder(g).runAll(net.forward).runAll(net.backward).submit();
        await sync(g);

        const c5Got = (await net.c5.read()) as Float32Array;
        const c5Want = nchwToNhwc(get("c5"), B, c5, h5, w5);
        const errs: string[] = [];
        const note = (what: string, e: number) => e > 1e-4 && errs.push(`${what}: ${e.toExponential(2)}`);
        note("c5", tensorRelErr(c5Got, c5Want));
        // the loss Σ C5·U cancels: measure its error against Σ |C5·U|
        const uNhwc = nchwToNhwc(u, B, c5, h5, w5);
        let loss = 0, scale = 0;
        for (let i = 0; i < c5Got.length; i++) loss += c5Got[i] * uNhwc[i], scale += Math.abs(c5Got[i] * uNhwc[i]);
        note("loss", Math.abs(loss - get("loss")[0]) / scale);
        let worst = 0, count = 0;
        for (const s of store.specs) {
          if (isTrainable(s.kind)) {
            const e = tensorRelErr(await store.getGrad(s.name), get(`grad.${s.name}`));
            worst = Math.max(worst, e), count++;
            note(`grad ${s.name}`, e);
          } else {
            note(`stat ${s.name}`, tensorRelErr(await store.get(s.name), get(`stats.${s.name}`)));
          }
        }
        assert.equal(
          count,
          [...fx.tensors.keys()].filter((k) => k.startsWith("grad.")).length,
          "every gradient checked",
        );
        assert.deepEqual(errs, [], `relative errors above 1e-4 (worst gradient ${worst.toExponential(2)})`);
        net.dispose();
      },
    });
  }
}

for (const kind of ["plain", "nesterov"]) {
  Deno.test({
    name: `one SGD step (momentum 0.9, weight decay 1e-4${
      kind === "nesterov" ? ", Nesterov" : ""
    }) matches torch.optim.SGD`,
    ...GPU_TEST,
    async fn() {
      const g = await gpu();
      const fx = await readSafetensors(FIX("sgd.safetensors"));
      const get = (n: string) => toFloat32(fx.tensors.get(`sgd_${kind}.${n}`)!);
      const n = get("p").length;
      const p = Tensor.from(g, [n], get("p")),
        gr = Tensor.from(g, [n], get("g")),
        buf = Tensor.from(g, [n], get("buf"));
      const mask = Tensor.from(g, [n], new Float32Array(n).fill(1));
      const d = await sgdStep(g, p, gr, buf, mask, {
        lr: 0.05,
        momentum: 0.9,
        weightDecay: 1e-4,
        nesterov: kind === "nesterov",
      });
      new Recorder(g).run(d).submit();
      assertClose(await p.read(), get("p_new"), { rtol: 1e-6, atol: 1e-7 }, "parameters");
      assertClose(await buf.read(), get("buf_new"), { rtol: 1e-6, atol: 1e-7 }, "momentum buffer");
      for (const t of [p, gr, buf, mask]) t.dispose();
    },
  });
}
