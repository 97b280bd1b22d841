/**
 * A tiny raster canvas for the pictures plrc writes (RGB, 8-bit), saved with the project's PNG encoder.
 *
 * @module
 */
import { encodePng } from "../data/png.ts";
import { glyph, GLYPH_ADVANCE } from "./font.ts";

/** An RGB canvas. */
export class Canvas {
  /** RGB bytes, 3 per pixel, row-major. */
  readonly data: Uint8Array;
  /** A `width` × `height` canvas filled with `background`. */
  constructor(readonly width: number, readonly height: number, background: [number, number, number] = [255, 255, 255]) {
    this.data = new Uint8Array(width * height * 3);
    for (let i = 0; i < width * height; i++) this.data.set(background, 3 * i);
  }

  /** Blends `rgb` into pixel (x, y) with opacity `a` (outside pixels are ignored). */
  blend(x: number, y: number, rgb: readonly number[], a = 1): void {
    x = Math.round(x), y = Math.round(y);
    if (x < 0 || y < 0 || x >= this.width || y >= this.height) return;
    const i = 3 * (y * this.width + x);
    for (let c = 0; c < 3; c++) this.data[i + c] = Math.round(this.data[i + c] * (1 - a) + rgb[c] * a);
  }

  /** A filled axis-aligned square of side 2r+1 centred at (x, y). */
  square(x: number, y: number, r: number, rgb: readonly number[], a = 1): void {
    for (let dy = -r; dy <= r; dy++) for (let dx = -r; dx <= r; dx++) this.blend(x + dx, y + dy, rgb, a);
  }

  /** A line (DDA), `w` pixels wide. */
  line(x0: number, y0: number, x1: number, y1: number, rgb: readonly number[], w = 1): void {
    const n = Math.max(1, Math.ceil(Math.max(Math.abs(x1 - x0), Math.abs(y1 - y0))));
    for (let i = 0; i <= n; i++) this.square(x0 + (x1 - x0) * i / n, y0 + (y1 - y0) * i / n, (w - 1) >> 1, rgb);
  }

  /** A filled rectangle [x0, x1) × [y0, y1). */
  rect(x0: number, y0: number, x1: number, y1: number, rgb: readonly number[], a = 1): void {
    for (let y = Math.round(y0); y < Math.round(y1); y++) {
      for (let x = Math.round(x0); x < Math.round(x1); x++) this.blend(x, y, rgb, a);
    }
  }

  /** `text` in the built-in 5×7 font with its top-left corner at (x, y), each font pixel `scale`² pixels. */
  text(x: number, y: number, text: string, rgb: readonly number[], scale = 1): void {
    [...text].forEach((ch, i) => {
      glyph(ch).forEach((row, gy) =>
        row.forEach((ink, gx) => {
          if (ink) {
            this.rect(
              x + (i * GLYPH_ADVANCE + gx) * scale,
              y + gy * scale,
              x + (i * GLYPH_ADVANCE + gx + 1) * scale,
              y + (gy + 1) * scale,
              rgb,
            );
          }
        })
      );
    });
  }

  /** PNG bytes. */
  png(): Uint8Array {
    return encodePng({ width: this.width, height: this.height, channels: 3, depth: 8, samples: this.data });
  }
}

/** A distinct colour for label `k` (golden-angle hues). */
export function labelColor(k: number): [number, number, number] {
  const h = (k * 137.508) % 360, s = 0.75, v = 0.95;
  const c = v * s, x = c * (1 - Math.abs(((h / 60) % 2) - 1)), m = v - c;
  const [r, g, b] = h < 60
    ? [c, x, 0]
    : h < 120
    ? [x, c, 0]
    : h < 180
    ? [0, c, x]
    : h < 240
    ? [0, x, c]
    : h < 300
    ? [x, 0, c]
    : [c, 0, x];
  return [Math.round((r + m) * 255), Math.round((g + m) * 255), Math.round((b + m) * 255)];
}
