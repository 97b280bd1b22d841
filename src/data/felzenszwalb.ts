/**
 * Felzenszwalb–Huttenlocher graph segmentation (IJCV 2004), the region source DetCon uses: Gaussian
 * pre-smoothing of each channel, an 8-neighbour grid graph weighted by the RGB Euclidean distance of the
 * smoothed image, Kruskal-order merging with union-find under the adaptive threshold τ(C) = k/|C|, then
 * merging of components smaller than the minimum size. Parameters follow skimage's `felzenszwalb` on
 * 0..255 intensities (its `scale` is our `k`).
 *
 * @module
 */
import { type LabelMap, labelMap, type RgbImage } from "./image.ts";

/** FH parameters. */
export interface FhOptions {
  /** k: larger values give larger segments (DetCon: 1000). */
  scale: number;
  /** Gaussian σ of the pre-smoothing, in pixels (0: none). */
  sigma: number;
  /** Components smaller than this are merged into a neighbour. */
  minSize: number;
}

/** The short side of a typical ImageNet image (500×375), the scale DetCon's min size 1000 was set for. */
export const IMAGENET_SHORT_SIDE = 375;

/**
 * DetCon's min size (1000 at ImageNet scale) scaled by area to images whose short side is `shortSide`:
 * round(1000·(shortSide/375)²), e.g. 466 for the cache's default 256.
 */
export function defaultMinSize(shortSide: number): number {
  return Math.max(1, Math.round(1000 * (shortSide / IMAGENET_SHORT_SIDE) ** 2));
}

/** DetCon's setting for images of short side `shortSide` (k 1000, σ 0.8 as in skimage, scaled min size). */
export function defaultFhOptions(shortSide = 256): FhOptions {
  return { scale: 1000, sigma: 0.8, minSize: defaultMinSize(shortSide) };
}

/** scipy's "reflect" boundary (d c b a | a b c d | d c b a), for any offset. */
function reflect(i: number, n: number): number {
  const period = 2 * n;
  i = ((i % period) + period) % period;
  return i < n ? i : period - 1 - i;
}

/** Separable Gaussian blur of an RGB image into float channels (truncated at 4σ, like scipy). */
export function gaussianSmooth(img: RgbImage, sigma: number): Float32Array {
  const { width: W, height: H } = img, n = W * H;
  const out = Float32Array.from(img.data);
  if (!(sigma > 0)) return out;
  const r = Math.floor(4 * sigma + 0.5), k = new Float64Array(2 * r + 1);
  let sum = 0;
  for (let i = -r; i <= r; i++) sum += k[i + r] = Math.exp(-(i * i) / (2 * sigma * sigma));
  for (let i = 0; i < k.length; i++) k[i] /= sum;
  const tmp = new Float32Array(n * 3);
  for (let y = 0; y < H; y++) {
    for (let x = 0; x < W; x++) {
      let a = 0, b = 0, c = 0;
      for (let t = -r; t <= r; t++) {
        const s = (y * W + reflect(x + t, W)) * 3, w = k[t + r];
        a += w * out[s], b += w * out[s + 1], c += w * out[s + 2];
      }
      const d = (y * W + x) * 3;
      tmp[d] = a, tmp[d + 1] = b, tmp[d + 2] = c;
    }
  }
  for (let y = 0; y < H; y++) {
    for (let x = 0; x < W; x++) {
      let a = 0, b = 0, c = 0;
      for (let t = -r; t <= r; t++) {
        const s = (reflect(y + t, H) * W + x) * 3, w = k[t + r];
        a += w * tmp[s], b += w * tmp[s + 1], c += w * tmp[s + 2];
      }
      const d = (y * W + x) * 3;
      out[d] = a, out[d + 1] = b, out[d + 2] = c;
    }
  }
  return out;
}

/**
 * Segments `img`; returns region ids 1..n numbered in raster order of each region's first pixel
 * (deterministic: edges are ordered by weight quantised to 1/64 and then by edge index).
 */
export function felzenszwalb(img: RgbImage, opts: FhOptions): LabelMap {
  const { width: W, height: H } = img, n = W * H;
  const f = gaussianSmooth(img, opts.sigma);
  // 8-neighbourhood: right, down, down-right, up-right (each undirected edge once)
  const cap = 4 * n, ea = new Int32Array(cap), eb = new Int32Array(cap), ew = new Float32Array(cap);
  let m = 0;
  const add = (p: number, q: number) => {
    const dr = f[p * 3] - f[q * 3], dg = f[p * 3 + 1] - f[q * 3 + 1], db = f[p * 3 + 2] - f[q * 3 + 2];
    ea[m] = p, eb[m] = q, ew[m++] = Math.sqrt(dr * dr + dg * dg + db * db);
  };
  for (let y = 0; y < H; y++) {
    for (let x = 0; x < W; x++) {
      const p = y * W + x;
      if (x + 1 < W) add(p, p + 1);
      if (y + 1 < H) add(p, p + W);
      if (x + 1 < W && y + 1 < H) add(p, p + W + 1);
      if (x + 1 < W && y > 0) add(p, p - W + 1);
    }
  }
  const order = countingSort(ew, m);
  const parent = new Int32Array(n), size = new Int32Array(n).fill(1), thresh = new Float64Array(n).fill(opts.scale);
  for (let i = 0; i < n; i++) parent[i] = i;
  const find = (p: number) => {
    let r = p;
    while (parent[r] !== r) r = parent[r];
    while (parent[p] !== r) {
      const nx = parent[p];
      parent[p] = r, p = nx;
    }
    return r;
  };
  const join = (a: number, b: number) => {
    if (size[a] < size[b]) [a, b] = [b, a];
    parent[b] = a, size[a] += size[b];
    return a;
  };
  for (let i = 0; i < m; i++) {
    const e = order[i], a = find(ea[e]), b = find(eb[e]), w = ew[e];
    if (a !== b && w <= thresh[a] && w <= thresh[b]) {
      const r = join(a, b);
      thresh[r] = w + opts.scale / size[r];
    }
  }
  for (let i = 0; i < m; i++) {
    const e = order[i], a = find(ea[e]), b = find(eb[e]);
    if (a !== b && (size[a] < opts.minSize || size[b] < opts.minSize)) join(a, b);
  }
  const out = labelMap(W, H), id = new Int32Array(n);
  let next = 0;
  for (let p = 0; p < n; p++) {
    const r = find(p);
    if (id[r] === 0) id[r] = ++next;
    out.data[p] = id[r];
  }
  return out;
}

/** Edge indices ordered by weight (quantised to 1/64, stable by index): O(m), no comparator sort. */
function countingSort(w: Float32Array, m: number): Int32Array {
  const q = new Int32Array(m);
  let max = 0;
  for (let i = 0; i < m; i++) max = Math.max(max, q[i] = Math.round(w[i] * 64));
  const start = new Int32Array(max + 2);
  for (let i = 0; i < m; i++) start[q[i] + 1]++;
  for (let b = 1; b < start.length; b++) start[b] += start[b - 1];
  const order = new Int32Array(m);
  for (let i = 0; i < m; i++) order[start[q[i]]++] = i;
  return order;
}

/** Number of distinct ids in a label map. */
export function countRegions(map: LabelMap): number {
  return new Set(map.data).size;
}
