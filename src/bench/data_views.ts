/**
 * Throughput of the CPU view pipeline (crops, resize, flips, photometric, masks, points, pairs, collate)
 * from in-memory images, on the calling thread. Used by `plrc bench data`.
 *
 * @module
 */
import { Rng } from "../util/rng.ts";
import { type RgbImage, rgbImage } from "../data/image.ts";
import { type BatchItem, dataConfig, makeBatch } from "../data/batch.ts";
import { DEFAULT_PHOTOMETRIC, IMAGENET_MEAN, IMAGENET_STD, normalizeInto, photometric } from "../data/augment.ts";

/** One measurement (one JSON object per line with `--json`). */
export interface DataViewsMeasurement {
  /** `views`: whole batches; `photometric`: jitter/grayscale/blur/normalise at the default probabilities;
   * `photometric-all`: the same with every op applied (worst case). */
  name: string;
  /** View side R. */
  resolution: number;
  /** Images per batch (three views each). */
  batchSize: number;
  /** Batches per second. */
  batchesPerS: number;
  /** Milliseconds per batch. */
  msPerBatch: number;
  /** Milliseconds per view (batch time / (3 · batchSize)). */
  msPerView: number;
}

/** Options; defaults give a run of a few seconds on two cores. */
export interface DataViewsOptions {
  /** View sides to measure. */
  resolutions?: number[];
  /** Images per batch. */
  batchSize?: number;
  /** Timed batches per resolution (after one warm-up batch). */
  batches?: number;
  /** Views timed for the photometric-only entries. */
  photometricViews?: number;
  /** Source image size (ImageNet-like by default). */
  width?: number;
  /** Source image height. */
  height?: number;
}

/** A smooth random image (sums of a few sinusoids plus noise), so blur and jitter see natural-ish data. */
export function syntheticImage(width: number, height: number, rng: Rng): RgbImage {
  const img = rgbImage(width, height), f = [rng.uniform(1, 8), rng.uniform(1, 8), rng.uniform(0, 6)];
  for (let y = 0; y < height; y++) {
    for (let x = 0; x < width; x++) {
      for (let c = 0; c < 3; c++) {
        const v = 0.5 +
          0.3 * Math.sin((f[c] * x) / width * 6.28 + f[2]) * Math.cos((f[(c + 1) % 3] * y) / height * 6.28);
        img.data[(y * width + x) * 3 + c] = Math.max(0, Math.min(255, Math.round(255 * v + rng.uniform(-20, 20))));
      }
    }
  }
  return img;
}

/** Runs the benchmark; one `views` and two photometric entries per resolution. */
export function benchDataViews(opts: DataViewsOptions = {}): Promise<DataViewsMeasurement[]> {
  const resolutions = opts.resolutions ?? [224, 64], batchSize = opts.batchSize ?? 16, batches = opts.batches ?? 3;
  const nPhoto = opts.photometricViews ?? 48;
  const rng = new Rng(1234);
  const images = Array.from({ length: batchSize }, () => syntheticImage(opts.width ?? 500, opts.height ?? 375, rng));
  const out: DataViewsMeasurement[] = [];
  const entry = (name: string, resolution: number, ms: number, views: number): DataViewsMeasurement => {
    const msPerView = ms / views, msPerBatch = msPerView * 3 * batchSize;
    return { name, resolution, batchSize, batchesPerS: 1000 / msPerBatch, msPerBatch, msPerView };
  };
  for (const R of resolutions) {
    const cfg = dataConfig({ resolution: R });
    let key = 0;
    const batch = () => makeBatch(images.map((image): BatchItem => ({ image, key: key++ })), cfg);
    batch(); // warm-up (JIT)
    const t0 = performance.now();
    for (let b = 0; b < batches; b++) batch();
    out.push(entry("views", R, performance.now() - t0, 3 * batchSize * batches));
    // Photometric ops alone on fresh copies of one resized view.
    const base = Float32Array.from({ length: R * R * 3 }, () => rng.next()), norm = new Float32Array(base.length);
    const all = { ...DEFAULT_PHOTOMETRIC, jitterP: 1, grayscaleP: 1, blurP: 1 };
    for (const [name, pcfg] of [["photometric", DEFAULT_PHOTOMETRIC], ["photometric-all", all]] as const) {
      const prng = new Rng(7);
      const one = () => {
        const px = base.slice();
        photometric(px, R, pcfg, prng);
        normalizeInto(px, norm, 0, IMAGENET_MEAN, IMAGENET_STD);
      };
      for (let w = 0; w < 3; w++) one();
      const t1 = performance.now();
      for (let v = 0; v < nPhoto; v++) one();
      out.push(entry(name, R, performance.now() - t1, nPhoto));
    }
  }
  return Promise.resolve(out);
}
