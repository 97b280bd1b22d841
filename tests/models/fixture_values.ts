/**
 * The TypeScript twin of `fixture_value` in tools/make_resnet_fixtures.py: deterministic tensor values
 * from mulberry32 seeded by the FNV-1a hash of the tensor's name, so fixtures need not store parameters.
 */
import { Rng } from "../../src/util/rng.ts";

/** FNV-1a (32-bit) of the UTF-8 bytes of `name`. */
export function fnv1a(name: string): number {
  let h = 0x811c9dc5;
  for (const b of new TextEncoder().encode(name)) h = Math.imul(h ^ b, 0x01000193) >>> 0;
  return h;
}

/** Values of one tensor in PyTorch layout, rounded to f32. */
export function fixtureValue(name: string, shape: number[], kind: string): Float32Array {
  const n = shape.reduce((a, b) => a * b, 1);
  const rng = new Rng(fnv1a(name));
  const out = new Float32Array(n);
  for (let i = 0; i < n; i++) {
    const u = rng.next();
    switch (kind) {
      case "conv":
        out[i] = (2 * u - 1) * Math.sqrt(3 / (shape[1] * shape[2] * shape[3]));
        break;
      case "linear":
        out[i] = (2 * u - 1) * Math.sqrt(3 / shape[1]);
        break;
      case "bn_last_weight":
        out[i] = 0.1 * (0.5 + u);
        break;
      case "bn_weight":
      case "running_var":
        out[i] = 0.5 + u;
        break;
      case "bn_bias":
        out[i] = u - 0.5;
        break;
      case "running_mean":
        out[i] = 0.2 * (u - 0.5);
        break;
      default:
        out[i] = 2 * u - 1;
    }
  }
  return out;
}

/** NCHW → NHWC. */
export function nchwToNhwc(x: ArrayLike<number>, n: number, c: number, h: number, w: number): Float32Array {
  const out = new Float32Array(n * c * h * w);
  for (let a = 0; a < n; a++) {
    for (let ch = 0; ch < c; ch++) {
      for (let y = 0; y < h; y++) {
        for (let xx = 0; xx < w; xx++) out[((a * h + y) * w + xx) * c + ch] = x[((a * c + ch) * h + y) * w + xx];
      }
    }
  }
  return out;
}
