/**
 * The data pipeline: images and label maps, decoding and the image cache, the built-in scenes, folder and
 * COCO sources, Felzenszwalb regions, the two-view samples and batches PLRC trains on (crops, matched points,
 * region masks), and the worker threads and feeder that make batches ahead of the GPU.
 *
 * @example One batch of two built-in scenes
 * ```ts
 * import { DEFAULT_DATA_CONFIG, makeBatch, Rng, scenesSource } from "./mod.ts";
 *
 * const source = scenesSource({ count: 2, size: 96, classes: 6, seed: 1 });
 * const images = await Promise.all([0, 1].map((i) => source.get(i)));
 * const batch = makeBatch(images, { ...DEFAULT_DATA_CONFIG, resolution: 64, maskSize: 16 }, new Rng(1));
 * console.log(batch.n, batch.resolution, batch.viewA0.length); // 2 64 24576
 * ```
 *
 * @module
 */
export { type LabelMap, labelMap, type RgbImage, rgbImage } from "./image.ts";
export { DecodeError, decodeFile, decodeImage, type DecodeOptions, type ImageInfo, probeImage } from "./decode.ts";
export { type FolderScan, formatSkipReport, scanFolder, type Skipped, type SkipReport } from "./folder.ts";
export { DEFAULT_MAX_SHORT, loadImage, type LoadOptions, type LoadResult } from "./cache.ts";
export { maskPathFor, WorkerPool } from "./pool.ts";
export type { DataTask, LoadTask, MaskTask, TaskResult } from "./tasks.ts";
export type { CropBox, CropRanges } from "./crops.ts";
export type { PhotometricConfig } from "./augment.ts";
export {
  ordered,
  serveThread,
  ThreadCrashError,
  ThreadPool,
  type ThreadPoolOptions,
  type ThreadReply,
} from "./threads.ts";
export { BatchFeeder, type FeederOptions, type SampleInit, SamplePool, type SampleRequest } from "./feeder.ts";
export {
  fhMasksDir,
  type FolderSource,
  folderSource,
  type ImageSource,
  labelMapCandidates,
  NoUsableImagesError,
  type RegionMode,
  scenesSource,
  sourceFromSpec,
  type SourceSpec,
} from "./sources.ts";
export {
  exportScenes,
  type Scene,
  sceneClassNames,
  type SceneExport,
  SceneGenerator,
  type SceneInstance,
  type SceneOptions,
} from "./scenes.ts";
export { type CachedScene, SceneCache } from "./scene_cache.ts";
export {
  annotationMask,
  type CocoAnnotation,
  type CocoCategory,
  type CocoDataset,
  CocoError,
  type CocoImage,
  type CocoRle,
  parseCoco,
  readCoco,
  rleFromString,
  rleToString,
} from "./coco.ts";
export { defaultFhOptions, defaultMinSize, felzenszwalb, type FhOptions } from "./felzenszwalb.ts";
export { readLabelMapPng, writeLabelMapPng } from "./labelmap_png.ts";
export {
  type BatchItem,
  type DataConfig,
  dataConfig,
  DEFAULT_DATA_CONFIG,
  makeBatch,
  makeKeyedSample,
  makeSample,
  type PlrcBatch,
  type PlrcSample,
  splitBatch,
} from "./batch.ts";
export { matchPairs, type Pairs } from "./pairs.ts";
export { type ImagePoints, samplePoints, toFeatureGrid, toGridSample } from "./points.ts";
export { blockNoise, type Degradation, degradeLabels, shiftLabels, translateLabels } from "./degrade.ts";
export { Rng } from "../util/rng.ts";
