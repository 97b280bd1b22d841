/**
 * plrc: Point-Level Region Contrast pre-training of detection backbones on WebGPU.
 *
 * The front door re-exports every door of the library, so a script can resolve a configuration, pre-train
 * and evaluate from one import. The doors (subpath exports of `deno.json`, each a `src/<area>/mod.ts`), for a
 * narrower import:
 *
 * - `./gpu`: device, tensors, kernels' bindings, the one-submit recorder and profiler
 * - `./kernels`: the GPU kernels with their float64 references
 * - `./models`: ResNet, the PLRC heads, the encoder and the parameter store
 * - `./losses`: image and point contrast, distillation, CenterNet
 * - `./data`: images, the built-in scenes, folder and COCO sources, samples and batches
 * - `./train`: configuration, plan, step, training loop, checkpoints
 * - `./eval`: k-NN, linear probe, detection, AP, loading checkpoints
 * - `./io`: safetensors, `.pth`, exports to torchvision/detectron2/mmdetection
 * - `./viz`: PNG pictures and charts
 * - `./bench`: the measurements behind `plrc bench`
 *
 * @example Pre-train two steps on the built-in scenes, then a k-NN evaluation of the checkpoint
 * ```ts
 * import {
 *   dataConfigOf,
 *   getGpu,
 *   heldOutScenes,
 *   knnEval,
 *   loadEncoder,
 *   makePlan,
 *   regionModeOf,
 *   resolveConfig,
 *   scenesSource,
 *   train,
 * } from "./mod.ts";
 *
 * const gpu = await getGpu();
 * const cfg = resolveConfig({ sets: ["preset=cpu-tiny", "train.maxSteps=2", "data.workers=0"] });
 * const out = await Deno.makeTempDir();
 * const plan = makePlan(cfg, scenesSource(cfg.data.scenes, regionModeOf(cfg)), out, { quiet: true });
 * const result = await train(gpu, plan, () => {});
 *
 * const { store, encoder, prefix } = await loadEncoder(gpu, result.checkpoint);
 * const images = heldOutScenes(cfg.data.scenes, cfg.data.resolution, 12).images;
 * const { mean, std } = dataConfigOf(cfg);
 * const knn = await knnEval(gpu, store, encoder.backbone, images.slice(0, 8), images.slice(8), { prefix, mean, std });
 * console.log(`steps ${result.steps} knn ${knn.accuracy.toFixed(3)} majority ${knn.majority.toFixed(3)}`);
 * await Deno.remove(out, { recursive: true });
 * ```
 *
 * @module
 */
export * from "./src/gpu/mod.ts";
export * from "./src/kernels/mod.ts";
export * from "./src/models/mod.ts";
export * from "./src/losses/mod.ts";
export * from "./src/data/mod.ts";
export * from "./src/train/mod.ts";
export * from "./src/eval/mod.ts";
export * from "./src/io/mod.ts";
export * from "./src/viz/mod.ts";
export * from "./src/bench/mod.ts";
export { VERSION } from "./src/version.ts";
