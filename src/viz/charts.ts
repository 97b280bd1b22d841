/**
 * Grouped bar charts with error bars (the comparison's picture), drawn with the built-in 5×7 font.
 *
 * @module
 */
import { Canvas, labelColor } from "./draw.ts";
import { GLYPH_HEIGHT, textWidth } from "./font.ts";

/** One group of bars (e.g. a protocol metric), one bar per series (e.g. a method). */
export interface BarGroup {
  /** Group label under the bars. */
  label: string;
  /** One bar per series: mean and standard deviation. */
  bars: { mean: number; std: number }[];
}

/** The default chart width: 900 px, or wider where the bars would be too narrow for their value labels. */
export function chartWidth(groups: number, series: number): number {
  // a bar takes 80% of its group's share over the series; 30 px holds a label such as "31.5"
  return Math.max(900, 90 + Math.ceil((groups * series * 30) / 0.8));
}

/** `label` broken at spaces into lines of at most `width` pixels of the small font (a word longer stays whole). */
export function wrapLabel(label: string, width: number): string[] {
  const lines: string[] = [];
  for (const word of label.split(" ")) {
    const last = lines.length ? `${lines[lines.length - 1]} ${word}` : word;
    if (lines.length && textWidth(last, 1) <= width) lines[lines.length - 1] = last;
    else lines.push(word);
  }
  return lines;
}

/**
 * Bars for each group, one colour per series, ±std whiskers, value labels, a legend and a y axis. A group's
 * label too wide for its place wraps at spaces (two lines fit under the axis).
 */
export function renderBarChart(
  title: string,
  series: string[],
  groups: BarGroup[],
  o: { yLabel?: string; scale?: number; width?: number; height?: number } = {},
): Canvas {
  const k = o.scale ?? 2, W = o.width ?? chartWidth(groups.length, series.length), H = o.height ?? 460;
  const cv = new Canvas(W, H);
  const left = 70, right = 20, top = 40 + 12 * k, bottom = 50;
  const plotW = W - left - right, plotH = H - top - bottom;
  const maxV = Math.max(1e-9, ...groups.flatMap((g) => g.bars.map((b) => b.mean + b.std)));
  const yMax = niceCeil(maxV);
  const y = (v: number) => top + plotH * (1 - v / yMax);
  // a title too long for the large font is drawn at the small one rather than cut off
  const tk = textWidth(title, k) <= W - left - 4 ? k : 1;
  cv.text(tk === k ? left : 4, 10, title, [0, 0, 0], tk);
  // axis with 5 ticks
  cv.line(left, top, left, top + plotH, [0, 0, 0]);
  cv.line(left, top + plotH, left + plotW, top + plotH, [0, 0, 0]);
  for (let t = 0; t <= 5; t++) {
    const v = (yMax * t) / 5, yy = y(v);
    cv.line(left - 4, yy, left + plotW, yy, t === 0 ? [0, 0, 0] : [225, 225, 225]);
    const s = fmt(v);
    cv.text(left - 8 - textWidth(s, 1), yy - GLYPH_HEIGHT / 2, s, [60, 60, 60], 1);
  }
  if (o.yLabel) cv.text(4, top - 14, o.yLabel, [60, 60, 60], 1);
  const groupW = plotW / Math.max(1, groups.length), barW = (groupW * 0.8) / Math.max(1, series.length);
  groups.forEach((g, gi) => {
    const x0 = left + gi * groupW + groupW * 0.1;
    g.bars.forEach((b, si) => {
      const col = labelColor(si + 1), bx = x0 + si * barW;
      cv.rect(bx + 2, y(b.mean), bx + barW - 2, top + plotH, col);
      if (b.std > 0) {
        const cx = bx + barW / 2;
        cv.line(cx, y(b.mean + b.std), cx, y(Math.max(0, b.mean - b.std)), [0, 0, 0]);
        cv.line(cx - 4, y(b.mean + b.std), cx + 4, y(b.mean + b.std), [0, 0, 0]);
        cv.line(cx - 4, y(Math.max(0, b.mean - b.std)), cx + 4, y(Math.max(0, b.mean - b.std)), [0, 0, 0]);
      }
      const s = fmt(b.mean);
      cv.text(bx + barW / 2 - textWidth(s, 1) / 2, y(b.mean + b.std) - 10, s, [0, 0, 0], 1);
    });
    wrapLabel(g.label, groupW - 4).slice(0, 2).forEach((line, li) => {
      cv.text(x0 + (groupW * 0.8) / 2 - textWidth(line, 1) / 2, top + plotH + 8 + li * 10, line, [0, 0, 0], 1);
    });
  });
  // legend
  let lx = left;
  series.forEach((s, si) => {
    cv.rect(lx, H - 18, lx + 12, H - 6, labelColor(si + 1));
    cv.text(lx + 16, H - 16, s, [0, 0, 0], 1);
    lx += 16 + textWidth(s, 1) + 24;
  });
  return cv;
}

/** The smallest 1/2/5 × 10^k at or above v. */
export function niceCeil(v: number): number {
  const e = 10 ** Math.floor(Math.log10(v));
  for (const m of [1, 2, 5, 10]) if (m * e >= v) return m * e;
  return 10 * e;
}

function fmt(v: number): string {
  return Math.abs(v) >= 10 ? v.toFixed(0) : v.toFixed(1);
}
