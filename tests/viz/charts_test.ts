import assert from "node:assert/strict";
import { chartWidth, renderBarChart, wrapLabel } from "../../src/viz/charts.ts";
import { textWidth } from "../../src/viz/font.ts";

Deno.test("charts: wide enough for many bars; a long group label wraps at spaces", () => {
  assert.equal(chartWidth(4, 4), 900);
  assert.equal(chartWidth(9, 5), 90 + Math.ceil((9 * 5 * 30) / 0.8));
  assert.deepEqual(wrapLabel("detect-frozen ap50", 1000), ["detect-frozen ap50"]);
  assert.deepEqual(wrapLabel("detect-frozen ap50", textWidth("detect-frozen", 1)), ["detect-frozen", "ap50"]);
  assert.deepEqual(wrapLabel("a b c", textWidth("a b", 1)), ["a b", "c"]);
  const groups = Array.from({ length: 9 }, (_, i) => ({
    label: `detect-frozen ap${i}`,
    bars: Array.from({ length: 5 }, (_, j) => ({ mean: 10 + i + j, std: 1 })),
  }));
  const cv = renderBarChart("t", ["a", "b", "c", "d", "e"], groups);
  assert.equal(cv.width, chartWidth(9, 5));
});
