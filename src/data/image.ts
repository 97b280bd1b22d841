/**
 * Host-side image types shared by the data pipeline: 8-bit RGB images and integer label maps, both
 * row-major with (x = column, y = row).
 *
 * @module
 */

/** An 8-bit RGB image, interleaved (`data[(y * width + x) * 3 + c]`). */
export interface RgbImage {
  /** Width in pixels. */
  width: number;
  /** Height in pixels. */
  height: number;
  /** Bytes, 3 per pixel. */
  data: Uint8Array;
}

/** A per-pixel integer label map (region ids or class ids; 0 may mean "none" where documented). */
export interface LabelMap {
  /** Width in pixels. */
  width: number;
  /** Height in pixels. */
  height: number;
  /** One label per pixel, row-major. */
  data: Int32Array;
}

/** An empty RGB image. */
export function rgbImage(width: number, height: number): RgbImage {
  return { width, height, data: new Uint8Array(width * height * 3) };
}

/** An empty label map. */
export function labelMap(width: number, height: number): LabelMap {
  return { width, height, data: new Int32Array(width * height) };
}
