/**
 * Frozen-backbone features for the evaluation protocols: the backbone in eval mode (running BN
 * statistics), run over R×R images in batches, yielding each image's C4 or C5 map as NHWC rows.
 *
 * @module
 */
import { EVAL_MEMORY_HINT, type Gpu, withMemoryCheck } from "../gpu/device.ts";
import { Recorder, sync } from "../gpu/encoder.ts";
import type { RgbImage } from "../data/image.ts";
import { buildResNet, type ResNetConfig, resnetOutChannels } from "../models/resnet.ts";
import type { ParamStore } from "../nn/params.ts";

/** How to extract features. */
export interface FeatureOptions {
  mean: readonly number[];
  std: readonly number[];
  /** C4 (stride 16) or C5 (stride 32); default C4. */
  level?: "c4" | "c5";
  batch?: number;
  /** Name prefix of the backbone's parameters in the store. */
  prefix?: string;
}

/** A bound frozen backbone: map size, and `each` to run images and visit their feature maps in order. */
export interface FrozenBackbone {
  h: number;
  w: number;
  C: number;
  level: "c4" | "c5";
  each(images: RgbImage[], visit: (index: number, rows: Float32Array) => void): Promise<void>;
  dispose(): void;
}

/** Binds the backbone of `store` for R×R inputs (R = the images' side). */
export async function frozenBackbone(
  gpu: Gpu,
  store: ParamStore,
  cfg: ResNetConfig,
  R: number,
  o: FeatureOptions,
): Promise<FrozenBackbone> {
  const B = o.batch ?? 8, level = o.level ?? "c4";
  const net = await withMemoryCheck(
    gpu,
    "building the frozen backbone",
    () =>
      buildResNet(
        gpu,
        store,
        cfg,
        { batch: B, resolution: R, train: false, backward: false, c4: level === "c4" },
        o.prefix ?? "",
      ),
    EVAL_MEMORY_HINT,
  );
  const [, h5, w5, C5] = net.c5Shape;
  const [h, w, C] = level === "c4" ? [h5 * 2, w5 * 2, resnetOutChannels(cfg).c4] : [h5, w5, C5];
  const map = level === "c4" ? net.c4! : net.c5;
  return {
    h,
    w,
    C,
    level,
    async each(images, visit) {
      for (let s = 0; s < images.length; s += B) {
        const chunk = images.slice(s, s + B);
        const x = new Float32Array(B * R * R * 3);
        chunk.forEach((im, i) => {
          if (im.width !== R || im.height !== R) throw new Error(`frozen backbone: every image must be ${R}×${R}`);
          for (let p = 0; p < R * R; p++) {
            for (let c = 0; c < 3; c++) x[(i * R * R + p) * 3 + c] = (im.data[p * 3 + c] / 255 - o.mean[c]) / o.std[c];
          }
        });
        net.input.upload(x);
        new Recorder(gpu).runAll(net.forward).submit();
        await sync(gpu);
        const all = (await map.read()) as Float32Array;
        chunk.forEach((_, i) => visit(s + i, all.subarray(i * h * w * C, (i + 1) * h * w * C)));
      }
    },
    dispose: () => net.dispose(),
  };
}
