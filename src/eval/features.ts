/**
 * Frozen-backbone features for the evaluation protocols: the backbone in eval mode (running BN
 * statistics), run over R×R images in batches, yielding each image's maps at one or more levels (C3,
 * stride 8; C4, stride 16; C5, stride 32) as NHWC rows. Several levels are combined by upsampling each
 * bilinearly to one grid and concatenating them per cell ({@link concatLevels}).
 *
 * @module
 */
import { EVAL_MEMORY_HINT, type Gpu, withMemoryCheck } from "../gpu/device.ts";
import { Recorder, sync } from "../gpu/recorder.ts";
import type { RgbImage } from "../data/image.ts";
import { bilinearResize } from "../data/resize.ts";
import { buildResNet, type ResNetConfig, resnetWidths } from "../models/resnet.ts";
import type { ParamStore } from "../nn/params.ts";
import type { Tensor } from "../gpu/tensor.ts";

/** A feature level: the output of stage 2, 3 or 4. */
export type FeatureLevel = "c3" | "c4" | "c5";

/** The levels in network order. */
export const FEATURE_LEVELS: readonly FeatureLevel[] = ["c3", "c4", "c5"];

/**
 * Parses a level list such as "c4" or "c3+c4" ('+'-joined, each at most once); returns the levels in
 * network order, or throws an error naming the allowed values.
 */
export function parseLevels(text: string): FeatureLevel[] {
  const parts = text.split("+");
  const bad = parts.find((p) => !(FEATURE_LEVELS as readonly string[]).includes(p));
  if (bad !== undefined || new Set(parts).size !== parts.length) {
    throw new Error(`level must be c3, c4 or c5, or several joined by '+' (such as c3+c4), got "${text}"`);
  }
  return FEATURE_LEVELS.filter((l) => parts.includes(l));
}

/** How to extract features. */
export interface FeatureOptions {
  /** Normalisation mean per channel. */
  mean: readonly number[];
  /** Normalisation std per channel. */
  std: readonly number[];
  /** One level, or a '+'-joined list (see {@link parseLevels}), or the levels themselves; default C4. */
  level?: string | readonly FeatureLevel[];
  /** Images per forward. */
  batch?: number;
  /** Name prefix of the backbone's parameters in the store. */
  prefix?: string;
}

/** One level's map size. */
export interface LevelShape {
  /** The level. */
  level: FeatureLevel;
  /** Map height. */
  h: number;
  /** Map width. */
  w: number;
  /** Channels. */
  C: number;
}

/** A bound frozen backbone: its levels, and `each` to run images and visit their maps (one per level) in order. */
export interface FrozenBackbone {
  /** Map size of each level, in order. */
  levels: LevelShape[];
  /** The levels' name, '+'-joined ("c4", "c3+c4"). */
  level: string;
  /** Channels of all levels together. */
  C: number;
  /** Map size of the finest level. */
  h: number;
  /** Map width of the finest level. */
  w: number;
  /** Runs `images` through the backbone and calls `visit` with each image's maps, one per level, in order. */
  each(images: RgbImage[], visit: (index: number, maps: Float32Array[]) => void): Promise<void>;
  /** Frees the bound backbone. */
  dispose(): void;
}

/** Binds the backbone of `store` for R×R inputs (R = the images' side), run only as deep as its deepest level. */
export async function frozenBackbone(
  gpu: Gpu,
  store: ParamStore,
  cfg: ResNetConfig,
  R: number,
  o: FeatureOptions,
): Promise<FrozenBackbone> {
  const B = o.batch ?? 8;
  const levels = typeof o.level === "string" ? parseLevels(o.level) : [...(o.level ?? ["c4"])];
  const depth = Math.max(...levels.map((l) => FEATURE_LEVELS.indexOf(l))); // 0: C3 … 2: C5
  const net = await withMemoryCheck(
    gpu,
    "building the frozen backbone",
    () =>
      buildResNet(
        gpu,
        store,
        cfg,
        {
          batch: B,
          resolution: R,
          train: false,
          backward: false,
          c3: levels.includes("c3"),
          c4: levels.includes("c4"),
          stages: (depth + 2) as 2 | 3 | 4,
        },
        o.prefix ?? "",
      ),
    EVAL_MEMORY_HINT,
  );
  const [, hd, wd] = net.c5Shape;
  const w = resnetWidths(cfg);
  const shapes: LevelShape[] = levels.map((l) => {
    const i = FEATURE_LEVELS.indexOf(l), up = 2 ** (depth - i);
    return { level: l, h: hd * up, w: wd * up, C: w.planes[i + 1] * w.expansion };
  });
  const maps: Tensor[] = levels.map((l) => l === FEATURE_LEVELS[depth] ? net.c5 : l === "c3" ? net.c3! : net.c4!);
  return {
    levels: shapes,
    level: levels.join("+"),
    C: shapes.reduce((s, l) => s + l.C, 0),
    h: shapes[0].h,
    w: shapes[0].w,
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
        const all = await Promise.all(maps.map(async (m) => (await m.read()) as Float32Array));
        chunk.forEach((_, i) =>
          visit(
            s + i,
            shapes.map((l, j) => all[j].subarray(i * l.h * l.w * l.C, (i + 1) * l.h * l.w * l.C)),
          )
        );
      }
    },
    dispose: () => net.dispose(),
  };
}

/** Bilinear upsampling (align_corners = false) of one h×w×C map (NHWC rows) to T×T. */
export function upsampleBilinear(f: ArrayLike<number>, h: number, w: number, C: number, T: number): Float64Array {
  return bilinearResize(f, h, w, C, T, T);
}

/**
 * The maps of several levels, each upsampled bilinearly to T×T and concatenated per cell in the order of
 * `levels`: T·T rows of ΣC features.
 */
export function concatLevels(maps: ArrayLike<number>[], levels: LevelShape[], T: number): Float64Array {
  const up = levels.map((l, j) => upsampleBilinear(maps[j], l.h, l.w, l.C, T));
  if (up.length === 1) return up[0];
  const C = levels.reduce((s, l) => s + l.C, 0), out = new Float64Array(T * T * C);
  let off = 0;
  levels.forEach((l, j) => {
    for (let p = 0; p < T * T; p++) out.set(up[j].subarray(p * l.C, (p + 1) * l.C), p * C + off);
    off += l.C;
  });
  return out;
}
