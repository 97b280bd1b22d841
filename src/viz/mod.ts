/**
 * Pictures as PNG: an RGB canvas with lines, boxes and a small bitmap font; bar charts and loss curves; a
 * training sample with its crops, region masks and matched points; and point-affinity maps of a backbone.
 *
 * @example A bar chart written as PNG bytes
 * ```ts
 * import { renderBarChart } from "./mod.ts";
 *
 * const chart = renderBarChart("k-NN accuracy", ["random", "plrc"], [{ label: "scenes", bars: [{ mean: 0.4, std: 0.02 }, { mean: 0.6, std: 0.03 }] }]);
 * console.log(chart.width, chart.height, chart.png().length > 0);
 * ```
 *
 * @module
 */
export {
  affinityMap,
  bilinearSample,
  cosine,
  heatColor,
  mapViewPoint,
  pickQueryCells,
  type ViewGeometry,
} from "./affinity.ts";
export { type BarGroup, renderBarChart } from "./charts.ts";
export { Canvas, labelColor } from "./draw.ts";
export { type AffinityPicture, renderAffinity, renderCurves, renderSample } from "./pictures.ts";
