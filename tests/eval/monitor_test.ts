/**
 * The k-NN monitor during pre-training: records every `eval.knnEvery` steps and after the last, in
 * RUN/monitor.jsonl; the last one equals `plrc eval --protocol knn` of the final checkpoint with the same
 * image counts (the monitor reads the online backbone in place, weights and BN statistics after the step);
 * on a folder source it reads a COCO set; a bad annotation file stops the run before it starts.
 */
import assert from "node:assert/strict";
import { join } from "node:path";
import { exportScenes, SceneGenerator } from "../../src/data/scenes.ts";
import { GPU_TEST, runCli } from "../util.ts";

const plrc = runCli;

const lines = async (f: string) => (await Deno.readTextFile(f)).trim().split("\n").map((l) => JSON.parse(l));

Deno.test({
  name: "the k-NN monitor records every N steps and after the last; its last record is plrc eval of the checkpoint",
  ...GPU_TEST,
  async fn() {
    const dir = await Deno.makeTempDir();
    try {
      const knn = ["--set", "eval.knnTrain=30", "--set", "eval.knnTest=30"];
      const r = await plrc(["pretrain", "--out", dir, "--set", "eval.knnEvery=2", "--set", "train.maxSteps=3", ...knn]);
      assert.equal(r.code, 0, r.text);
      assert.match(r.text, /knn monitor every 2 steps: .*bank 30 and 30 scored images at 64 px from held-out/);
      assert.match(r.text, /monitor at step 2: knn_accuracy 0\.\d+/);
      const recs = await lines(join(dir, "monitor.jsonl"));
      assert.deepEqual(recs.map((x) => x.step), [1, 2]);
      for (const x of recs) assert.ok(x.knn_accuracy >= 0 && x.knn_accuracy <= 1 && x.knn_test_regions > 50);
      const ev = await plrc([
        "eval",
        "--ckpt",
        join(dir, "checkpoints", "last.safetensors"),
        "--protocol",
        "knn",
        "--train",
        "30",
        "--test",
        "30",
        "--json",
      ]);
      assert.equal(ev.code, 0, ev.text);
      const e = JSON.parse(ev.stdout.trim().split("\n").pop()!);
      assert.equal(recs[1].knn_accuracy, e.accuracy);
      assert.equal(recs[1].knn_majority, e.majority);
      assert.equal(recs[1].knn_test_regions, e.testRegions);
      // visualize curves draws the monitor's records beside the losses
      const v = await plrc([
        "visualize",
        "curves",
        "--metrics",
        join(dir, "metrics.jsonl"),
        "--out",
        join(dir, "c.png"),
      ]);
      assert.equal(v.code, 0, v.text);
      assert.match(v.text, /\(3 steps, 2 k-NN records\)/);
      assert.ok((await Deno.stat(join(dir, "c.png"))).size > 1000);
    } finally {
      await Deno.remove(dir, { recursive: true });
    }
  },
});

Deno.test({
  name: "on a folder source the k-NN monitor reads a COCO set; a bad annotation file exits 2 before training",
  ...GPU_TEST,
  async fn() {
    const dir = await Deno.makeTempDir();
    try {
      const ex = await exportScenes(join(dir, "coco"), new SceneGenerator(5, { size: 96, classes: 3 }), 12);
      const base = ["pretrain", "--data", join(dir, "coco", "images"), "--set", "eval.knnEvery=1"];
      const sets = ["--set", "train.maxSteps=1", "--set", "eval.knnTrain=6", "--set", "eval.knnTest=6"];
      const bad = await plrc([...base, "--out", join(dir, "r0"), ...sets, "--set", `eval.knnAnn=${dir}/none.json`]);
      assert.equal(bad.code, 2, bad.text);
      assert.match(bad.text, /eval\.knnAnn: .*none\.json/);
      assert.doesNotMatch(bad.text, /adapter:/);
      const r = await plrc([...base, "--out", join(dir, "r1"), ...sets, "--set", `eval.knnAnn=${ex.annotations}`]);
      assert.equal(r.code, 0, r.text);
      assert.match(r.text, /from the images of .*annotations\.json/);
      const recs = await lines(join(dir, "r1", "monitor.jsonl"));
      assert.equal(recs.length, 1);
      assert.ok(recs[0].knn_test_regions > 0);
    } finally {
      await Deno.remove(dir, { recursive: true });
    }
  },
});
