/**
 * The k-NN monitor: the `knn` protocol (src/eval/knn.ts) run on the online backbone while it trains, every
 * `eval.knnEvery` steps, as a quick signal of whether the features separate object classes. The labelled
 * images are prepared once, before training starts (so a bad annotation file fails at once): the held-out
 * built-in scenes that `plrc eval` uses, or a COCO set (`eval.knnAnn`). Each run reads the training store's
 * backbone in place (its weights and BN running statistics after the step just submitted), with the same
 * arguments as `plrc eval --protocol knn --train N --test M`, so the last record equals that evaluation of
 * the final checkpoint.
 *
 * @module
 */
import { dirname } from "node:path";
import { readCoco } from "../data/coco.ts";
import { BACKBONE_PREFIX } from "../models/encoder.ts";
import { dataConfigOf, type PlrcConfig, resnetConfigOf } from "../train/config/mod.ts";
import type { Monitor } from "../train/trainer.ts";
import { cocoImages, type EvalImage, heldOutScenes } from "./datasets.ts";
import { knnEval } from "./knn.ts";

export type { Monitor };

/** The k-NN monitor of a configuration, or null when `eval.knnEvery` is 0. */
export async function knnMonitor(cfg: PlrcConfig): Promise<Monitor | null> {
  const e = cfg.eval;
  if (e.knnEvery <= 0) return null;
  const R = cfg.data.resolution, n = e.knnTrain + e.knnTest;
  let images: EvalImage[], where: string;
  if (e.knnAnn === null) {
    // the held-out scenes of `plrc eval` (another generator seed than pre-training's)
    images = heldOutScenes(cfg.data.scenes, R, n).images;
    where = "held-out built-in scenes";
  } else {
    const coco = await readCoco(e.knnAnn);
    if (coco.images.length < n) {
      throw new Error(`eval.knnAnn ${e.knnAnn} has ${coco.images.length} images, fewer than ${n} (knnTrain + knnTest)`);
    }
    images = await cocoImages(dirname(e.knnAnn), coco, R, 0, n);
    where = `the images of ${e.knnAnn}`;
  }
  const train = images.slice(0, e.knnTrain), test = images.slice(e.knnTrain);
  const model = resnetConfigOf(cfg), data = dataConfigOf(cfg);
  return {
    every: e.knnEvery,
    description: `knn monitor every ${e.knnEvery} steps: C4 region k-NN (k 5), bank ${e.knnTrain} and ` +
      `${e.knnTest} scored images at ${R} px from ${where}`,
    async run(gpu, store) {
      const r = await knnEval(gpu, store, model, train, test, {
        k: 5,
        level: "c4",
        prefix: BACKBONE_PREFIX,
        mean: data.mean,
        std: data.std,
      });
      return { knn_accuracy: r.accuracy, knn_majority: r.majority, knn_test_regions: r.testRegions };
    },
  };
}
