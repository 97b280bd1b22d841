/**
 * `plrc eval`: transfer protocols on a checkpoint's backbone (or random weights): `knn` (region features,
 * cosine k-NN), `linear` (per-pixel linear probe, mIoU) and `detect` (a fine-tuned CenterNet-style head,
 * COCO-style AP), on the built-in scenes or a COCO-format folder.
 *
 * @module
 */
import { parse as parseYaml } from "npm:yaml@^2.8.1";
import { getGpu } from "../gpu/device.ts";
import { readCoco } from "../data/coco.ts";
import { cocoImages, type EvalSet, heldOutScenes } from "../eval/datasets.ts";
import { DETECT_DEFAULTS, detectEval } from "../eval/detect.ts";
import { knnEval } from "../eval/knn.ts";
import { parseLevels } from "../eval/features.ts";
import { linearEval } from "../eval/linear.ts";
import { initResNet, resnetSpecs } from "../models/resnet.ts";
import { ParamStore } from "../nn/params.ts";
import { CheckpointError, readCheckpointFile } from "../train/checkpoint.ts";
import { type ImportedBackbone, readTorchvisionBackbone, withModel } from "../export/import.ts";
import { dataConfigOf, type PlrcConfig, resnetConfigOf, resolveConfig } from "../train/config/mod.ts";
import { parseOptions, UsageError } from "./usage.ts";

export const EVAL_HELP =
  `plrc eval --ckpt PATH|random --protocol knn|linear|detect [--encoder online|momentum] [--set k=v ...]
          [--data scenes|DIR --ann COCO.json] [--train N] [--test N] [--resolution R] [--json]
          [--k K] [--level c3|c4|c5|c3+c4] [--probe-iterations N] [--epochs E] [--lr LR] [--batch B]
          [--freeze-backbone]

Evaluates a pre-trained backbone: trained on N labelled images, scored on M held-out ones.

  --ckpt PATH       a training checkpoint (checkpoints/last.safetensors); a torchvision ResNet from
                    PyTorch (.pth from torch.save, or .safetensors; a state dict, maybe under state_dict
                    or model and a prefix such as module.encoder_q.; depth and width read off the file),
                    to score an outside backbone such as ImageNet weights the same way; or "random" for
                    an untrained backbone of the configuration (--set model.depth=..., model.width=...)
  --protocol knn    region features (the --level map averaged over each object's mask) classified by
                    cosine k-NN against a bank from other images; reports accuracy (± its binomial
                    standard error over the test regions) and the majority-class baseline
  --protocol linear per-pixel softmax regression on frozen, bilinearly upsampled features, trained on the
                    training images' class maps, fitted until converged; mean IoU on the held-out images
                    (± its bootstrap standard error over them)
  --protocol detect a CenterNet-style head (class heat-maps, box sizes and offsets at stride 8, on C3)
                    trained with the backbone fine-tuned; COCO-style AP@[.5:.95] and AP50 on held-out images
                    (± bootstrap standard errors over them)
  --data scenes     the built-in scenes (default; held out from pre-training: another generator seed)
  --data DIR --ann COCO.json
                    a COCO-format folder: images (file_name relative to DIR) with instance annotations
                    (polygons, RLE or boxes); the first N images train, the next M are held out; images
                    are stretched to R×R
  --train N         training / bank images (default 200; detect sees each of them every epoch, so
                    --train 50 is the low-label setting); --test M held out (default 100)
  --resolution R    image side (default: data.resolution of the configuration; linear: at least 128, so
                    that C4 has 8×8 cells; detect: at least 96, so that the stride-8 grid has 12×12)
  --k K             knn: neighbours (default 5)
  --level L         knn, linear: feature level c3 (stride 8), c4 (stride 16; the default, so small
                    objects keep a cell) or c5 (stride 32), or several joined by '+', such as c3+c4:
                    each upsampled bilinearly to the probe's grid and concatenated per pixel
  --probe-iterations N
                    linear: the most iterations the probe's fit may take before it counts as converged
                    (default 4096; the JSON says whether it converged). Each costs a few milliseconds on
                    a GPU but ~15 ms on a 2-core CPU adapter, where a smaller cap keeps checks short
  --epochs E        detect: training epochs (default ${DETECT_DEFAULTS.epochs})
  --lr LR           detect: SGD learning rate, cosine-decayed (default ${DETECT_DEFAULTS.lr}; momentum 0.9)
                    if the head's training diverges (its last epoch's loss above its first's), it
                    starts again from the same weights at LR ÷ 4, up to ${DETECT_DEFAULTS.divergenceRetries} times; the result
                    gives the rate used (lrUsed) and the retries
  --batch B         detect: batch size (default ${DETECT_DEFAULTS.batch})
  --freeze-backbone detect: train the head only, on the backbone in eval mode (running BN statistics,
                    no backward pass through it): the features alone decide the score. C3 is
                    centred per channel and divided by one scale (the RMS of its channels' stds over
                    the training images, measured once before training, fixed), so the score does
                    not depend on the features' scale (a random init's BN passes large activations,
                    a pre-trained one small ones; one head learning rate suits both)
  --json            one JSON object`;

/** Runs \`plrc eval\`. */
export async function evalCommand(argv: string[]): Promise<number> {
  const t0 = performance.now();
  const { values } = parseOptions(argv, {
    ckpt: { type: "string" },
    protocol: { type: "string" },
    encoder: { type: "string" },
    set: { type: "string", multiple: true },
    data: { type: "string" },
    ann: { type: "string" },
    train: { type: "string" },
    test: { type: "string" },
    resolution: { type: "string" },
    k: { type: "string" },
    level: { type: "string" },
    "probe-iterations": { type: "string" },
    epochs: { type: "string" },
    lr: { type: "string" },
    batch: { type: "string" },
    "freeze-backbone": { type: "boolean" },
    json: { type: "boolean" },
    help: { type: "boolean", short: "h" },
  }, EVAL_HELP);
  if (values.help) return console.log(EVAL_HELP), 0;
  if (!values.ckpt) throw new UsageError("--ckpt PATH|random is required", EVAL_HELP);
  const protocol = values.protocol ?? "knn";
  if (protocol !== "knn" && protocol !== "linear" && protocol !== "detect") {
    throw new UsageError(`--protocol must be knn, linear or detect, got "${protocol}"`, EVAL_HELP);
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
  try {
    parseLevels(level);
  } catch (e) {
    throw new UsageError(`--${(e as Error).message}`, EVAL_HELP);
  }
  if (protocol === "detect" && values.level !== undefined) {
    throw new UsageError("--level goes with --protocol knn or linear (detect uses C3)", EVAL_HELP);
  }
  const freeze = values["freeze-backbone"] ?? false;
  if (freeze && protocol !== "detect") {
    throw new UsageError(
      `--freeze-backbone goes with --protocol detect (knn and linear always freeze it), got ${protocol}`,
      EVAL_HELP,
    );
  }
  const nTrain = int("train", values.train, 200), nTest = int("test", values.test, 100), k = int("k", values.k, 5);
  const epochs = int("epochs", values.epochs, DETECT_DEFAULTS.epochs);
  const batch = int("batch", values.batch, DETECT_DEFAULTS.batch);
  const lr = values.lr === undefined ? DETECT_DEFAULTS.lr : Number(values.lr);
  if (!(lr > 0)) throw new UsageError(`--lr must be a positive number, got "${values.lr}"`, EVAL_HELP);
  const dataArg = values.data ?? "scenes";
  if (dataArg !== "scenes" && !values.ann) throw new UsageError("--data DIR needs --ann COCO.json", EVAL_HELP);
  if (dataArg === "scenes" && values.ann) throw new UsageError("--ann goes with --data DIR", EVAL_HELP);
  let cfg: PlrcConfig;
  let ckpt: Awaited<ReturnType<typeof readCheckpointFile>> | null = null;
  let imported: ImportedBackbone | null = null;
  const cannot = (e: unknown) => {
    throw new UsageError(`cannot use --ckpt ${values.ckpt}: ${(e as Error).message}`, EVAL_HELP);
  };
  if (values.ckpt === "random") {
    cfg = resolveConfig({ sets: values.set ?? [] });
  } else {
    // a plrc checkpoint, or else a torchvision backbone from PyTorch (.pth, or safetensors without plrc's format)
    let notPlrc: string | null = null;
    if (!/\.(pth|pt)$/.test(values.ckpt)) {
      ckpt = await readCheckpointFile(values.ckpt).catch((e) =>
        e instanceof CheckpointError && /not a plrc checkpoint/.test(e.message)
          ? (notPlrc = e.message, null)
          : cannot(e)
      );
    }
    if (ckpt) {
      const text = ckpt.meta.config;
      const file = typeof text === "string" ? parseYaml(text) : text;
      cfg = resolveConfig({ file: file as never, fileName: `${values.ckpt} (config)`, sets: values.set ?? [] });
    } else {
      imported = await readTorchvisionBackbone(values.ckpt).catch((e) =>
        cannot(notPlrc ? new Error(`${notPlrc}; nor is it a torchvision ResNet: ${(e as Error).message}`) : e)
      );
      try {
        cfg = resolveConfig({ sets: withModel(values.set ?? [], imported!.model) });
      } catch (e) {
        throw new UsageError((e as Error).message, EVAL_HELP);
      }
    }
  }
  const model = resnetConfigOf(cfg);
  const gpu = await getGpu();
  const store = new ParamStore(resnetSpecs(model)).allocate(gpu);
  if (imported) {
    for (const s of store.specs) store.set(s.name, imported.tensors.get(s.name)!);
  } else if (ckpt) {
    for (const s of store.specs) {
      const kind = s.kind === "running_mean" || s.kind === "running_var" ? "stats" : "params";
      const t = ckpt.tensors.get(`${kind}/${encoder}/backbone.${s.name}`);
      if (!t) throw new UsageError(`${values.ckpt} has no ${kind}/${encoder}/backbone.${s.name}`, EVAL_HELP);
      store.set(s.name, new Float32Array(t.bytes.buffer, t.bytes.byteOffset, t.bytes.byteLength / 4));
    }
  } else {
    initResNet(store, model, cfg.seed);
  }
  const R = values.resolution !== undefined
    ? int("resolution", values.resolution, 0)
    : protocol === "detect"
    ? Math.max(96, cfg.data.resolution)
    : protocol === "linear"
    ? Math.max(128, cfg.data.resolution) // C4 must resolve objects: 8×8 cells at 128 px
    : cfg.data.resolution;
  if (R % 32 !== 0 || R < 32) throw new UsageError(`--resolution must be a multiple of 32, got ${R}`, EVAL_HELP);
  let set: EvalSet & { testImages: EvalSet["images"] };
  if (dataArg === "scenes") {
    const s = heldOutScenes(cfg.data.scenes, R, nTrain + nTest);
    set = { images: s.images.slice(0, nTrain), testImages: s.images.slice(nTrain), classNames: s.classNames };
  } else {
    const coco = await readCoco(values.ann!).catch((e) => {
      throw new UsageError(`cannot use --ann ${values.ann}: ${(e as Error).message}`, EVAL_HELP);
    });
    if (coco.images.length < nTrain + nTest) {
      throw new UsageError(
        `${values.ann} has ${coco.images.length} images, fewer than --train ${nTrain} + --test ${nTest}`,
        EVAL_HELP,
      );
    }
    set = {
      images: await cocoImages(dataArg, coco, R, 0, nTrain),
      testImages: await cocoImages(dataArg, coco, R, nTrain, nTest),
      classNames: coco.categories.map((c) => c.name),
    };
  }
  const train = set.images, test = set.testImages, classes = set.classNames.length;
  const data = dataConfigOf(cfg);
  const meta = {
    ckpt: values.ckpt,
    ...(imported ? { imported: { prefix: imported.prefix } } : {}),
    encoder,
    data: dataArg,
    model,
    resolution: R,
    adapter: gpu.summary.description,
  };
  const seconds = () => Math.round((performance.now() - t0) / 100) / 10;
  if (protocol === "detect") {
    const r = await detectEval(gpu, store, model, train, test, {
      classes,
      mean: data.mean,
      std: data.std,
      epochs,
      batch,
      lr,
      seed: cfg.seed,
      freezeBackbone: freeze,
    });
    const perClass = r.perClass.map((c, i) => ({ name: set.classNames[i], ...c }));
    if (r.retries > 0) {
      console.error(
        `note: the detection head diverged at --lr ${lr}; ` +
          (r.diverged ? `it diverged again at each ÷ 4 down to ${r.lrUsed}` : `trained at ${r.lrUsed} instead`),
      );
    }
    if (r.diverged) {
      console.error(
        `warning: the detection head diverged (training loss ${r.loss.initial?.toPrecision(4)} untrained, ` +
          `${r.loss.peak?.toPrecision(4)} at most in an epoch, ${r.loss.last.toPrecision(4)} in the last): its AP ` +
          "ranks nothing; try a lower --lr",
      );
    }
    if (values.json) console.log(JSON.stringify({ ...r, perClass, ...meta, seconds: seconds() }));
    else {
      const pct = (v: number | null) => (v === null ? "   –" : (100 * v).toFixed(1).padStart(5));
      const how = freeze ? "head trained on the frozen backbone" : "fine-tuned";
      console.log(
        `detect (CenterNet head on C3, ${r.grid}×${r.grid} cells at ${R} px) ${how} on ${r.train_images} images ` +
          `for ${epochs} epochs (${r.steps} steps), ${r.test_images} held out (${r.testObjects} objects):`,
      );
      console.log(
        `  AP ${pct(r.ap)} ± ${pct(r.ap_se).trim()}   AP50 ${pct(r.ap50)} ± ${pct(r.ap50_se).trim()}   ` +
          `AP75 ${pct(r.ap75)}   (${values.ckpt})`,
      );
      const w = Math.max(5, ...set.classNames.map((n) => n.length));
      console.log(`  ${"class".padEnd(w)}     AP   AP50`);
      for (const c of perClass) console.log(`  ${c.name.padEnd(w)}  ${pct(c.ap)}  ${pct(c.ap50)}`);
      console.log(
        `  training loss ${r.loss.first.toFixed(3)} → ${r.loss.last.toFixed(3)} at lr ${r.lrUsed}` +
          `${r.retries ? ` (after ${r.retries} diverged at larger ones)` : ""}; ${seconds()} s`,
      );
    }
    return 0;
  }
  if (protocol === "linear") {
    const maxIterations = int("probe-iterations", values["probe-iterations"], 4096);
    const r = await linearEval(gpu, store, model, train, test, {
      classes,
      level,
      mean: data.mean,
      std: data.std,
      probe: { maxIterations },
    });
    if (values.json) console.log(JSON.stringify({ ...r, ...meta, seconds: seconds() }));
    else {
      console.log(
        `linear probe (${r.level}, ${r.features} features, ${r.grid}×${r.grid} grid) trained on ${r.train_images} ` +
          `images, ${r.test_images} held out:`,
      );
      console.log(
        `  mIoU ${(100 * r.miou).toFixed(1)} ± ${(100 * r.miou_se).toFixed(1)}%  pixel accuracy ${
          (100 * r.pixelAccuracy).toFixed(1)
        }%  ` +
          `(majority class mIoU ${(100 * r.majorityMiou).toFixed(1)}%)`,
      );
      console.log(
        `  probe training loss ${r.trainLoss.toFixed(3)} (log K = ${Math.log(classes + 1).toFixed(3)} at start); ` +
          `${r.converged ? "converged" : "NOT converged"} after ${r.iterations} iterations ` +
          `(gradient norm ${r.gradNorm.toExponential(1)})`,
      );
    }
    return 0;
  }
  const r = await knnEval(gpu, store, model, train, test, { k, level, mean: data.mean, std: data.std });
  if (values.json) console.log(JSON.stringify({ ...r, ...meta, seconds: seconds() }));
  else {
    console.log(
      `knn (k ${k}, ${r.level}) on ${r.test_images} held-out images (${r.testRegions} regions; bank ${r.trainRegions} regions):`,
    );
    console.log(
      `  accuracy ${(100 * r.accuracy).toFixed(1)} ± ${(100 * r.accuracy_se).toFixed(1)}%  (majority class ${
        (100 * r.majority).toFixed(1)
      }%)`,
    );
  }
  return 0;
}
