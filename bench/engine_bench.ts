/**
 * `deno bench` for the ResNet engine: a square GEMM, the convolutions of a small ResNet-50, and a whole
 * backbone step (forward, backward, SGD), each recorded in one submission and waited for once. Sizes
 * follow PLRC_BENCH_SCALE (default: CPU-adapter friendly); `plrc bench gemm|conv|resnet` reports the same
 * work with GPU timestamps and GFLOP/s.
 */
import { type Dispatch, getGpu, Recorder, sync, Tensor } from "../src/gpu/mod.ts";
import { convForward, convOutSize, convWgrad, matmul } from "../src/kernels/mod.ts";
import { backboneStep, distinctConvs } from "../src/bench/mod.ts";

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

const { dispatches: stepDispatches } = await backboneStep(gpu, cfg, batch, res);
Deno.bench({
  name: `resnet-50 x${cfg.width} step, batch ${batch} @${res}`,
  group: "step",
  fn: () => run(stepDispatches),
});
