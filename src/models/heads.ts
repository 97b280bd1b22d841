/**
 * PLRC's per-location heads on C5 rows [N = B·h·w, C]:
 *
 * - point head: Linear(C→hidden) → ReLU → Linear(hidden→D) (no BN), output y1 [N, D];
 * - DINO head: Linear → BN1d → ReLU → Linear → BN1d → ReLU → Linear(→bottleneck), L2-normalised to z, then
 *   a weight-normalised prototype layer (gain fixed at 1: rows of v normalised) giving logits [N, K].
 *
 * Linear weights keep PyTorch's [out, in] layout (y = x·Wᵀ + b). Forward and backward are bound once;
 * the backward takes the loss gradients dY1, dZ and dLogits and writes the gradient of C5.
 *
 * @module
 */
import { type OwnsTensors, TensorArena } from "../gpu/bound.ts";
import type { Gpu } from "../gpu/device.ts";
import type { Dispatch } from "../gpu/kernel.ts";
import type { Tensor } from "../gpu/tensor.ts";
import { bnBackward, bnForwardEval, bnForwardTrain } from "../kernels/batchnorm.ts";
import { reluBackward } from "../kernels/elementwise.ts";
import { matmul, matmulTA } from "../kernels/gemm.ts";
import { reduceAxis } from "../kernels/reduce.ts";
import { l2Normalize, l2NormalizeBackward } from "../kernels/rows.ts";
import type { ParamSpec, ParamStore } from "../nn/params.ts";
import { Rng } from "../util/rng.ts";

/** Head sizes. */
export interface HeadsConfig {
  /** C5 channels. */
  inDim: number;
  /** Hidden width of the point head. */
  pointHidden: number;
  /** Point embedding size (128 in the paper). */
  pointDim: number;
  /** Hidden width of the DINO head. */
  dinoHidden: number;
  /** L2-normalised bottleneck (256). */
  bottleneck: number;
  /** Prototypes K (4096). */
  prototypes: number;
}

const lin = (name: string, out: number, inp: number, bias = true): ParamSpec[] => [
  { name: `${name}.weight`, shape: [out, inp], kind: "linear_weight" },
  ...(bias ? [{ name: `${name}.bias`, shape: [out], kind: "bias" as const }] : []),
];
const bn1d = (name: string, c: number): ParamSpec[] => [
  { name: `${name}.weight`, shape: [c], kind: "bn_weight" },
  { name: `${name}.bias`, shape: [c], kind: "bn_bias" },
  { name: `${name}.running_mean`, shape: [c], kind: "running_mean" },
  { name: `${name}.running_var`, shape: [c], kind: "running_var" },
];

/** Parameter specs of both heads (names as nn.Sequential indices would give). */
export function headSpecs(c: HeadsConfig, prefix = ""): ParamSpec[] {
  const specs: ParamSpec[] = [
    ...lin("point_head.0", c.pointHidden, c.inDim),
    ...lin("point_head.2", c.pointDim, c.pointHidden),
    ...lin("dino_head.mlp.0", c.dinoHidden, c.inDim),
    ...bn1d("dino_head.mlp.1", c.dinoHidden),
    ...lin("dino_head.mlp.3", c.dinoHidden, c.dinoHidden),
    ...bn1d("dino_head.mlp.4", c.dinoHidden),
    ...lin("dino_head.mlp.6", c.bottleneck, c.dinoHidden),
    { name: "dino_head.last_layer.weight_v", shape: [c.prototypes, c.bottleneck], kind: "linear_weight" },
  ];
  return specs.map((s) => ({ ...s, name: prefix + s.name }));
}

/**
 * Initialisation as the release: point head PyTorch's default Linear init (U(±1/√fan_in)); DINO MLP
 * truncated normal (std 0.02, clipped at ±0.04... i.e. ±2 std) with zero biases; prototype v default Linear
 * init; BN γ 1, β 0, running stats 0/1.
 */
export function initHeads(store: ParamStore, seed: number, prefix = ""): void {
  store.specs.forEach((s, i) => {
    if (!s.name.startsWith(prefix)) return;
    const local = s.name.slice(prefix.length);
    if (!local.startsWith("point_head") && !local.startsWith("dino_head")) return;
    const n = s.shape.reduce((a, b) => a * b, 1);
    const rng = Rng.derive(seed, 100000 + i);
    const dino = local.startsWith("dino_head.mlp");
    let v: Float32Array;
    if (s.kind === "linear_weight" && dino) {
      v = Float32Array.from({ length: n }, () => {
        let x;
        do x = rng.normal(); while (Math.abs(x) > 2);
        return 0.02 * x;
      });
    } else if (s.kind === "linear_weight" || (s.kind === "bias" && !dino)) {
      const fanIn = s.kind === "bias"
        ? store.specs.find((t) => t.name === s.name.replace(/bias$/, "weight"))!.shape[1]
        : s.shape[1];
      const b = 1 / Math.sqrt(fanIn);
      v = Float32Array.from({ length: n }, () => rng.uniform(-b, b));
    } else if (s.kind === "bn_weight" || s.kind === "running_var") {
      v = new Float32Array(n).fill(1);
    } else {
      v = new Float32Array(n);
    }
    store.set(s.name, v);
  });
}

/** How to bind the heads. */
export interface HeadsBuildOptions {
  /** Rows N = B·h·w. */
  rows: number;
  /** Training-mode BN (batch statistics) vs eval mode. */
  train: boolean;
  /** Bind the backward pass. */
  backward: boolean;
  /** Ghost-BN groups (rows must divide evenly). */
  bnGroups?: number;
  /** Update running statistics in training mode (default true). */
  updateRunning?: boolean;
  /** Where the backward writes d C5 (the backbone graph's `dC5`). */
  dC5?: Tensor;
}

/** Bound heads: outputs, loss-gradient inputs, dispatch lists. */
export interface HeadsGraph extends OwnsTensors {
  /** Point head output [N, D]. */
  y1: Tensor;
  /** L2-normalised bottleneck [N, bottleneck]. */
  z: Tensor;
  /** Prototype logits [N, K]. */
  logits: Tensor;
  /** Gradients of the outputs, written by the losses before `backward` runs. */
  dY1: Tensor | null;
  /** Gradient of `z`. */
  dZ: Tensor | null;
  /** Gradient of `logits`. */
  dLogits: Tensor | null;
  /** The forward's dispatches, in order. */
  forward: Dispatch[];
  /** The backward's dispatches (empty without `backward`). */
  backward: Dispatch[];
  /** Frees every tensor in `owned`. */
  dispose(): void;
}

/** Binds both heads on `c5` rows [N, inDim]. */
export async function buildHeads(
  gpu: Gpu,
  store: ParamStore,
  c: HeadsConfig,
  c5: Tensor,
  o: HeadsBuildOptions,
  prefix = "",
): Promise<HeadsGraph> {
  const N = o.rows, groups = o.bnGroups ?? 1;
  const arena = new TensorArena(gpu);
  const fwd: Dispatch[] = [], bwd: Dispatch[] = [];
  const alloc = (shape: number[], name: string) => arena.alloc(shape, prefix + name);
  const P = (n: string) => store.value(prefix + n);
  const G = (n: string) => store.grad(prefix + n);
  if (c5.numel !== N * c.inDim) throw new Error(`heads: C5 must be [${N}, ${c.inDim}]`);

  /** y = x·Wᵀ + b (optionally ReLU). */
  const linear = async (x: Tensor, name: string, inD: number, outD: number, relu = false) => {
    const y = alloc([N, outD], `${name} out`);
    fwd.push(
      await matmul(gpu, x, P(`${name}.weight`), y, N, inD, outD, { transB: true, bias: P(`${name}.bias`), relu }),
    );
    return y;
  };
  /** Backward of a linear layer: dW, db into the store; returns dX (optionally added to `addTo`). */
  const linearBack = async (x: Tensor, dy: Tensor, name: string, inD: number, outD: number, addTo?: Tensor) => {
    const dw = arena.adopt(await matmulTA(gpu, dy, x, G(`${name}.weight`), N, outD, inD));
    const db = arena.adopt(await reduceAxis(gpu, dy, 0, "sum", G(`${name}.bias`)));
    bwd.push(...dw.dispatches, ...db.dispatches);
    const dx = alloc([N, inD], `${name} grad in`);
    bwd.push(await matmul(gpu, dy, P(`${name}.weight`), dx, N, outD, inD, { residual: addTo }));
    return dx;
  };
  /** BN1d (+ReLU) on [N, C]. */
  const bn = async (x: Tensor, name: string, ch: number) => {
    const y = alloc([N, ch], `${name} out`);
    const s = { rows: N, c: ch, groups, eps: 1e-5, momentum: 0.1 };
    const args = [P(`${name}.weight`), P(`${name}.bias`), P(`${name}.running_mean`), P(`${name}.running_var`)] as const;
    const f = arena.adopt(
      o.train
        ? await bnForwardTrain(gpu, x, y, ...args, s, { relu: true, updateRunning: o.updateRunning })
        : await bnForwardEval(gpu, x, y, ...args, s, { relu: true }),
    );
    fwd.push(...f.dispatches);
    const back = async (dy: Tensor) => {
      const dx = alloc([N, ch], `${name} grad in`);
      const b = await bnBackward(
        gpu,
        x,
        y,
        dy,
        f.saved,
        P(`${name}.weight`),
        dx,
        G(`${name}.weight`),
        G(`${name}.bias`),
        s,
        {
          relu: true,
        },
      );
      bwd.push(...arena.adopt(b).dispatches);
      return dx;
    };
    return { y, back };
  };

  // ---- forward ----
  const h1 = await linear(c5, "point_head.0", c.inDim, c.pointHidden, true);
  const y1 = await linear(h1, "point_head.2", c.pointHidden, c.pointDim);
  const a1 = await linear(c5, "dino_head.mlp.0", c.inDim, c.dinoHidden);
  const bn1 = await bn(a1, "dino_head.mlp.1", c.dinoHidden);
  const a2 = await linear(bn1.y, "dino_head.mlp.3", c.dinoHidden, c.dinoHidden);
  const bn2 = await bn(a2, "dino_head.mlp.4", c.dinoHidden);
  const zr = await linear(bn2.y, "dino_head.mlp.6", c.dinoHidden, c.bottleneck);
  const z = alloc([N, c.bottleneck], "z"), zNorm = alloc([N], "z norm");
  fwd.push(await l2Normalize(gpu, zr, z, zNorm));
  const wn = alloc([c.prototypes, c.bottleneck], "prototypes normalised"), vNorm = alloc([c.prototypes], "v norm");
  fwd.push(await l2Normalize(gpu, P("dino_head.last_layer.weight_v"), wn, vNorm));
  const logits = alloc([N, c.prototypes], "logits");
  fwd.push(await matmul(gpu, z, wn, logits, N, c.bottleneck, c.prototypes, { transB: true }));

  let dY1: Tensor | null = null, dZ: Tensor | null = null, dLogits: Tensor | null = null;
  if (o.backward) {
    if (!o.dC5) throw new Error("heads: backward needs the backbone's dC5 tensor");
    dY1 = alloc([N, c.pointDim], "grad y1");
    dZ = alloc([N, c.bottleneck], "grad z");
    dLogits = alloc([N, c.prototypes], "grad logits");
    // prototype layer: logits = z·Wnᵀ, Wn = rows of v normalised (gain 1, frozen)
    const dWn = alloc([c.prototypes, c.bottleneck], "grad prototypes normalised");
    const dwn = arena.adopt(await matmulTA(gpu, dLogits, z, dWn, N, c.prototypes, c.bottleneck));
    bwd.push(...dwn.dispatches);
    bwd.push(await l2NormalizeBackward(gpu, wn, vNorm, dWn, G("dino_head.last_layer.weight_v")));
    const dzTotal = alloc([N, c.bottleneck], "grad z total");
    bwd.push(await matmul(gpu, dLogits, wn, dzTotal, N, c.prototypes, c.bottleneck, { residual: dZ }));
    const dzr = alloc([N, c.bottleneck], "grad z raw");
    bwd.push(await l2NormalizeBackward(gpu, z, zNorm, dzTotal, dzr));
    const dBn2 = await linearBack(bn2.y, dzr, "dino_head.mlp.6", c.dinoHidden, c.bottleneck);
    const dA2 = await bn2.back(dBn2);
    const dBn1 = await linearBack(bn1.y, dA2, "dino_head.mlp.3", c.dinoHidden, c.dinoHidden);
    const dA1 = await bn1.back(dBn1);
    // point head, then the DINO head's first layer adds its dC5 on top
    const dH1 = await linearBack(h1, dY1, "point_head.2", c.pointHidden, c.pointDim);
    const dH1m = alloc([N, c.pointHidden], "grad point hidden pre-relu");
    bwd.push(await reluBackward(gpu, h1, dH1, dH1m));
    const dC5Point = await linearBack(c5, dH1m, "point_head.0", c.inDim, c.pointHidden);
    const dw0 = arena.adopt(await matmulTA(gpu, dA1, c5, G("dino_head.mlp.0.weight"), N, c.dinoHidden, c.inDim));
    const db0 = arena.adopt(await reduceAxis(gpu, dA1, 0, "sum", G("dino_head.mlp.0.bias")));
    bwd.push(...dw0.dispatches, ...db0.dispatches);
    bwd.push(
      await matmul(gpu, dA1, P("dino_head.mlp.0.weight"), o.dC5, N, c.dinoHidden, c.inDim, { residual: dC5Point }),
    );
  }
  return {
    y1,
    z,
    logits,
    dY1,
    dZ,
    dLogits,
    forward: fwd,
    backward: bwd,
    owned: arena.owned,
    dispose() {
      arena.dispose();
    },
  };
}
