/** COCO reader: compressed/uncompressed RLE, polygons, validation messages for malformed files. */
import assert from "node:assert/strict";
import { join } from "node:path";
import {
  annotationMask,
  CocoError,
  parseCoco,
  rasterizePolygons,
  readCoco,
  rleDecode,
  rleEncode,
  rleFromString,
  rleToString,
} from "../../src/data/coco.ts";
import { Rng } from "../../src/util/rng.ts";

Deno.test("compressed RLE strings: a hand-worked example and random round trips", () => {
  // 3 → "3", 2 → "2", 40 → "X1" (two 5-bit groups), 4th run 1 is stored as 1 − 2 = −1 → "O"
  assert.equal(rleToString([3, 2, 40, 1]), "32X1O");
  assert.deepEqual(rleFromString("32X1O"), [3, 2, 40, 1]);
  const rng = new Rng(9);
  for (let t = 0; t < 200; t++) {
    const counts = Array.from({ length: 1 + rng.int(30) }, (_, i) => (i === 0 ? rng.int(50) : 1 + rng.int(5000)));
    assert.deepEqual(rleFromString(rleToString(counts)), counts);
  }
  assert.throws(() => rleFromString("X"), /ends inside a number/);
});

Deno.test("RLE counts are column-major and start with zeros", () => {
  // 3×2 mask (w 3, h 2): row 0 = 0 1 1, row 1 = 0 0 1 → columns: [0,0] [1,0] [1,1]
  const mask = Uint8Array.from([0, 1, 1, 0, 0, 1]);
  assert.deepEqual(rleEncode(mask, 3, 2), [2, 1, 1, 2]);
  assert.deepEqual(rleDecode([2, 1, 1, 2], 3, 2), mask);
  assert.deepEqual(rleEncode(Uint8Array.from([1, 1]), 2, 1), [0, 2]);
  const rng = new Rng(2);
  const m = Uint8Array.from({ length: 17 * 13 }, () => (rng.next() < 0.3 ? 1 : 0));
  assert.deepEqual(rleDecode(rleEncode(m, 17, 13), 17, 13), m);
});

Deno.test("polygons rasterise by pixel centres (rectangle exact; triangle by hand)", () => {
  const rect = rasterizePolygons([[1, 1, 4, 1, 4, 3, 1, 3]], 6, 4);
  const want = new Uint8Array(24);
  for (let y = 1; y < 3; y++) for (let x = 1; x < 4; x++) want[y * 6 + x] = 1;
  assert.deepEqual(rect, want);
  // right triangle (0,0) (4,0) (0,4): centre (x+.5, y+.5) inside when x + y + 1 < 4
  const tri = rasterizePolygons([[0, 0, 4, 0, 0, 4]], 4, 4);
  for (let y = 0; y < 4; y++) {
    for (let x = 0; x < 4; x++) assert.equal(tri[y * 4 + x], x + y + 1 < 4 ? 1 : 0, `${x},${y}`);
  }
  // two polygons are a union
  const two = rasterizePolygons([[0, 0, 1, 0, 1, 1, 0, 1], [2, 2, 3, 2, 3, 3, 2, 3]], 3, 3);
  assert.deepEqual(Array.from(two), [1, 0, 0, 0, 0, 0, 0, 0, 1]);
});

const VALID = {
  images: [{ id: 7, file_name: "a.jpg", width: 3, height: 2 }],
  categories: [{ id: 1, name: "cat" }, { id: 2, name: "dog", supercategory: "animal" }],
  annotations: [
    { id: 1, image_id: 7, category_id: 1, bbox: [1, 0, 2, 2], iscrowd: 0, segmentation: [[1, 0, 3, 0, 3, 2, 1, 2]] },
    {
      id: 2,
      image_id: 7,
      category_id: 2,
      bbox: [1, 0, 2, 2],
      iscrowd: 1,
      segmentation: { size: [2, 3], counts: [2, 1, 1, 2] },
    },
    {
      id: 3,
      image_id: 7,
      category_id: 2,
      bbox: [1, 0, 2, 2],
      segmentation: { size: [2, 3], counts: rleToString([2, 1, 1, 2]) },
    },
    { id: 4, image_id: 7, category_id: 1, bbox: [0, 0, 1, 2], area: 2 },
  ],
};

Deno.test("a valid file: categories, per-image annotations, masks from polygon, RLE array, RLE string, box", async () => {
  const dir = await Deno.makeTempDir();
  try {
    await Deno.writeTextFile(join(dir, "ann.json"), JSON.stringify(VALID));
    const ds = await readCoco(join(dir, "ann.json"));
    assert.deepEqual(ds.categories, VALID.categories);
    assert.equal(ds.byImage.get(7)!.length, 4);
    const masks = ds.annotations.map((a) => Array.from(annotationMask(a, 3, 2)));
    assert.deepEqual(masks[0], [0, 1, 1, 0, 1, 1]);
    assert.deepEqual(masks[1], [0, 1, 1, 0, 0, 1]);
    assert.deepEqual(masks[2], masks[1]);
    assert.deepEqual(masks[3], [1, 0, 0, 1, 0, 0]);
    assert.deepEqual([ds.annotations[1].iscrowd, ds.annotations[2].iscrowd, ds.annotations[3].area], [1, 0, 2]);
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("malformed files give errors that name the file and the JSON path", async () => {
  const dir = await Deno.makeTempDir();
  try {
    await Deno.writeTextFile(join(dir, "bad.json"), '{"images": [');
    await assert.rejects(
      readCoco(join(dir, "bad.json")),
      (e) => e instanceof CocoError && /bad\.json: malformed JSON/.test(e.message),
    );
    await assert.rejects(readCoco(join(dir, "missing.json")), /cannot read/);
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
  const bad = (patch: (d: typeof VALID) => unknown, re: RegExp) => {
    const d = structuredClone(VALID);
    const out = patch(d) ?? d;
    assert.throws(() => parseCoco(out, "x.json"), (e) => e instanceof CocoError && re.test(e.message), String(re));
  };
  bad(() => [], /x\.json: \(top level\) must be an object/);
  bad((d) => ({ ...d, images: undefined }), /images must be an array/);
  bad((d) => void (d.images[0].width = 0), /images\[0\]\.width must be a positive integer/);
  bad((d) => void (d.annotations[0].image_id = 8), /annotations\[0\]\.image_id \(8\) names no image/);
  bad((d) => void (d.annotations[1].category_id = 5), /annotations\[1\]\.category_id \(5\) names no category/);
  bad((d) => void ((d.annotations[0] as { bbox: unknown }).bbox = [1, 2, 3]), /annotations\[0\]\.bbox must be/);
  bad((d) => void (d.annotations[0].segmentation = [[1, 2, 3, 4]]), /segmentation\[0\] must be a polygon/);
  bad(
    (d) => void (d.annotations[1].segmentation = { size: [3, 3], counts: [9] }),
    /segmentation\.size must be \[height, width\]/,
  );
  bad(
    (d) => void (d.annotations[1].segmentation = { size: [2, 3], counts: [2, 1] }),
    /covers 3 pixels, its image has 6/,
  );
  bad((d) => void (d.annotations[2].segmentation = { size: [2, 3], counts: "a b" }), /not a valid compressed RLE/);
  bad((d) => void (d.annotations[1].iscrowd = 2 as 0), /iscrowd must be 0 or 1/);
  bad((d) => void d.categories.push({ id: 1, name: "again" }), /categories has duplicate ids/);
});
