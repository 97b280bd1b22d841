/**
 * `deno bench` for the ResNet engine: a square GEMM, the convolutions of a small ResNet-50, and a whole
 * backbone step (forward, backward, SGD), each recorded in one submission and waited for once. Sizes
 * follow PLRC_BENCH_SCALE (default: CPU-adapter friendly); `plrc bench gemm|conv|resnet` reports the same
 * work with GPU timestamps and GFLOP/s.
 */
import { getGpu } from "../src/gpu/device.ts";
import { Recorder, sync } from "../src/gpu/encoder.ts";
import type { Dispatch } from "../src/gpu/kernel.ts";
import { Tensor } from "../src/gpu/tensor.ts";
import { convForward, convOutSize, convWgrad, matmul } from "../src/kernels/gemm.ts";
import { sgdStep } from "../src/kernels/optim.ts";
import { distinctConvs } from "../src/bench/engine.ts";
import { buildResNet, initResNet, resnetSpecs } from "../src/models/resnet.ts";
import { ParamStore } from "../src/nn/params.ts";

const gpu = await getGpu();
const big = Deno.env.get("PLRC_BENCH_SCALE") === "gpu";
const rand = (n: number) => Float32Array.from({ length: n }, () => Math.random() - 0.5);
const run = async (ds: Dispatch[]) => {
  new Recorder(gpu).runAll(ds).submit();
  await sync(gpu);
};

const n = big ? 4096 : 512;
const a = Tensor.from(gpu, [n, n], rand(n * n)),
  b = Tensor.from(gpu, [n, n], rand(n * n)),
  c = Tensor.empty(gpu, [n, n]);
const mm = await matmul(gpu, a, b, c, n, n, n);
Deno.bench({ name: `gemm ${n}³`, group: "gemm", fn: () => run([mm]) });

const cfg = { depth: 50 as const, width: big ? 1 : 0.25 };
const batch = big ? 8 : 2, res = big ? 224 : 64;
for (const g of distinctConvs(cfg, batch, res).slice(0, big ? 100 : 6)) {
  const [oh, ow] = convOutSize(g);
  const x = Tensor.from(gpu, [g.nb * g.ih * g.iw * g.cin], rand(g.nb * g.ih * g.iw * g.cin));
  const w = Tensor.from(gpu, [g.kh * g.kw * g.cin * g.cout], rand(g.kh * g.kw * g.cin * g.cout));
  const y = Tensor.empty(gpu, [g.nb * oh * ow * g.cout]), dw = Tensor.empty(gpu, [w.numel]);
  const f = await convForward(gpu, x, w, y, g);
  const wg = await convWgrad(gpu, x, y, dw, g);
  const tag = `${g.kh}x${g.kw}/${g.stride} ${g.cin}->${g.cout} @${g.ih}`;
  Deno.bench({ name: `conv fwd ${tag}`, group: "conv", fn: () => run([f]) });
  Deno.bench({ name: `conv wgrad ${tag}`, group: "conv", fn: () => run(wg.dispatches) });
}

const store = new ParamStore(resnetSpecs(cfg)).allocate(gpu);
initResNet(store, cfg, 0);
const net = await buildResNet(gpu, store, cfg, { batch, resolution: res, train: true, backward: true });
net.input.upload(rand(net.input.numel));
net.dC5!.upload(rand(net.dC5!.numel));
const fl = store.flat();
const sgd = await sgdStep(gpu, fl.params, fl.grads, fl.momentum, fl.wdMask, {
  lr: 0.01,
  momentum: 0.9,
  weightDecay: 1e-4,
});
Deno.bench({
  name: `resnet-50 x${cfg.width} step, batch ${batch} @${res}`,
  group: "step",
  fn: () => run([...net.forward, ...net.backward, sgd]),
});
