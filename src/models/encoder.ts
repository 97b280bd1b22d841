/**
 * A PLRC encoder: ResNet backbone (names `backbone.*`, torchvision's below the prefix) plus the point and
 * DINO heads. The online and momentum encoders are two {@link ParamStore}s built from the same specs, so
 * their flat buffers share one layout and the EMA is a single kernel.
 *
 * @module
 */
import type { Gpu } from "../gpu/device.ts";
import type { Dispatch } from "../gpu/kernel.ts";
import type { Tensor } from "../gpu/tensor.ts";
import { ParamStore } from "../nn/params.ts";
import { buildHeads, type HeadsConfig, type HeadsGraph, headSpecs, initHeads } from "./heads.ts";
import {
  buildResNet,
  initResNet,
  type ResNetConfig,
  type ResNetGraph,
  resnetOutChannels,
  resnetSpecs,
} from "./resnet.ts";

/** Backbone and head sizes. */
export interface EncoderConfig {
  /** The backbone's depth and width. */
  backbone: ResNetConfig;
  /** Head sizes (the input width comes from the backbone). */
  heads: Omit<HeadsConfig, "inDim">;
}

/** Prefix of the backbone's parameters inside an encoder store. */
export const BACKBONE_PREFIX = "backbone.";

/** The full head config (input width from the backbone). */
export function headsConfig(c: EncoderConfig): HeadsConfig {
  return { ...c.heads, inDim: resnetOutChannels(c.backbone).c5 };
}

/** A parameter store for one encoder, allocated and initialised (torchvision / release init). */
export function createEncoderStore(gpu: Gpu, c: EncoderConfig, seed: number): ParamStore {
  const store = new ParamStore([...resnetSpecs(c.backbone, BACKBONE_PREFIX), ...headSpecs(headsConfig(c))]).allocate(
    gpu,
  );
  initResNet(store, c.backbone, seed, BACKBONE_PREFIX);
  initHeads(store, seed);
  return store;
}

/** One bound forward (and optional backward) of an encoder on one view. */
export interface EncoderGraph {
  /** The bound backbone. */
  backbone: ResNetGraph;
  /** The bound heads on C5. */
  heads: HeadsGraph;
  /** The view's images [B, R, R, 3] (NHWC). */
  input: Tensor;
  /** C5 spatial size. */
  h: number;
  /** C5 spatial width. */
  w: number;
  /** Backbone then heads forward. */
  forward: Dispatch[];
  /** Heads then backbone backward. */
  backward: Dispatch[];
  /** Frees the graphs' tensors. */
  dispose(): void;
}

/**
 * Binds an encoder on a batch of `batch` R×R views (NHWC input). `reuseBackboneOf`: a graph of the same
 * configuration whose backbone buffers hold nothing live while this forward-only graph runs (one that has
 * finished, or one that runs only later): this graph's backbone writes its activations into those buffers
 * (the heads' outputs, which are read later, stay its own).
 */
export async function buildEncoder(
  gpu: Gpu,
  store: ParamStore,
  c: EncoderConfig,
  o: {
    batch: number;
    resolution: number;
    backward: boolean;
    bnGroups: number;
    updateRunning?: boolean;
    reuseBackboneOf?: EncoderGraph;
  },
): Promise<EncoderGraph> {
  const backbone = await buildResNet(gpu, store, c.backbone, {
    batch: o.batch,
    resolution: o.resolution,
    train: true,
    backward: o.backward,
    bnGroups: o.bnGroups,
    updateRunning: o.updateRunning,
    reuse: o.reuseBackboneOf?.backbone.activations,
  }, BACKBONE_PREFIX);
  const [, h, w] = backbone.c5Shape;
  const heads = await buildHeads(gpu, store, headsConfig(c), backbone.c5, {
    rows: o.batch * h * w,
    train: true,
    backward: o.backward,
    bnGroups: o.bnGroups,
    updateRunning: o.updateRunning,
    dC5: backbone.dC5 ?? undefined,
  });
  return {
    backbone,
    heads,
    input: backbone.input,
    h,
    w,
    forward: [...backbone.forward, ...heads.forward],
    backward: [...heads.backward, ...backbone.backward],
    dispose() {
      heads.dispose();
      backbone.dispose();
    },
  };
}
