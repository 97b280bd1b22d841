/** The knn protocol's pieces on constructed cases, and the command end to end at a tiny size. */
import assert from "node:assert/strict";
import { knnClassify, regionFeatures } from "../../src/eval/knn.ts";
import { labelMap } from "../../src/data/image.ts";

Deno.test("regionFeatures averages C5 cells by each instance's area fraction and normalises", () => {
  // 4×4 pixels over a 2×2 C5 map: instance 1 covers the whole left column of cells, instance 2 one pixel
  const inst = labelMap(4, 4);
  for (let y = 0; y < 4; y++) for (let x = 0; x < 2; x++) inst.data[y * 4 + x] = 1;
  inst.data[3 * 4 + 3] = 2; // a quarter of cell (1,1)
  const C = 2;
  const c5 = [1, 0, 0, 1, 3, 0, 0, 5]; // cells (0,0)=[1,0] (0,1)=[0,1] (1,0)=[3,0] (1,1)=[0,5]
  const r = regionFeatures(c5, 2, 2, C, inst, 0.2);
  assert.deepEqual(r.map((x) => x.instance), [1, 2]);
  assert.deepEqual([...r[0].feature], [1, 0]); // mean of [1,0] and [3,0], normalised
  assert.deepEqual([...r[1].feature], [0, 1]);
  // below the minimum area (a quarter cell < 0.3) the region is dropped
  assert.deepEqual(regionFeatures(c5, 2, 2, C, inst, 0.3).map((x) => x.instance), [1]);
});

Deno.test("knnClassify takes similarity-weighted votes of the k nearest bank entries", () => {
  const v = (a: number, b: number) => Float64Array.from([a, b].map((x) => x / Math.hypot(a, b)));
  const bank = [v(1, 0), v(0.9, 0.1), v(0, 1), v(0.1, 0.9), v(0.2, 1)];
  const labels = [1, 1, 2, 2, 2];
  assert.deepEqual(knnClassify(bank, labels, [v(1, 0.05), v(0.05, 1)], 2), [1, 2]);
  // with k = 5 the weighted vote still follows similarity, not the majority class
  assert.deepEqual(knnClassify(bank, labels, [v(1, 0.02)], 5), [1]);
});

Deno.test("plrc eval --protocol knn --ckpt random runs and reports accuracy beside the majority baseline", async () => {
  const cli = new URL("../../cli.ts", import.meta.url).pathname;
  const out = await new Deno.Command(Deno.execPath(), {
    args: ["run", "-A", cli, "eval", "--ckpt", "random", "--protocol", "knn", "--train", "16", "--test", "8", "--json"],
  }).output();
  const text = new TextDecoder().decode(out.stdout);
  assert.equal(out.code, 0, new TextDecoder().decode(out.stderr));
  const r = JSON.parse(text.trim().split("\n").at(-1)!);
  assert.equal(r.protocol, "knn");
  assert.ok(r.testRegions > 0 && r.trainRegions > 0);
  assert.ok(r.accuracy >= 0 && r.accuracy <= 1 && r.majority >= 0 && r.majority <= 1, text);
  const bad = await new Deno.Command(Deno.execPath(), {
    args: ["run", "-A", cli, "eval", "--ckpt", "random", "--protocol", "segment"],
  })
    .output();
  assert.equal(bad.code, 2);
});
