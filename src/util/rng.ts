/**
 * A small seeded PRNG (mulberry32) with uniform, integer, normal and log-uniform draws, and a state that
 * can be saved and restored (checkpoints resume the data stream exactly).
 *
 * @module
 */

/** Deterministic PRNG; the same seed gives the same stream on every machine. */
export class Rng {
  #s: number;
  /** A generator whose stream is fixed by `seed` (taken as an unsigned 32-bit integer). */
  constructor(seed: number) {
    this.#s = seed >>> 0;
  }
  /** The state, for checkpoints. */
  get state(): number {
    return this.#s;
  }
  set state(s: number) {
    this.#s = s >>> 0;
  }
  /** An independent generator derived from this seed and `salt` (e.g. an image index). */
  static derive(seed: number, salt: number): Rng {
    let h = (seed ^ Math.imul(salt + 0x9e3779b9, 0x85ebca6b)) >>> 0;
    h = Math.imul(h ^ (h >>> 16), 0x7feb352d) >>> 0;
    h = Math.imul(h ^ (h >>> 15), 0x846ca68b) >>> 0;
    return new Rng((h ^ (h >>> 16)) >>> 0);
  }
  /** Uniform in [0, 1). */
  next(): number {
    let t = (this.#s = (this.#s + 0x6d2b79f5) >>> 0);
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  }
  /** Uniform in [a, b). */
  uniform(a: number, b: number): number {
    return a + (b - a) * this.next();
  }
  /** Integer in [0, n). */
  int(n: number): number {
    return Math.floor(this.next() * n);
  }
  /** Standard normal (Box–Muller). */
  normal(): number {
    const u = 1 - this.next(), v = this.next();
    return Math.sqrt(-2 * Math.log(u)) * Math.cos(2 * Math.PI * v);
  }
  /** `n` normal values times `std`, rounded to f32 (what the GPU sees). */
  normals(n: number, std = 1): Float32Array {
    return Float32Array.from({ length: n }, () => this.normal() * std);
  }
  /** Fisher–Yates shuffle in place. */
  shuffle<T>(a: T[]): T[] {
    for (let i = a.length - 1; i > 0; i--) {
      const j = this.int(i + 1);
      [a[i], a[j]] = [a[j], a[i]];
    }
    return a;
  }
}
