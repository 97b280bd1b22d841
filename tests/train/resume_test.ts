/**
 * Exact resume and crash safety of the trainer, at a tiny size on the built-in scenes:
 * - N steps straight equal k steps, a checkpoint, and a resumed run to N (every saved tensor bit-equal);
 * - a run killed with SIGKILL at random moments always leaves a checkpoint that loads, and
 *   `--auto-resume` continues from it to the end.
 */
import assert from "node:assert/strict";
import { resolveConfig } from "../../src/train/config/mod.ts";
import { makePlan } from "../../src/train/plan.ts";
import { scenesSource } from "../../src/data/sources.ts";
import { batchIndices, train } from "../../src/train/trainer.ts";
import { readCheckpointFile } from "../../src/train/checkpoint.ts";
import { gpu, GPU_TEST, TINY_MODEL } from "../util.ts";

const TINY = [
  ...TINY_MODEL,
  "data.resolution=32",
  "data.scenes.count=16",
  "data.scenes.size=48",
  "data.points=4",
  "data.regions.count=2",
  "loss.image.queue=16",
  "train.batchSize=4",
  "checkpoint.unit=step",
];

async function runTo(out: string, maxSteps: number, workers: number, resume?: string, extra: string[] = []) {
  const cfg = resolveConfig({ sets: [...TINY, `train.maxSteps=${maxSteps}`, `data.workers=${workers}`, ...extra] });
  const sc = cfg.data.scenes;
  const source = scenesSource({ count: sc.count, size: sc.size, classes: sc.classes, seed: sc.seed });
  return await train(await gpu(), makePlan(cfg, source, out, { resume, quiet: true }), () => {});
}

Deno.test({
  name: "resume is exact: 4 steps straight equal 2 steps + checkpoint + resume to 4 (every tensor bit-equal), " +
    "with 0, 1 and 2 data workers",
  ...GPU_TEST,
  async fn() {
    const dir = await Deno.makeTempDir();
    try {
      // batches do not depend on the worker count, so the three runs may use different ones
      const a = await runTo(`${dir}/a`, 4, 0);
      const b = await runTo(`${dir}/b`, 2, 1);
      assert.equal(b.steps, 2);
      const c = await runTo(`${dir}/c`, 4, 2, b.checkpoint);
      assert.equal(a.steps, 4), assert.equal(c.steps, 4);
      const fa = await readCheckpointFile(a.checkpoint), fc = await readCheckpointFile(c.checkpoint);
      const names = [...fa.tensors.keys()].sort();
      assert.deepEqual([...fc.tensors.keys()].sort(), names);
      assert.ok(names.length > 50);
      const differ = names.filter((n) => {
        const x = fa.tensors.get(n)!.bytes, y = fc.tensors.get(n)!.bytes;
        return x.length !== y.length || x.some((v, i) => v !== y[i]);
      });
      assert.deepEqual(differ, [], "tensors that differ between the straight and the resumed run");
      // and training did change the parameters
      const b2 = await readCheckpointFile(b.checkpoint);
      const changed = names.filter((n) =>
        n.startsWith("params/") && b2.tensors.get(n)!.bytes.some((v, i) => v !== fa.tensors.get(n)!.bytes[i])
      );
      assert.ok(changed.length > 10, "steps 3-4 changed the parameters");
    } finally {
      await Deno.remove(dir, { recursive: true });
    }
  },
});

Deno.test({
  name: "resume is exact with gradient accumulation (2 micro-batches of 2) and shuffle-BN",
  ...GPU_TEST,
  async fn() {
    const dir = await Deno.makeTempDir();
    try {
      const extra = ["train.accumulate=2", "model.shuffleBn=true"];
      const a = await runTo(`${dir}/a`, 4, 0, undefined, extra);
      const b = await runTo(`${dir}/b`, 2, 1, undefined, extra);
      const c = await runTo(`${dir}/c`, 4, 0, b.checkpoint, extra);
      assert.equal(a.steps, 4), assert.equal(c.steps, 4);
      const fa = await readCheckpointFile(a.checkpoint), fc = await readCheckpointFile(c.checkpoint);
      const names = [...fa.tensors.keys()];
      const differ = names.filter((n) => fa.tensors.get(n)!.bytes.some((v, i) => v !== fc.tensors.get(n)!.bytes[i]));
      assert.deepEqual(differ, [], "tensors that differ between the straight and the resumed run");
      // and it trained: finite losses, parameters moved
      const metrics = (await Deno.readTextFile(`${dir}/a/metrics.jsonl`)).trim().split("\n").map((l) => JSON.parse(l));
      assert.ok(metrics.every((m) => [m.loss_image, m.loss_point, m.loss_distill].every(Number.isFinite)));
      const b2 = await readCheckpointFile(b.checkpoint);
      assert.ok(
        names.some((n) =>
          n.startsWith("params/") && b2.tensors.get(n)!.bytes.some((v, i) => v !== fa.tensors.get(n)!.bytes[i])
        ),
      );
    } finally {
      await Deno.remove(dir, { recursive: true });
    }
  },
});

Deno.test({
  name: "SIGKILL at random moments always leaves a loadable checkpoint, and --auto-resume finishes the run",
  ...GPU_TEST,
  async fn() {
    const dir = await Deno.makeTempDir();
    const cli = new URL("../../cli.ts", import.meta.url).pathname;
    const args = (out: string, extra: string[] = []) => [
      "run",
      "-A",
      cli,
      "pretrain",
      "--out",
      out,
      ...TINY.flatMap((s) => ["--set", s]),
      "--set",
      "train.maxSteps=30",
      "--set",
      "train.epochs=20",
      "--set",
      "checkpoint.interval=1",
      ...extra,
    ];
    try {
      for (let trial = 0; trial < 3; trial++) {
        const out = `${dir}/t${trial}`;
        const child = new Deno.Command(Deno.execPath(), { args: args(out), stdout: "null", stderr: "null" }).spawn();
        // wait until training has started, then kill at a random moment
        const t0 = Date.now();
        while (Date.now() - t0 < 60_000) {
          const log = await Deno.readTextFile(`${out}/train.log`).catch(() => "");
          if (/step \d+\/30/.test(log)) break;
          await new Promise((r) => setTimeout(r, 100));
        }
        await new Promise((r) => setTimeout(r, Math.random() * 2000));
        try {
          child.kill("SIGKILL");
        } catch {
          // it finished first: the checks below still apply
        }
        await child.status;
        const last = `${out}/checkpoints/last.safetensors`;
        const exists = await Deno.stat(last).then(() => true, () => false);
        if (exists) {
          const f = await readCheckpointFile(last); // must parse and validate
          assert.ok(Number(f.meta.step) >= 1);
        }
        const resumed = await new Deno.Command(Deno.execPath(), { args: args(out, ["--auto-resume"]) }).output();
        const text = new TextDecoder().decode(resumed.stdout);
        assert.equal(resumed.code, 0, text + new TextDecoder().decode(resumed.stderr));
        assert.match(text, exists ? /auto-resume: found/ : /auto-resume: no checkpoint yet/);
        assert.match(text, /finished after 30 steps/);
      }
    } finally {
      await Deno.remove(dir, { recursive: true });
    }
  },
});

Deno.test({
  name: "SIGINT saves a checkpoint at the current step and exits 130 saying how to continue",
  ...GPU_TEST,
  async fn() {
    const dir = await Deno.makeTempDir();
    const cli = new URL("../../cli.ts", import.meta.url).pathname;
    const args = [
      "run",
      "-A",
      cli,
      "pretrain",
      "--out",
      dir,
      ...TINY.flatMap((s) => ["--set", s]),
      "--set",
      "train.maxSteps=200",
      "--set",
      "train.epochs=100",
      "--set",
      "checkpoint.interval=1000",
    ];
    try {
      const child = new Deno.Command(Deno.execPath(), { args, stdout: "piped", stderr: "piped" }).spawn();
      const t0 = Date.now();
      while (Date.now() - t0 < 60_000) {
        const log = await Deno.readTextFile(`${dir}/train.log`).catch(() => "");
        if (/step \d+\/200/.test(log)) break;
        await new Promise((r) => setTimeout(r, 100));
      }
      child.kill("SIGINT");
      const out = await child.output();
      const text = new TextDecoder().decode(out.stdout);
      // 128 + SIGINT, so that a script can tell an interrupted run from a finished one
      assert.equal(out.code, 130, text + new TextDecoder().decode(out.stderr));
      const m = /interrupted after (\d+) steps/.exec(text);
      assert.ok(m, text);
      assert.match(text, new RegExp(`continue with plrc pretrain --out ${dir} --auto-resume`));
      const f = await readCheckpointFile(`${dir}/checkpoints/last.safetensors`);
      assert.equal(Number(f.meta.step), Number(m[1]));
      assert.ok(Number(m[1]) < 200);
    } finally {
      await Deno.remove(dir, { recursive: true });
    }
  },
});

Deno.test({
  name: "train.stepsPerEpoch sets the logged epoch and the data order as it sets the schedules",
  ...GPU_TEST,
  async fn() {
    const dir = await Deno.makeTempDir();
    try {
      // 16 scenes at batch 4 would be 4 steps an epoch; the key says 3
      const r = await runTo(`${dir}/a`, 7, 0, undefined, ["train.stepsPerEpoch=3", "train.epochs=3"]);
      assert.equal(r.steps, 7);
      const records = (await Deno.readTextFile(`${dir}/a/metrics.jsonl`)).trim().split("\n").map((l) => JSON.parse(l));
      assert.deepEqual(records.map((x) => x.epoch), [0, 0, 0, 1, 1, 1, 2]);
      const plan = makePlan(
        resolveConfig({ sets: [...TINY, "train.stepsPerEpoch=3", "train.epochs=3"] }),
        scenesSource({ count: 16, size: 48, classes: 6, seed: 0 }),
        dir,
      );
      assert.equal(plan.stepsPerEpoch, 3);
      // step 3 opens epoch 1: its batch is the start of epoch 1's order
      const seed = plan.step.seed;
      const { epoch, indices } = batchIndices(seed, 16, 4, 3, plan.stepsPerEpoch);
      assert.equal(epoch, 1);
      // the default count (4 a epoch) reaches epoch 1's first batch at step 4
      assert.deepEqual(indices, batchIndices(seed, 16, 4, 4).indices);
      assert.equal(batchIndices(seed, 16, 4, 3).epoch, 0);
    } finally {
      await Deno.remove(dir, { recursive: true });
    }
  },
});
