/**
 * A whole encoder (backbone and heads) for inspection: from a training checkpoint (one of its stores,
 * online or momentum, with the configuration it was trained with) or freshly initialised ("random").
 *
 * @module
 */
import { parse as parseYaml } from "npm:yaml@^2.8.1";
import type { Gpu } from "../gpu/device.ts";
import { UsageError } from "../util/errors.ts";
import { BACKBONE_PREFIX, createEncoderStore, type EncoderConfig, headsConfig } from "../models/encoder.ts";
import { headSpecs } from "../models/heads.ts";
import { resnetSpecs } from "../models/resnet.ts";
import { ParamStore } from "../nn/params.ts";
import { readCheckpointFile } from "../train/checkpoint.ts";
import { deriveConfig, type PlrcConfig, resolveConfig } from "../train/config/mod.ts";
import { stepConfigOf } from "../train/plan.ts";

/** A loaded encoder: its configuration and a store holding `backbone.*` and the heads. */
export interface LoadedEncoder {
  /** The configuration saved with the checkpoint, with the `sets` laid over it. */
  cfg: PlrcConfig;
  /** Backbone and head sizes. */
  encoder: EncoderConfig;
  /** The backbone's and heads' weights. */
  store: ParamStore;
  /** Name prefix of the backbone inside `store`. */
  prefix: string;
}

/**
 * Loads `ckpt` ("random": initialised from `cfg.seed` as training starts) with `sets` laid over its saved
 * configuration. Problems with the file are {@link UsageError}s naming it (and the entry).
 */
export async function loadEncoder(
  gpu: Gpu,
  ckpt: string,
  o: { sets?: string[]; store?: "online" | "momentum"; help?: string } = {},
): Promise<LoadedEncoder> {
  const which = o.store ?? "online";
  if (ckpt === "random") {
    const cfg = resolveConfig({ sets: o.sets ?? [] });
    const encoder = stepConfigOf(cfg, deriveConfig(cfg, { datasetSize: 1 })).encoder;
    return { cfg, encoder, store: createEncoderStore(gpu, encoder, cfg.seed), prefix: BACKBONE_PREFIX };
  }
  const file = await readCheckpointFile(ckpt).catch((e) => {
    throw new UsageError(`cannot use --ckpt ${ckpt}: ${(e as Error).message}`, o.help);
  });
  const text = file.meta.config;
  const saved = typeof text === "string" ? parseYaml(text) : text;
  const cfg = resolveConfig({ file: saved as never, fileName: `${ckpt} (config)`, sets: o.sets ?? [] });
  const encoder = stepConfigOf(cfg, deriveConfig(cfg, { datasetSize: 1 })).encoder;
  const store = new ParamStore([
    ...resnetSpecs(encoder.backbone, BACKBONE_PREFIX),
    ...headSpecs(headsConfig(encoder)),
  ]).allocate(gpu);
  for (const s of store.specs) {
    const kind = s.kind === "running_mean" || s.kind === "running_var" ? "stats" : "params";
    const t = file.tensors.get(`${kind}/${which}/${s.name}`);
    if (!t) throw new UsageError(`${ckpt} has no ${kind}/${which}/${s.name}`, o.help);
    store.set(s.name, new Float32Array(t.bytes.buffer, t.bytes.byteOffset, t.bytes.byteLength / 4));
  }
  return { cfg, encoder, store, prefix: BACKBONE_PREFIX };
}

/** The point head's weights read back to the host (PyTorch layout). */
export async function pointHeadWeights(
  store: ParamStore,
): Promise<{ w1: Float32Array; b1: Float32Array; w2: Float32Array; b2: Float32Array }> {
  const [w1, b1, w2, b2] = await Promise.all(
    ["point_head.0.weight", "point_head.0.bias", "point_head.2.weight", "point_head.2.bias"].map((n) => store.get(n)),
  );
  return { w1, b1, w2, b2 };
}
