/**
 * `plrc eval`: transfer protocols on a checkpoint's backbone (or random weights). Implemented so far:
 * `knn` on the built-in scenes (region features, cosine k-NN against a labelled bank).
 *
 * @module
 */
import { parse as parseYaml } from "yaml";
import { getGpu } from "../gpu/device.ts";
import { SceneGenerator } from "../data/scenes.ts";
import { knnEval, type LabelledImage } from "../eval/knn.ts";
import { linearEval } from "../eval/linear.ts";
import { initResNet, resnetSpecs } from "../models/resnet.ts";
import { ParamStore } from "../nn/params.ts";
import { readCheckpointFile } from "../train/checkpoint.ts";
import { dataConfigOf, type PlrcConfig, resnetConfigOf, resolveConfig } from "../train/config.ts";
import { parseOptions, UsageError } from "./usage.ts";

export const EVAL_HELP = `plrc eval --ckpt PATH|random --protocol knn|linear [--encoder online|momentum] [--set k=v ...]
          [--train N] [--test N] [--k K] [--json]

Evaluates a pre-trained backbone on the built-in scenes (held-out scenes: a different seed from training).

  --ckpt PATH       a training checkpoint (checkpoints/last.safetensors), or "random" for an untrained
                    backbone of the configuration (--set model.depth=..., model.width=...)
  --protocol knn    region features (C5 averaged over each object's mask) classified by cosine k-NN
                    against a bank from other scenes; reports accuracy and the majority-class baseline
  --protocol linear per-pixel softmax regression on frozen, bilinearly upsampled features, trained on the
                    training scenes' class maps; mean IoU on the held-out scenes
  --train N         scenes in the bank / probe training set (default 200); --test N held out (default 100)
  --k K             neighbours (default 5)
  --level c4|c5     feature level (default c4: stride 16, so small objects keep a cell)
  --json            one JSON object

The detect protocol is not implemented yet.`;

/** Runs `plrc eval`. */
export async function evalCommand(argv: string[]): Promise<number> {
  const { values } = parseOptions(argv, {
    ckpt: { type: "string" },
    protocol: { type: "string" },
    encoder: { type: "string" },
    set: { type: "string", multiple: true },
    train: { type: "string" },
    test: { type: "string" },
    k: { type: "string" },
    level: { type: "string" },
    json: { type: "boolean" },
    help: { type: "boolean", short: "h" },
  }, EVAL_HELP);
  if (values.help) return console.log(EVAL_HELP), 0;
  if (!values.ckpt) throw new UsageError("--ckpt PATH|random is required", EVAL_HELP);
  const protocol = values.protocol ?? "knn";
  if (protocol !== "knn" && protocol !== "linear") {
    throw new UsageError(`--protocol ${protocol} is not implemented yet; allowed: knn, linear`, EVAL_HELP);
  }
  const encoder = values.encoder ?? "online";
  if (encoder !== "online" && encoder !== "momentum") {
    throw new UsageError(`--encoder must be online or momentum, got "${encoder}"`, EVAL_HELP);
  }
  const int = (name: string, v: string | undefined, def: number) => {
    const n = v === undefined ? def : Number(v);
    if (!Number.isInteger(n) || n < 1) {
      throw new UsageError(`--${name} must be a positive integer, got "${v}"`, EVAL_HELP);
    }
    return n;
  };
  const level = values.level ?? "c4";
  if (level !== "c4" && level !== "c5") throw new UsageError(`--level must be c4 or c5, got "${level}"`, EVAL_HELP);
  const nTrain = int("train", values.train, 200), nTest = int("test", values.test, 100), k = int("k", values.k, 5);

  let cfg: PlrcConfig;
  let ckpt: Awaited<ReturnType<typeof readCheckpointFile>> | null = null;
  if (values.ckpt === "random") {
    cfg = resolveConfig({ sets: values.set ?? [] });
  } else {
    ckpt = await readCheckpointFile(values.ckpt).catch((e) => {
      throw new UsageError(`cannot use --ckpt ${values.ckpt}: ${(e as Error).message}`, EVAL_HELP);
    });
    const text = ckpt.meta.config;
    const file = typeof text === "string" ? parseYaml(text) : text;
    cfg = resolveConfig({ file: file as never, fileName: `${values.ckpt} (config)`, sets: values.set ?? [] });
  }
  const model = resnetConfigOf(cfg);
  const gpu = await getGpu();
  const store = new ParamStore(resnetSpecs(model)).allocate(gpu);
  if (ckpt) {
    for (const s of store.specs) {
      const kind = s.kind === "running_mean" || s.kind === "running_var" ? "stats" : "params";
      const t = ckpt.tensors.get(`${kind}/${encoder}/backbone.${s.name}`);
      if (!t) throw new UsageError(`${values.ckpt} has no ${kind}/${encoder}/backbone.${s.name}`, EVAL_HELP);
      store.set(s.name, new Float32Array(t.bytes.buffer, t.bytes.byteOffset, t.bytes.byteLength / 4));
    }
  } else {
    initResNet(store, model, cfg.seed);
  }
  const R = cfg.data.resolution;
  const gen = new SceneGenerator(cfg.data.scenes.seed + 1_000_003, { size: R, classes: cfg.data.scenes.classes });
  const scene = (i: number): LabelledImage & { classes: import("../data/image.ts").LabelMap } => {
    const s = gen.scene(i);
    const classOf: number[] = [];
    for (const inst of s.instances) classOf[inst.id] = inst.classId;
    return { image: s.image, instances: s.instanceMap, classOf, classes: s.classMap };
  };
  const train = Array.from({ length: nTrain }, (_, i) => scene(i));
  const test = Array.from({ length: nTest }, (_, i) => scene(nTrain + i));
  const data = dataConfigOf(cfg);
  const meta = { ckpt: values.ckpt, encoder, model, resolution: R, adapter: gpu.summary.description };
  if (protocol === "linear") {
    const r = await linearEval(gpu, store, model, train, test, {
      classes: cfg.data.scenes.classes,
      level,
      mean: data.mean,
      std: data.std,
    });
    if (values.json) console.log(JSON.stringify({ ...r, ...meta }));
    else {
      console.log(`linear probe (${level}, ${r.grid}×${r.grid} grid) trained on ${nTrain} scenes, ${nTest} held out:`);
      console.log(
        `  mIoU ${(100 * r.miou).toFixed(1)}%  pixel accuracy ${(100 * r.pixelAccuracy).toFixed(1)}%  ` +
          `(majority class mIoU ${(100 * r.majorityMiou).toFixed(1)}%)`,
      );
    }
    return 0;
  }
  const r = await knnEval(gpu, store, model, train, test, { k, level, mean: data.mean, std: data.std });
  if (values.json) console.log(JSON.stringify({ ...r, ...meta }));
  else {
    console.log(
      `knn (k ${k}, ${level}) on ${nTest} held-out scenes (${r.testRegions} regions; bank ${r.trainRegions} regions):`,
    );
    console.log(`  accuracy ${(100 * r.accuracy).toFixed(1)}%  (majority class ${(100 * r.majority).toFixed(1)}%)`);
  }
  return 0;
}
