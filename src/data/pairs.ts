/**
 * Geometric matching of A0 and B0 positions on the S×S grid (PixPro's positive-pair rule).
 *
 * For crop coords [x0, y0, x1, y1] (x0 > x1 when flipped), bin sizes are bw = (x1 − x0)/S and
 * bh = (y1 − y0)/S (signed), and position u = row·S + col has centre (x0 + (col + 0.5)·bw,
 * y0 + (row + 0.5)·bh) in normalised original-image coords. Positions u of A0 and v of B0 match iff
 * ‖centre(u) − centre(v)‖ / D < ratio, with D the larger of the two bin diagonals and ratio 0.5.
 *
 * {@link matchPairs} visits, for each A0 position, only the B0 rows and columns whose centres can lie within
 * the radius (plus one bin of margin) and applies the exact test there, so its result equals
 * {@link matchPairsBruteForce} (O(S⁴)) while costing O(S² · k²) with k ≈ 2–3.
 *
 * @module
 */

/** Matched positions of one image: pair m is (a[m], b[m]), sorted by a then b. */
export interface Pairs {
  /** A0 positions. */
  a: Uint32Array;
  /** B0 positions. */
  b: Uint32Array;
}

/** Bin geometry of one view on an S-grid. */
interface Bins {
  x0: number;
  y0: number;
  bw: number;
  bh: number;
}

function bins(coords: ArrayLike<number>, size: number): Bins {
  return { x0: coords[0], y0: coords[1], bw: (coords[2] - coords[0]) / size, bh: (coords[3] - coords[1]) / size };
}

/** The squared match radius, as a function of the two views' bins (the exact test shared by both matchers). */
function radius(q: Bins, k: Bins, ratio: number): number {
  const d = Math.max(Math.hypot(q.bw, q.bh), Math.hypot(k.bw, k.bh));
  return ratio * d;
}

/** Whether centre (cx, cy) matches B0 cell (row, col): the one distance test used everywhere. */
function close(cx: number, cy: number, k: Bins, row: number, col: number, d: number, ratio: number): boolean {
  const dx = cx - (k.x0 + (col + 0.5) * k.bw), dy = cy - (k.y0 + (row + 0.5) * k.bh);
  return Math.sqrt(dx * dx + dy * dy) / d < ratio;
}

/** Integer index range [lo, hi] of cells whose centre o + (c + 0.5)·b lies within `r` of `p`, with margin. */
function window(p: number, r: number, o: number, b: number, size: number): [number, number] {
  if (Math.abs(b) < 1e-12) return [0, size - 1]; // degenerate crop: test everything
  let t0 = (p - r - o) / b - 0.5, t1 = (p + r - o) / b - 0.5;
  if (t0 > t1) [t0, t1] = [t1, t0];
  return [Math.max(0, Math.floor(t0) - 1), Math.min(size - 1, Math.ceil(t1) + 1)];
}

/** Geometrically matched (A0, B0) positions for crop coords `q` (A0) and `k` (B0) on a `size`×`size` grid. */
export function matchPairs(q: ArrayLike<number>, k: ArrayLike<number>, size: number, ratio = 0.5): Pairs {
  const bq = bins(q, size), bk = bins(k, size);
  const r = radius(bq, bk, ratio), d = r / ratio;
  const a: number[] = [], b: number[] = [];
  for (let row = 0; row < size; row++) {
    const cy = bq.y0 + (row + 0.5) * bq.bh;
    const [r0, r1] = window(cy, r, bk.y0, bk.bh, size);
    for (let col = 0; col < size; col++) {
      const cx = bq.x0 + (col + 0.5) * bq.bw;
      const [c0, c1] = window(cx, r, bk.x0, bk.bw, size);
      const u = row * size + col;
      for (let vr = r0; vr <= r1; vr++) {
        for (let vc = c0; vc <= c1; vc++) {
          if (close(cx, cy, bk, vr, vc, d, ratio)) a.push(u), b.push(vr * size + vc);
        }
      }
    }
  }
  return { a: Uint32Array.from(a), b: Uint32Array.from(b) };
}

/** The O(S⁴) reference: tests every (u, v) with the same distance expression. */
export function matchPairsBruteForce(q: ArrayLike<number>, k: ArrayLike<number>, size: number, ratio = 0.5): Pairs {
  const bq = bins(q, size), bk = bins(k, size);
  const d = radius(bq, bk, ratio) / ratio;
  const a: number[] = [], b: number[] = [];
  for (let u = 0; u < size * size; u++) {
    const cx = bq.x0 + ((u % size) + 0.5) * bq.bw, cy = bq.y0 + (Math.floor(u / size) + 0.5) * bq.bh;
    for (let v = 0; v < size * size; v++) {
      if (close(cx, cy, bk, Math.floor(v / size), v % size, d, ratio)) a.push(u), b.push(v);
    }
  }
  return { a: Uint32Array.from(a), b: Uint32Array.from(b) };
}

/**
 * CSR row pointers `[rows + 1]` for `keys` sorted ascending (entries of row t are ptr[t] .. ptr[t+1]−1).
 */
export function rowPointers(keys: Uint32Array, rows: number): Uint32Array {
  const ptr = new Uint32Array(rows + 1);
  for (const k of keys) ptr[k + 1]++;
  for (let t = 0; t < rows; t++) ptr[t + 1] += ptr[t];
  return ptr;
}

/**
 * The transpose of a CSR over `keys` (any order): row pointers by key and, per row, the entry indices in
 * ascending order (a stable counting sort).
 */
export function transposeIndex(keys: Uint32Array, rows: number): { ptr: Uint32Array; entries: Uint32Array } {
  const ptr = new Uint32Array(rows + 1);
  for (const k of keys) ptr[k + 1]++;
  for (let t = 0; t < rows; t++) ptr[t + 1] += ptr[t];
  const fill = ptr.slice(0, rows), entries = new Uint32Array(keys.length);
  for (let m = 0; m < keys.length; m++) entries[fill[keys[m]]++] = m;
  return { ptr, entries };
}
