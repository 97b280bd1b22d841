/** COCO-style AP on hand-worked cases; every expected value is derived in the comments. */
import assert from "node:assert/strict";
import {
  averagePrecision,
  type Box,
  type Detection,
  evaluateDetections,
  type GtBox,
  iou,
  IOU_THRESHOLDS,
} from "../../src/eval/ap.ts";

const gt = (image: number, classId: number, box: Box): GtBox => ({ image, classId, box });
const det = (image: number, classId: number, box: Box, score: number): Detection => ({ image, classId, box, score });
const near = (a: number, b: number, what: string) => assert.ok(Math.abs(a - b) < 1e-12, `${what}: ${a} vs ${b}`);

Deno.test("IoU and the thresholds", () => {
  near(iou([0, 0, 10, 10], [0, 0, 10, 10]), 1, "same box");
  near(iou([0, 0, 10, 10], [5, 0, 15, 10]), 50 / 150, "half overlap"); // 50 / (100 + 100 − 50)
  near(iou([0, 0, 10, 10], [10, 0, 20, 10]), 0, "touching");
  assert.equal(IOU_THRESHOLDS.length, 10);
  near(IOU_THRESHOLDS[0], 0.5, "first");
  near(IOU_THRESHOLDS[9], 0.95, "last");
});

Deno.test("perfect detections give AP 1 at every threshold", () => {
  const gts = [gt(0, 0, [0, 0, 10, 10]), gt(0, 0, [20, 20, 30, 35]), gt(1, 0, [5, 5, 9, 9])];
  const dets = gts.map((g, i) => det(g.image, g.classId, g.box, 0.9 - 0.1 * i));
  const r = evaluateDetections(dets, gts, 1);
  assert.equal(r.ap, 1);
  assert.equal(r.ap50, 1);
});

Deno.test("a false positive ranked first halves the precision: AP 1/2", () => {
  // ranks: FP (score .9) then TP (.8); precision [0, 1/2], recall [0, 1]; monotone precision [1/2, 1/2];
  // every recall point 0..1 first reaches rank 0 (r = 0) or rank 1 (r > 0): 1/2 each, so AP = 1/2
  const gts = [gt(0, 0, [0, 0, 10, 10])];
  const dets = [det(0, 0, [50, 50, 60, 60], 0.9), det(0, 0, [0, 0, 10, 10], 0.8)];
  near(averagePrecision(dets, gts, 0.5), 0.5, "AP50");
  // ranked last instead, the false positive costs nothing: precision 1 at recall 1 → AP 1
  const later = [det(0, 0, [50, 50, 60, 60], 0.7), det(0, 0, [0, 0, 10, 10], 0.8)];
  near(averagePrecision(later, gts, 0.5), 1, "FP ranked last");
});

Deno.test("a duplicate is a false positive; half the objects found gives 51/101", () => {
  // one object found twice: TP then FP; recall reaches 1 at rank 0 with precision 1 → AP 1
  const one = [gt(0, 0, [0, 0, 10, 10])];
  const dup = [det(0, 0, [0, 0, 10, 10], 0.9), det(0, 0, [0, 0, 10, 10], 0.8)];
  near(averagePrecision(dup, one, 0.5), 1, "duplicate after the match");
  // two objects, only the first found (twice): recall 1/2 at precision 1; recall points 0, .01, ..., .5
  // (51 of 101) get precision 1, the rest 0 → AP = 51/101
  const two = [...one, gt(0, 0, [40, 40, 50, 50])];
  near(averagePrecision(dup, two, 0.5), 51 / 101, "half recall");
  // a duplicate must not match a box in another image
  near(averagePrecision([det(1, 0, [0, 0, 10, 10], 0.9)], one, 0.5), 0, "other image");
});

Deno.test("a box at IoU 0.625 counts at .5, .55 and .6 only: AP@[.5:.95] = 3/10, AP50 = 1", () => {
  // GT 10×10 at the origin, detection 10×16 from the origin: intersection 100, union 160 → IoU 0.625
  const gts = [gt(0, 0, [0, 0, 10, 10])];
  const dets = [det(0, 0, [0, 0, 10, 16], 0.5)];
  near(iou(dets[0].box, gts[0].box), 0.625, "IoU");
  const at = IOU_THRESHOLDS.map((t) => averagePrecision(dets, gts, t));
  assert.deepEqual(at, [1, 1, 1, 0, 0, 0, 0, 0, 0, 0]);
  const r = evaluateDetections(dets, gts, 1);
  near(r.ap, 0.3, "AP");
  near(r.ap50, 1, "AP50");
  near(r.ap75, 0, "AP75");
});

Deno.test("greedy matching takes the best unmatched box; empty predictions give 0", () => {
  // two overlapping objects; the top detection overlaps A with IoU 1 and B less, so it takes A; the second
  // detection (exactly B) then takes B → both true positives, AP 1
  const gts = [gt(0, 0, [0, 0, 10, 10]), gt(0, 0, [2, 0, 12, 10])];
  const dets = [det(0, 0, [0, 0, 10, 10], 0.9), det(0, 0, [2, 0, 12, 10], 0.8)];
  near(averagePrecision(dets, gts, 0.5), 1, "two overlapping");
  near(averagePrecision([], gts, 0.5), 0, "no detections");
  const r = evaluateDetections([], gts, 1);
  assert.equal(r.ap, 0);
  assert.equal(r.ap50, 0);
});

Deno.test("classes without ground truth are ignored; the mean is over classes with objects", () => {
  // class 0: perfect (AP 1); class 1: its only object missed (AP 0); class 2: detections but no objects
  // (ignored, NaN) → mean over classes 0 and 1 = 1/2; class 3 has neither (ignored)
  const gts = [gt(0, 0, [0, 0, 10, 10]), gt(0, 1, [20, 20, 30, 30])];
  const dets = [det(0, 0, [0, 0, 10, 10], 0.9), det(0, 2, [20, 20, 30, 30], 0.95)];
  const r = evaluateDetections(dets, gts, 4);
  near(r.ap, 0.5, "AP");
  near(r.ap50, 0.5, "AP50");
  assert.equal(r.perClass[0].ap, 1);
  assert.equal(r.perClass[1].ap, 0);
  assert.ok(Number.isNaN(r.perClass[2].ap) && Number.isNaN(r.perClass[3].ap));
  // a detection of the right box but the wrong class is a miss
  near(evaluateDetections([det(0, 1, [0, 0, 10, 10], 0.9)], [gts[0]], 2).ap, 0, "wrong class");
});

Deno.test("precision is interpolated from the right: TP, FP, TP over two objects", () => {
  // ranks: TP, FP, TP: precision [1, 1/2, 2/3], recall [1/2, 1/2, 1]; monotone [1, 2/3, 2/3];
  // recall points 0..0.5 (51) → rank 0 → 1; 0.51..1 (50) → rank 2 → 2/3; AP = (51 + 50·2/3)/101
  const gts = [gt(0, 0, [0, 0, 10, 10]), gt(1, 0, [0, 0, 10, 10])];
  const dets = [det(0, 0, [0, 0, 10, 10], 0.9), det(0, 0, [30, 30, 40, 40], 0.8), det(1, 0, [0, 0, 10, 10], 0.7)];
  near(averagePrecision(dets, gts, 0.5), (51 + (50 * 2) / 3) / 101, "AP");
});
