/**
 * ResNet-18/34/50 (torchvision v1.5: stride on the 3×3 of the bottleneck) with a width multiplier,
 * torchvision parameter names, torchvision's initialisation with the zero-initialised last BN γ of each
 * block, and a graph builder that binds every forward and backward dispatch once for a given batch and
 * resolution.
 *
 * @module
 */
import { type OwnsTensors, TensorArena } from "../gpu/bound.ts";
import type { Gpu } from "../gpu/device.ts";
import type { Dispatch } from "../gpu/kernel.ts";
import { numel, type Tensor } from "../gpu/tensor.ts";
import { bnBackward, bnForwardEval, bnForwardTrain } from "../kernels/batchnorm.ts";
import { convDgrad, convForward, type ConvGeom, convOutSize, convWgrad, type GemmTile } from "../kernels/gemm.ts";
import { maxPool, maxPoolBackward, type PoolGeom, poolOutSize } from "../kernels/pool.ts";
import type { ParamSpec, ParamStore } from "../nn/params.ts";
import { Rng } from "../util/rng.ts";

/** Which ResNet. */
export interface ResNetConfig {
  /** 18, 34 (basic blocks) or 50 (bottleneck blocks). */
  depth: 18 | 34 | 50;
  /** Channel multiplier (1 = torchvision's widths); widths are rounded and at least 1. */
  width: number;
}

const BLOCKS: Record<ResNetConfig["depth"], number[]> = { 18: [2, 2, 2, 2], 34: [3, 4, 6, 3], 50: [3, 4, 6, 3] };

/** Channel counts: stem and the four stages' "planes" (before the bottleneck's ×4 expansion). */
export function resnetWidths(cfg: ResNetConfig): { stem: number; planes: number[]; expansion: number } {
  const w = (c: number) => Math.max(1, Math.round(c * cfg.width));
  return { stem: w(64), planes: [64, 128, 256, 512].map(w), expansion: cfg.depth === 50 ? 4 : 1 };
}

/** Output channels of stage 4 (C5) and stage 3 (C4). */
export function resnetOutChannels(cfg: ResNetConfig): { c4: number; c5: number } {
  const { planes, expansion } = resnetWidths(cfg);
  return { c4: planes[2] * expansion, c5: planes[3] * expansion };
}

/** One convolution and its batch norm, by torchvision name and geometry. */
export interface ConvUnit {
  /** Convolution weight name. */
  conv: string;
  /** Batch-norm name prefix. */
  bn: string;
  /** Input channels. */
  cin: number;
  /** Output channels. */
  cout: number;
  /** Kernel size (square). */
  k: number;
  /** Stride. */
  stride: number;
  /** Zero padding. */
  pad: number;
}

/** One residual block: its units in order and the optional downsampling unit of the shortcut. */
export interface BlockPlan {
  /** Name prefix of the block (e.g. `layer1.0.`). */
  prefix: string;
  /** The block's conv+BN units in order. */
  units: ConvUnit[];
  /** The shortcut's 1×1 conv+BN when the block changes shape, else null. */
  downsample: ConvUnit | null;
}

/** The network as a list of blocks of conv+BN units, with torchvision names. */
export function resnetPlan(cfg: ResNetConfig): { stem: ConvUnit; blocks: BlockPlan[][] } {
  const { stem, planes, expansion } = resnetWidths(cfg);
  const bottleneck = cfg.depth === 50;
  let inplanes = stem;
  const stages: BlockPlan[][] = [];
  BLOCKS[cfg.depth].forEach((n, si) => {
    const p = planes[si], out = p * expansion;
    const blocks: BlockPlan[] = [];
    for (let b = 0; b < n; b++) {
      const stride = b === 0 && si > 0 ? 2 : 1;
      const pre = `layer${si + 1}.${b}`;
      const u = (i: number, cin: number, cout: number, k: number, s: number): ConvUnit => ({
        conv: `${pre}.conv${i}`,
        bn: `${pre}.bn${i}`,
        cin,
        cout,
        k,
        stride: s,
        pad: k === 3 ? 1 : 0,
      });
      const units = bottleneck
        ? [u(1, inplanes, p, 1, 1), u(2, p, p, 3, stride), u(3, p, out, 1, 1)]
        : [u(1, inplanes, p, 3, stride), u(2, p, p, 3, 1)];
      const downsample = stride !== 1 || inplanes !== out
        ? { conv: `${pre}.downsample.0`, bn: `${pre}.downsample.1`, cin: inplanes, cout: out, k: 1, stride, pad: 0 }
        : null;
      blocks.push({ prefix: pre, units, downsample });
      inplanes = out;
    }
    stages.push(blocks);
  });
  return { stem: { conv: "conv1", bn: "bn1", cin: 3, cout: stem, k: 7, stride: 2, pad: 3 }, blocks: stages };
}

function unitSpecs(u: ConvUnit): ParamSpec[] {
  return [
    { name: `${u.conv}.weight`, shape: [u.cout, u.cin, u.k, u.k], kind: "conv" },
    { name: `${u.bn}.weight`, shape: [u.cout], kind: "bn_weight" },
    { name: `${u.bn}.bias`, shape: [u.cout], kind: "bn_bias" },
    { name: `${u.bn}.running_mean`, shape: [u.cout], kind: "running_mean" },
    { name: `${u.bn}.running_var`, shape: [u.cout], kind: "running_var" },
  ];
}

/**
 * Parameter specs in torchvision's state-dict order (without `num_batches_tracked`, which is a host-side
 * counter), optionally with the classifier `fc`.
 */
export function resnetSpecs(cfg: ResNetConfig, prefix = "", fcClasses = 0): ParamSpec[] {
  const plan = resnetPlan(cfg);
  const specs: ParamSpec[] = [...unitSpecs(plan.stem)];
  for (const stage of plan.blocks) {
    for (const b of stage) {
      for (const u of b.units) specs.push(...unitSpecs(u));
      if (b.downsample) specs.push(...unitSpecs(b.downsample));
    }
  }
  if (fcClasses > 0) {
    const c5 = resnetOutChannels(cfg).c5;
    specs.push({ name: "fc.weight", shape: [fcClasses, c5], kind: "linear_weight" });
    specs.push({ name: "fc.bias", shape: [fcClasses], kind: "bias" });
  }
  return specs.map((s) => ({ ...s, name: prefix + s.name }));
}

/** Names of the last BN of every block (zero-initialised γ, as torchvision's zero_init_residual). */
export function lastBnNames(cfg: ResNetConfig, prefix = ""): string[] {
  return resnetPlan(cfg).blocks.flat().map((b) => `${prefix}${b.units[b.units.length - 1].bn}.weight`);
}

/**
 * torchvision's initialisation: convolutions Kaiming-normal (fan_out, ReLU gain), BN γ = 1 (0 for the
 * last BN of each block), β = 0, running mean 0 and variance 1, `fc` uniform ±1/√fan_in.
 */
export function initResNet(store: ParamStore, cfg: ResNetConfig, seed: number, prefix = ""): void {
  const zeroGamma = new Set(lastBnNames(cfg, prefix));
  store.specs.forEach((s, i) => {
    if (!s.name.startsWith(prefix)) return;
    const n = s.shape.reduce((a, b) => a * b, 1);
    const rng = Rng.derive(seed, i);
    let v: Float32Array;
    switch (s.kind) {
      case "conv": {
        const std = Math.sqrt(2 / (s.shape[0] * s.shape[2] * s.shape[3]));
        v = Float32Array.from({ length: n }, () => rng.normal() * std);
        break;
      }
      case "linear_weight":
      case "bias": {
        const fanIn = s.kind === "bias"
          ? store.specs.find((t) => t.name === s.name.replace(/bias$/, "weight"))!.shape[1]
          : s.shape[1];
        const b = 1 / Math.sqrt(fanIn);
        v = Float32Array.from({ length: n }, () => rng.uniform(-b, b));
        break;
      }
      case "bn_weight":
        v = new Float32Array(n).fill(zeroGamma.has(s.name) ? 0 : 1);
        break;
      case "running_var":
        v = new Float32Array(n).fill(1);
        break;
      default:
        v = new Float32Array(n);
    }
    store.set(s.name, v);
  });
}

/** How to build the graph. */
export interface ResNetBuildOptions {
  /** Images per forward. */
  batch: number;
  /** Input side R (images are R×R). */
  resolution: number;
  /** Training-mode BN (batch statistics, running-stat updates) vs eval mode. */
  train: boolean;
  /** Bind the backward pass (parameter gradients into the store's gradient buffer). */
  backward: boolean;
  /** Ghost-BN groups (the batch must divide evenly). */
  bnGroups?: number;
  /** Update running statistics in training mode (default true). */
  updateRunning?: boolean;
  /** Override the GEMM tile choice (benchmarks, tests). */
  tile?: Partial<GemmTile>;
  /** Also expose C3 (stage-2 output). */
  c3?: boolean;
  /** Also expose C4 (stage-3 output). */
  c4?: boolean;
  /**
   * Run only the first `stages` residual stages (default 4). The last stage run is the graph's output:
   * `c5`, `c5Shape` and `dC5` then hold C3 for `stages: 2` (stride 8, what a dense detector wants), and the
   * later stages' parameters get no gradient.
   */
  stages?: 1 | 2 | 3 | 4;
  /** An existing input tensor [B, R, R, 3] (NHWC) to read from, e.g. shared between encoders. */
  input?: Tensor;
  /**
   * The `activations` of another graph of the same configuration that hold nothing live while this one runs
   * (the online backbone's, while the momentum encoder's views run before it): this graph writes its
   * activations into them (the i-th into the i-th, when the sizes agree) instead of its own buffers. Only for a
   * graph without backward.
   */
  reuse?: readonly Tensor[];
}

/** A bound ResNet: input, outputs, and the dispatch lists of one forward and one backward. */
export interface ResNetGraph extends OwnsTensors {
  /** Input images [B, R, R, 3] (NHWC). */
  input: Tensor;
  /**
   * The buffers the graph made for its activations (every conv, BN and pool output; not the input), with
   * backward also for their gradients, in the order they were made: what another graph can `reuse`.
   */
  activations: Tensor[];
  /** The output: C5, or the last stage run when `stages` < 4. */
  c5: Tensor;
  /** Shape of `c5` [B, h, w, C] (NHWC). */
  c5Shape: [number, number, number, number];
  /** C3 (stage-2 output) when `c3` was asked for, else null. */
  c3: Tensor | null;
  /** C4 (stage-3 output) when `c4` was asked for, else null. */
  c4: Tensor | null;
  /** Gradient of C5, written by whatever consumes C5 before `backward` runs. */
  dC5: Tensor | null;
  /** The forward's dispatches, in order. */
  forward: Dispatch[];
  /** The backward's dispatches (empty without `backward`). */
  backward: Dispatch[];
  /** Multiply-add FLOPs of one forward (×2), and of one backward (≈ 2× forward). */
  flops: { forward: number; backward: number };
  /** Frees every tensor in `owned` (activations, saved statistics, scratch). */
  dispose(): void;
}

interface Act {
  t: Tensor;
  h: number;
  w: number;
  c: number;
}

/** Binds the forward (and backward) of `cfg` on the parameters of `store` (names with `prefix`). */
export async function buildResNet(
  gpu: Gpu,
  store: ParamStore,
  cfg: ResNetConfig,
  o: ResNetBuildOptions,
  prefix = "",
): Promise<ResNetGraph> {
  const B = o.batch, groups = o.bnGroups ?? 1;
  const plan = resnetPlan(cfg);
  const arena = new TensorArena(gpu);
  const fwd: Dispatch[] = [];
  const bwd: Dispatch[] = [];
  let flopsF = 0, flopsB = 0;
  if (o.reuse && o.backward) throw new Error("resnet: reused activations are for a graph without backward");
  const activations: Tensor[] = [];
  const alloc = (shape: number[], name: string) => {
    const r = o.reuse?.[activations.length];
    const t = r && r.dtype === "f32" && r.numel === numel(shape) ? r : arena.alloc(shape, name);
    activations.push(t);
    return t;
  };
  // The backward is bound in the order it runs, so a gradient buffer whose last reader has been bound is free
  // for any gradient bound later: `release` hands it back, and `gradAlloc` takes a free one of the same size
  // before making a new one. The activation gradients then need a few buffers per size, not one per layer.
  // dC5 is the graph's own (its writer and readers are outside), so it is never handed on.
  const spare = new Map<number, Tensor[]>();
  let dC5: Tensor | null = null;
  const gradAlloc = (shape: number[], name: string) => spare.get(numel(shape))?.pop() ?? alloc(shape, name);
  const release = (t: Tensor) => {
    if (t !== dC5) spare.set(t.numel, [...(spare.get(t.numel) ?? []), t]);
  };
  const P = (n: string) => store.value(prefix + n);
  const G = (n: string) => store.grad(prefix + n);

  /** conv → BN (→ + residual) (→ ReLU); returns the output and a backward builder. */
  async function unit(
    x: Act,
    u: ConvUnit,
    relu: boolean,
    residual?: Tensor,
  ): Promise<
    {
      y: Act;
      back: (dy: Tensor, opts: { gradOut?: Tensor; addTo?: Tensor; needDx: boolean }) => Promise<Tensor | null>;
    }
  > {
    const g: ConvGeom = {
      nb: B,
      ih: x.h,
      iw: x.w,
      cin: x.c,
      cout: u.cout,
      kh: u.k,
      kw: u.k,
      stride: u.stride,
      pad: u.pad,
    };
    const [oh, ow] = convOutSize(g);
    const rows = B * oh * ow;
    const h = alloc([rows, u.cout], `${prefix}${u.conv} out`);
    const y = alloc([rows, u.cout], `${prefix}${u.bn} out`);
    fwd.push(await convForward(gpu, x.t, P(`${u.conv}.weight`), h, g, { tile: o.tile }));
    const s = { rows, c: u.cout, groups, eps: 1e-5, momentum: 0.1 };
    const bnArgs = [
      P(`${u.bn}.weight`),
      P(`${u.bn}.bias`),
      P(`${u.bn}.running_mean`),
      P(`${u.bn}.running_var`),
    ] as const;
    const bn = arena.adopt(
      o.train
        ? await bnForwardTrain(gpu, h, y, ...bnArgs, s, { residual, relu, updateRunning: o.updateRunning })
        : await bnForwardEval(gpu, h, y, ...bnArgs, s, { residual, relu }),
    );
    fwd.push(...bn.dispatches);
    const flops = 2 * rows * u.cout * u.k * u.k * x.c;
    flopsF += flops;
    // dy stays the caller's to release (it may be read again, by a shortcut); dh is released here
    const back = async (dy: Tensor, opts: { gradOut?: Tensor; addTo?: Tensor; needDx: boolean }) => {
      const dh = gradAlloc([rows, u.cout], `grad ${prefix}${u.conv} out`);
      const bb = await bnBackward(
        gpu,
        h,
        y,
        dy,
        bn.saved,
        P(`${u.bn}.weight`),
        dh,
        G(`${u.bn}.weight`),
        G(`${u.bn}.bias`),
        s,
        {
          relu,
          gradOut: opts.gradOut,
        },
      );
      bwd.push(...arena.adopt(bb).dispatches);
      const wg = await convWgrad(gpu, x.t, dh, G(`${u.conv}.weight`), g, { tile: o.tile });
      bwd.push(...arena.adopt(wg).dispatches);
      flopsB += flops;
      if (!opts.needDx) return release(dh), null;
      const dx = gradAlloc([B * x.h * x.w, x.c], `grad ${prefix}${u.conv} in`);
      bwd.push(await convDgrad(gpu, dh, P(`${u.conv}.weight`), dx, g, { residual: opts.addTo, tile: o.tile }));
      flopsB += flops;
      release(dh);
      return dx;
    };
    return { y: { t: y, h: oh, w: ow, c: u.cout }, back };
  }

  // stem
  const input = o.input ?? arena.alloc([B, o.resolution, o.resolution, 3], `${prefix}input`);
  if (input.numel !== B * o.resolution * o.resolution * 3) throw new Error("resnet: input tensor has the wrong size");
  const x0: Act = { t: input, h: o.resolution, w: o.resolution, c: 3 };
  const stem = await unit(x0, plan.stem, true);
  const pg: PoolGeom = { nb: B, ih: stem.y.h, iw: stem.y.w, c: stem.y.c, k: 3, stride: 2, pad: 1 };
  const [ph, pw] = poolOutSize(pg);
  const pooled = alloc([B * ph * pw, stem.y.c], `${prefix}maxpool out`);
  const arg = arena.alloc([B * ph * pw * stem.y.c], `${prefix}maxpool argmax`, "i32");
  fwd.push(await maxPool(gpu, stem.y.t, pooled, arg, pg));
  let cur: Act = { t: pooled, h: ph, w: pw, c: stem.y.c };
  let c3: Tensor | null = null, c4: Tensor | null = null;

  // blocks: forward now, backward builders stacked
  type BlockBack = (dOut: Tensor, needDx: boolean) => Promise<Tensor | null>;
  const blockBacks: BlockBack[] = [];
  const stages = o.stages ?? 4;
  for (const [si, stage] of plan.blocks.slice(0, stages).entries()) {
    for (const b of stage) {
      const x = cur;
      const mains: Awaited<ReturnType<typeof unit>>[] = [];
      let a = x;
      for (const u of b.units.slice(0, -1)) {
        const r = await unit(a, u, true);
        mains.push(r);
        a = r.y;
      }
      const ds = b.downsample ? await unit(x, b.downsample, false) : null;
      const shortcut = ds ? ds.y.t : x.t;
      const last = await unit(a, b.units[b.units.length - 1], true, shortcut);
      cur = last.y;
      blockBacks.push(async (dOut, needDx) => {
        // the gradient reaching the shortcut is the output gradient masked by the final ReLU
        const gSc = gradAlloc([B * last.y.h * last.y.w, last.y.c], `grad ${prefix}${b.prefix} shortcut`);
        let d = (await last.back(dOut, { gradOut: gSc, needDx: true }))!;
        release(dOut); // read only by the last unit's BN backward
        for (const m of [...mains].reverse().slice(0, -1)) {
          const next = (await m.back(d, { needDx: true }))!;
          release(d);
          d = next;
        }
        let addTo: Tensor | null = gSc;
        if (ds) {
          addTo = await ds.back(gSc, { needDx: needDx });
          release(gSc);
        }
        const dx = await mains[0].back(d, { needDx, addTo: needDx ? addTo! : undefined });
        release(d);
        if (addTo) release(addTo); // read by the first unit's input gradient, or not needed
        return dx;
      });
    }
    if (si === 1 && o.c3) c3 = cur.t;
    if (si === 2 && o.c4) c4 = cur.t;
  }

  if (o.backward) {
    dC5 = alloc([B * cur.h * cur.w, cur.c], `${prefix}grad C5`);
    let d: Tensor = dC5;
    for (let i = blockBacks.length - 1; i >= 0; i--) d = (await blockBacks[i](d, true))!;
    const dStem = gradAlloc([B * stem.y.h * stem.y.w, stem.y.c], `grad ${prefix}stem out`);
    bwd.push(await maxPoolBackward(gpu, d, arg, dStem, pg));
    release(d);
    await stem.back(dStem, { needDx: false });
  }

  return {
    input,
    activations,
    c5: cur.t,
    c5Shape: [B, cur.h, cur.w, cur.c],
    c3,
    c4,
    dC5,
    forward: fwd,
    backward: bwd,
    flops: { forward: flopsF, backward: flopsB },
    owned: arena.owned,
    dispose() {
      arena.dispose();
    },
  };
}
