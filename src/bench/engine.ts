/**
 * Benchmarks of the ResNet engine: GEMM at square sizes, every distinct convolution shape of a ResNet
 * (forward, input gradient, weight gradient), and a whole forward + backward + SGD step. Times come from
 * timestamp queries where the adapter has them (median over repetitions), wall time otherwise.
 *
 * @module
 */
import type { Gpu } from "../gpu/device.ts";
import type { Dispatch } from "../gpu/kernel.ts";
import { Tensor } from "../gpu/tensor.ts";
import {
  convDgrad,
  convFlops,
  convForward,
  type ConvGeom,
  convOutSize,
  convWgrad,
  type GemmTile,
  matmul,
} from "../kernels/gemm.ts";
import { sgdStep } from "../kernels/optim.ts";
import {
  buildResNet,
  initResNet,
  type ResNetConfig,
  type ResNetGraph,
  resnetPlan,
  resnetSpecs,
} from "../models/resnet.ts";
import { ParamStore } from "../nn/params.ts";
import { timeCase } from "./kernels.ts";

/** One measurement (one JSON line of `plrc bench ... --json`). */
export interface EngineMeasurement {
  /** Which suite measured it. */
  suite: "gemm" | "conv" | "resnet";
  /** Name of the case. */
  name: string;
  /** Shape parameters of the case. */
  shape: Record<string, number | string>;
  /** Median milliseconds per run. */
  ms: number;
  /** Where `ms` came from. */
  timing: "timestamp" | "wall";
  /** Multiply-adds ×2 per second, in GFLOP/s. */
  gflops: number;
  /** The adapter's description. */
  adapter: string;
  /** The adapter's backend. */
  backend: string;
}

function measurement(
  gpu: Gpu,
  suite: EngineMeasurement["suite"],
  name: string,
  shape: Record<string, number | string>,
  t: { ms: number; timing: "timestamp" | "wall" },
  flops: number,
): EngineMeasurement {
  return {
    suite,
    name,
    shape,
    ms: t.ms,
    timing: t.timing,
    gflops: flops / (t.ms * 1e6),
    adapter: gpu.summary.description,
    backend: gpu.summary.backend,
  };
}

/** Progress of a benchmark that measures case after case (a large one compiles and runs for seconds). */
export interface BenchProgress {
  /** Before case `index` of `total` is compiled and timed. */
  onStart?: (name: string, index: number, total: number) => void;
  /** Each measurement as soon as it is made. */
  onRow?: (row: EngineMeasurement) => void;
}

const rand = (n: number) => Float32Array.from({ length: n }, () => Math.random() * 2 - 1);
const single = (dispatches: Dispatch[]) => ({ kernel: "", variant: "", shape: [], bytes: 0, dispatches });

/** Square GEMMs C = A·B at each size. */
export async function benchGemm(
  gpu: Gpu,
  sizes: number[],
  o: BenchProgress & { reps?: number; tile?: Partial<GemmTile> } = {},
): Promise<EngineMeasurement[]> {
  const out: EngineMeasurement[] = [];
  for (const [i, n] of sizes.entries()) {
    o.onStart?.(`gemm ${n}`, i, sizes.length);
    const a = Tensor.from(gpu, [n, n], rand(n * n)), b = Tensor.from(gpu, [n, n], rand(n * n));
    const c = Tensor.empty(gpu, [n, n]);
    const d = await matmul(gpu, a, b, c, n, n, n, { tile: o.tile });
    const t = await timeCase(gpu, single([d]), o.reps ?? 5);
    out.push(measurement(gpu, "gemm", `gemm ${n}`, { m: n, n, k: n, kernel: d.kernel.spec.key ?? "" }, t, 2 * n ** 3));
    o.onRow?.(out[out.length - 1]);
    for (const x of [a, b, c]) x.dispose();
  }
  return out;
}

/** The distinct convolution geometries of `cfg` at `batch` × `resolution`. */
export function distinctConvs(cfg: ResNetConfig, batch: number, resolution: number): ConvGeom[] {
  const plan = resnetPlan(cfg);
  const seen = new Map<string, ConvGeom>();
  let h = resolution;
  const add = (cin: number, cout: number, k: number, s: number, p: number, ih: number) => {
    const g = { nb: batch, ih, iw: ih, cin, cout, kh: k, kw: k, stride: s, pad: p };
    seen.set(JSON.stringify(g), g);
    return convOutSize(g)[0];
  };
  h = add(3, plan.stem.cout, 7, 2, 3, h);
  h = Math.floor((h + 2 - 3) / 2) + 1; // max pool
  for (const stage of plan.blocks) {
    for (const b of stage) {
      let hh = h;
      for (const u of b.units) hh = add(u.cin, u.cout, u.k, u.stride, u.pad, hh);
      if (b.downsample) add(b.downsample.cin, b.downsample.cout, 1, b.downsample.stride, 0, h);
      h = hh;
    }
  }
  return [...seen.values()];
}

/** Every distinct convolution of `cfg`: forward, input gradient and weight gradient. */
export async function benchConv(
  gpu: Gpu,
  cfg: ResNetConfig,
  batch: number,
  resolution: number,
  o: BenchProgress & { reps?: number; tile?: Partial<GemmTile> } = {},
): Promise<EngineMeasurement[]> {
  const out: EngineMeasurement[] = [];
  const geoms = distinctConvs(cfg, batch, resolution);
  for (const [i, g] of geoms.entries()) {
    const [oh, ow] = convOutSize(g);
    const x = Tensor.from(gpu, [g.nb * g.ih * g.iw * g.cin], rand(g.nb * g.ih * g.iw * g.cin));
    const w = Tensor.from(gpu, [g.kh * g.kw * g.cin * g.cout], rand(g.kh * g.kw * g.cin * g.cout));
    const y = Tensor.from(gpu, [g.nb * oh * ow * g.cout], rand(g.nb * oh * ow * g.cout));
    const dx = Tensor.empty(gpu, [x.numel]), dw = Tensor.empty(gpu, [w.numel]), yo = Tensor.empty(gpu, [y.numel]);
    const shape = { n: g.nb, h: g.ih, w: g.iw, cin: g.cin, cout: g.cout, k: g.kh, stride: g.stride };
    const tag = `${g.kh}x${g.kw}/${g.stride} ${g.cin}->${g.cout} @${g.ih}`;
    o.onStart?.(`conv ${tag}`, i, geoms.length);
    const flops = convFlops(g);
    const fwd = await convForward(gpu, x, w, yo, g, { tile: o.tile });
    out.push(measurement(gpu, "conv", `fwd ${tag}`, shape, await timeCase(gpu, single([fwd]), o.reps ?? 3), flops));
    const dg = await convDgrad(gpu, y, w, dx, g, { tile: o.tile });
    out.push(measurement(gpu, "conv", `dgrad ${tag}`, shape, await timeCase(gpu, single([dg]), o.reps ?? 3), flops));
    const wg = await convWgrad(gpu, x, y, dw, g, { tile: o.tile });
    out.push(
      measurement(gpu, "conv", `wgrad ${tag}`, shape, await timeCase(gpu, single(wg.dispatches), o.reps ?? 3), flops),
    );
    for (const r of out.slice(-3)) o.onRow?.(r);
    for (const t of [x, w, y, dx, dw, yo, ...wg.owned]) t.dispose();
  }
  return out;
}

/** A backbone-only training step (forward, backward into the gradients, SGD) on random data, bound once. */
export async function backboneStep(
  gpu: Gpu,
  cfg: ResNetConfig,
  batch: number,
  resolution: number,
  tile?: Partial<GemmTile>,
): Promise<{ dispatches: Dispatch[]; net: ResNetGraph }> {
  const store = new ParamStore(resnetSpecs(cfg)).allocate(gpu);
  initResNet(store, cfg, 0);
  const net = await buildResNet(gpu, store, cfg, { batch, resolution, train: true, backward: true, tile });
  net.input.upload(rand(net.input.numel));
  net.dC5!.upload(rand(net.dC5!.numel));
  const f = store.flat();
  const sgd = await sgdStep(gpu, f.params, f.grads, f.momentum, f.wdMask, {
    lr: 0.01,
    momentum: 0.9,
    weightDecay: 1e-4,
  });
  return { dispatches: [...net.forward, ...net.backward, sgd], net };
}

/** A whole training step of the backbone alone: forward, backward into the gradients, SGD. */
export async function benchResnetStep(
  gpu: Gpu,
  cfg: ResNetConfig,
  batch: number,
  resolution: number,
  o: { reps?: number; tile?: Partial<GemmTile> } = {},
): Promise<EngineMeasurement[]> {
  const { dispatches, net } = await backboneStep(gpu, cfg, batch, resolution, o.tile);
  const t = await timeCase(gpu, single(dispatches), o.reps ?? 3);
  const flops = net.flops.forward + net.flops.backward;
  const m = measurement(
    gpu,
    "resnet",
    `resnet-${cfg.depth} x${cfg.width} step`,
    {
      depth: cfg.depth,
      width: cfg.width,
      batch,
      resolution,
      dispatches: dispatches.length,
    },
    t,
    flops,
  );
  net.dispose();
  return [m, {
    ...m,
    name: `${m.name} (images/s)`,
    gflops: m.gflops,
    shape: { ...m.shape, imagesPerS: batch / (t.ms / 1000) },
  }];
}
