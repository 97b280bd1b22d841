/** Procedural scenes: byte-identical for the same seed across instances, consistent ground truth, COCO export. */
import assert from "node:assert/strict";
import { join } from "node:path";
import { annotationMask, readCoco } from "../../src/data/coco.ts";
import { decodeImage } from "../../src/data/decode.ts";
import { readLabelMapPng } from "../../src/data/labelmap_png.ts";
import { exportScenes, type Scene, sceneClassNames, SceneGenerator } from "../../src/data/scenes.ts";

const sha = async (b: Uint8Array | Int32Array) =>
  Array.from(
    new Uint8Array(
      await crypto.subtle.digest("SHA-256", new Uint8Array(b.buffer as ArrayBuffer, b.byteOffset, b.byteLength)),
    ),
  )
    .map((x) => x.toString(16).padStart(2, "0")).join("");

async function fingerprint(s: Scene): Promise<string> {
  return `${await sha(s.image.data)} ${await sha(s.classMap.data)} ${await sha(s.instanceMap.data)} ${
    JSON.stringify(s.instances)
  }`;
}

Deno.test("the same seed gives byte-identical scenes in separate instances and any call order", async () => {
  const a = new SceneGenerator(1234, { size: 96 }), b = new SceneGenerator(1234, { size: 96 });
  const forward = [], backward = [];
  for (let i = 0; i < 6; i++) forward.push(await fingerprint(a.scene(i)));
  for (let i = 5; i >= 0; i--) backward.unshift(await fingerprint(b.scene(i)));
  assert.deepEqual(backward, forward);
  assert.deepEqual(a.scene(3).image.data, b.scene(3).image.data);
  // a different seed or index gives a different scene
  assert.notEqual(await fingerprint(new SceneGenerator(1235, { size: 96 }).scene(0)), forward[0]);
  assert.equal(new Set(forward).size, 6);
});

Deno.test("ground truth is consistent: class map = instance map's classes, boxes and areas from masks", () => {
  const gen = new SceneGenerator(7, { size: 128, classes: 6 }), R = 128;
  const seenClasses = new Set<number>();
  let objects = 0;
  for (let i = 0; i < 30; i++) {
    const s = gen.scene(i);
    assert.ok(s.instances.length >= 1 && s.instances.length <= 5, `scene ${i}: ${s.instances.length} objects`);
    const cls = new Map(s.instances.map((o) => [o.id, o.classId]));
    for (let p = 0; p < R * R; p++) {
      const id = s.instanceMap.data[p];
      assert.equal(s.classMap.data[p], id === 0 ? 0 : cls.get(id), `scene ${i} pixel ${p}`);
    }
    for (const o of s.instances) {
      seenClasses.add(o.classId);
      objects++;
      const m = SceneGenerator.instanceMask(s, o.id);
      let area = 0, x0 = R, y0 = R, x1 = -1, y1 = -1;
      for (let p = 0; p < R * R; p++) {
        if (!m[p]) continue;
        const x = p % R, y = Math.floor(p / R);
        area++, x0 = Math.min(x0, x), y0 = Math.min(y0, y), x1 = Math.max(x1, x), y1 = Math.max(y1, y);
      }
      assert.equal(o.area, area);
      assert.deepEqual(o.bbox, [x0, y0, x1 - x0 + 1, y1 - y0 + 1]);
      assert.ok(area >= 12, `scene ${i} instance ${o.id} area ${area}`);
      assert.ok(o.classId >= 1 && o.classId <= 6);
    }
  }
  assert.deepEqual([...seenClasses].sort(), [1, 2, 3, 4, 5, 6]);
  assert.ok(objects / 30 > 2.5, `mean objects ${objects / 30}`);
});

Deno.test("colour alone does not give the class: a nearest-mean-colour classifier is far from perfect", () => {
  // class means from 40 scenes, evaluated on 40 others, per object (mean colour of its visible pixels)
  const gen = new SceneGenerator(99, { size: 96, classes: 6 });
  const objColours = (from: number) => {
    const out: { c: number; rgb: number[] }[] = [];
    for (let i = from; i < from + 40; i++) {
      const s = gen.scene(i);
      for (const o of s.instances) {
        const sum = [0, 0, 0];
        for (let p = 0; p < s.instanceMap.data.length; p++) {
          if (s.instanceMap.data[p] === o.id) { for (let c = 0; c < 3; c++) sum[c] += s.image.data[p * 3 + c]; }
        }
        out.push({ c: o.classId, rgb: sum.map((v) => v / o.area) });
      }
    }
    return out;
  };
  const train = objColours(0), test = objColours(1000);
  const means = Array.from({ length: 7 }, (_, c) => {
    const xs = train.filter((o) => o.c === c);
    return [0, 1, 2].map((k) => xs.reduce((s, o) => s + o.rgb[k], 0) / Math.max(1, xs.length));
  });
  let right = 0;
  for (const o of test) {
    let best = 1, bd = Infinity;
    for (let c = 1; c <= 6; c++) {
      const d = means[c].reduce((s, m, k) => s + (m - o.rgb[k]) ** 2, 0);
      if (d < bd) bd = d, best = c;
    }
    right += best === o.c ? 1 : 0;
  }
  const acc = right / test.length;
  assert.ok(acc < 0.75, `colour-only accuracy ${acc.toFixed(2)} (chance 0.17)`);
  assert.ok(acc > 0.17, `colour is still a weak cue: ${acc.toFixed(2)}`);
});

Deno.test("exported scenes read back: PNG pixels, COCO boxes/labels/RLE masks, class-map PNGs", async () => {
  const dir = await Deno.makeTempDir();
  try {
    const gen = new SceneGenerator(5, { size: 64, classes: 4 });
    const ex = await exportScenes(dir, gen, 4);
    const coco = await readCoco(ex.annotations);
    assert.deepEqual(coco.categories.map((c) => c.name), sceneClassNames(4));
    assert.equal(coco.images.length, 4);
    assert.equal(coco.annotations.length, ex.instances);
    for (const im of coco.images) {
      const s = gen.scene(im.id - 1);
      const img = await decodeImage(await Deno.readFile(join(dir, im.file_name)));
      assert.deepEqual(img.data, s.image.data);
      const anns = coco.byImage.get(im.id)!;
      assert.equal(anns.length, s.instances.length);
      anns.forEach((a, k) => {
        const o = s.instances[k];
        assert.deepEqual([a.category_id, a.bbox, a.area], [o.classId, o.bbox, o.area]);
        assert.equal(typeof (a.segmentation as { counts: unknown }).counts, "string");
        assert.deepEqual(annotationMask(a, 64, 64), SceneGenerator.instanceMask(s, o.id));
      });
      const cm = await readLabelMapPng(join(dir, "classmaps", im.file_name.slice("images/".length)));
      assert.deepEqual(cm.map.data, s.classMap.data);
    }
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});
