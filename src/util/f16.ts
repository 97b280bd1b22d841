/**
 * IEEE binary16 and bfloat16 conversions (round to nearest even), shared by tensors and checkpoints.
 *
 * @module
 */

const f32Scratch = new Float32Array(1);
const u32Scratch = new Uint32Array(f32Scratch.buffer);

/** Rounds a non-negative finite double to an integer, ties to even. */
function roundHalfEven(v: number): number {
  const f = Math.floor(v);
  const d = v - f; // exact for doubles
  if (d > 0.5) return f + 1;
  if (d < 0.5) return f;
  return f % 2 === 0 ? f : f + 1;
}

/**
 * Converts a number to IEEE 754 binary16 bits, rounding to nearest even.
 * Rounds directly from the double (no intermediate f32) to avoid double
 * rounding. Handles subnormals, overflow to infinity, signed zero and NaN.
 */
export function f32ToF16Bits(x: number): number {
  if (Number.isNaN(x)) return 0x7e00;
  const sign = x < 0 || Object.is(x, -0) ? 0x8000 : 0;
  const a = Math.abs(x);
  if (a === Infinity) return sign | 0x7c00;
  if (a < 2 ** -14) {
    // Subnormal range: the unit is 2^-24; a carry to 1024 yields the smallest
    // normal, whose bit pattern is exactly 0x0400.
    return sign | roundHalfEven(a * 2 ** 24);
  }
  let e = Math.floor(Math.log2(a));
  // log2 may be off by one near powers of two; fix it exactly.
  if (2 ** e > a) e--;
  else if (2 ** (e + 1) <= a) e++;
  if (e > 15) return sign | 0x7c00;
  const m = roundHalfEven(a * 2 ** (10 - e)); // in [1024, 2048]
  // Adding (not or-ing) lets a mantissa carry bump the exponent, up to inf.
  return sign | (((e + 15) << 10) + (m - 1024));
}

/** Converts IEEE 754 binary16 bits to a number (exact). */
export function f16BitsToF32(h: number): number {
  const sign = h & 0x8000 ? -1 : 1;
  const exp = (h >> 10) & 0x1f;
  const mant = h & 0x3ff;
  if (exp === 0) return sign * mant * 2 ** -24;
  if (exp === 31) return mant ? NaN : sign * Infinity;
  return sign * (1024 + mant) * 2 ** (exp - 25);
}

/** Converts a number to bfloat16 bits, rounding to nearest even. */
export function f32ToBf16Bits(x: number): number {
  f32Scratch[0] = x;
  const u = u32Scratch[0];
  if (Number.isNaN(x)) return (u >>> 16) | 0x40; // keep it a (quiet) NaN
  // Rounding the f32 (not the double) is the convention of every framework.
  return ((u + 0x7fff + ((u >>> 16) & 1)) >>> 16) & 0xffff;
}

export function bf16BitsToF32(b: number): number {
  u32Scratch[0] = b << 16;
  return f32Scratch[0];
}
