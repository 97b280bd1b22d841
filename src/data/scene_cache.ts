/**
 * A disk cache of rendered built-in scenes. Rendering a 192-px scene costs ~16 ms on the CPU, most of what
 * making one training sample at 128 px costs, and every epoch and every run of a comparison renders the
 * same scenes again. With `data.scenes.cache` set, scene i is rendered once and read back afterwards.
 *
 * Layout: `<dir>/<key>/<i>.scene`. The key names the generator's settings and a fingerprint of scene 0's
 * bytes, so a changed generator never reads an old cache. A file is `PLRCSCN1`, width and height (u32 LE),
 * the RGB bytes, then the instance map as one byte per pixel. Scenes with 255 or more instances are not
 * cached. Writes go to a temporary file that is renamed into place, so processes sharing a cache never
 * read a partial file; a file that does not parse is rendered again and replaced.
 *
 * @module
 */
import { join } from "node:path";
import { pathHash } from "./cache.ts";
import { type LabelMap, labelMap, type RgbImage, rgbImage } from "./image.ts";
import type { SceneGenerator } from "./scenes.ts";

const MAGIC = "PLRCSCN1";
const HEADER = 16;

/** A rendered scene's image and instance map, as the sources use them. */
export interface CachedScene {
  /** The scene's image. */
  image: RgbImage;
  /** The scene's instance ids, 0 background. */
  instanceMap: LabelMap;
}

/** Serialises a scene, or returns null when its instance ids do not fit a byte. */
export function encodeScene(s: CachedScene): Uint8Array | null {
  const { width: w, height: h } = s.image, n = w * h;
  const out = new Uint8Array(HEADER + 4 * n);
  out.set(new TextEncoder().encode(MAGIC), 0);
  const view = new DataView(out.buffer);
  view.setUint32(8, w, true), view.setUint32(12, h, true);
  out.set(s.image.data, HEADER);
  for (let p = 0; p < n; p++) {
    const id = s.instanceMap.data[p];
    if (id < 0 || id > 254) return null;
    out[HEADER + 3 * n + p] = id;
  }
  return out;
}

/** Parses a file written by {@link encodeScene}; null when it is not one of side `size`. */
export function decodeScene(bytes: Uint8Array, size: number): CachedScene | null {
  const n = size * size;
  if (bytes.length !== HEADER + 4 * n || new TextDecoder().decode(bytes.subarray(0, 8)) !== MAGIC) return null;
  const view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  if (view.getUint32(8, true) !== size || view.getUint32(12, true) !== size) return null;
  const image = rgbImage(size, size), instanceMap = labelMap(size, size);
  image.data.set(bytes.subarray(HEADER, HEADER + 3 * n));
  instanceMap.data.set(bytes.subarray(HEADER + 3 * n));
  return { image, instanceMap };
}

/** Scenes of one generator, rendered once into `root` and read back afterwards. */
export class SceneCache {
  /** The folder of this generator's scenes inside the cache root. */
  readonly dir: string;
  #tmp = 0;

  /** A cache of `gen`'s scenes under `root`. */
  constructor(root: string, readonly gen: SceneGenerator) {
    const s0 = gen.scene(0);
    const fingerprint = pathHash(
      String.fromCharCode(...s0.image.data.subarray(0, 4096)) + s0.instanceMap.data.join(","),
    );
    this.dir = join(
      root,
      `seed${gen.seed}-size${gen.size}-classes${gen.classes}-objects${gen.minObjects}-${gen.maxObjects}-${fingerprint}`,
    );
  }

  /** Scene `i`: read from the cache, or rendered and written there. */
  async scene(i: number): Promise<CachedScene> {
    const path = join(this.dir, `${i}.scene`);
    const kept = await Deno.readFile(path).then((b) => decodeScene(b, this.gen.size), () => null);
    if (kept) return kept;
    const s = this.gen.scene(i);
    const bytes = encodeScene(s);
    if (bytes) {
      // a unique temporary name per process and call; rename is atomic, and every writer writes the same bytes
      const tmp = `${path}.${Deno.pid}.${this.#tmp++}.tmp`;
      await Deno.mkdir(this.dir, { recursive: true });
      await Deno.writeFile(tmp, bytes);
      await Deno.rename(tmp, path);
    }
    return { image: s.image, instanceMap: s.instanceMap };
  }
}
