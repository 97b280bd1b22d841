/** The CLI as a user runs it: a subprocess, its exit code and its output. */
import assert from "node:assert/strict";
import { labelMap } from "../src/data/image.ts";
import { encodeLabelMapPng } from "../src/data/labelmap_png.ts";
import { encodePng } from "../src/data/png.ts";
import { runCli } from "./util.ts";

const plrc = runCli;

Deno.test("a GPU command in an environment without XDG_RUNTIME_DIR prints no warning about it", async () => {
  const r = await plrc(["info"], { XDG_RUNTIME_DIR: "" });
  assert.equal(r.code, 0, r.text);
  assert.doesNotMatch(r.stderr, /XDG_RUNTIME_DIR/);
});

Deno.test("plrc info --json prints one JSON object naming the adapter and backend", async () => {
  const r = await plrc(["info", "--json"]);
  assert.equal(r.code, 0, r.stderr);
  const info = JSON.parse(r.stdout);
  assert.equal(typeof info.adapter, "string");
  assert.ok(info.adapter.length > 0);
  assert.ok(["vulkan", "gl", "other"].includes(info.backend), info.backend);
  assert.equal(typeof info.limits.maxStorageBufferBindingSize, "number");
  assert.ok(Array.isArray(info.features));
});

Deno.test("plrc info on the GL backend reports gl", async () => {
  const r = await plrc(["info", "--json"], { DENO_WEBGPU_BACKEND: "gl" });
  assert.equal(r.code, 0, r.stderr);
  assert.equal(JSON.parse(r.stdout).backend, "gl");
});

Deno.test("an empty DENO_WEBGPU_BACKEND gives a clear no-adapter message and exit code 1", async () => {
  const r = await plrc(["info"], { DENO_WEBGPU_BACKEND: "" });
  assert.equal(r.code, 1);
  assert.match(r.stderr, /no WebGPU adapter/);
  assert.match(r.stderr, /mesa-vulkan-drivers/);
});

Deno.test("usage errors exit with code 2 and name the problem", async () => {
  const unknown = await plrc(["frobnicate"]);
  assert.equal(unknown.code, 2);
  assert.match(unknown.stderr, /unknown command "frobnicate"/);
  const badFlag = await plrc(["info", "--jsn"]);
  assert.equal(badFlag.code, 2);
  assert.match(badFlag.stderr, /--jsn/);
  const badSuite = await plrc(["bench", "nope"]);
  assert.equal(badSuite.code, 2);
  assert.match(badSuite.stderr, /allowed: kernels/);
  const noCmd = await plrc([]);
  assert.equal(noCmd.code, 2);
});

Deno.test("pretrain: --help; bad YAML, unknown or invalid keys and bad data exit 2 naming the problem", async () => {
  const help = await plrc(["pretrain", "--help"]);
  assert.equal(help.code, 0);
  assert.match(help.stdout, /--auto-resume/);
  const dir = await Deno.makeTempDir();
  try {
    await Deno.writeTextFile(`${dir}/bad.yaml`, "model: [unclosed\n");
    const badYaml = await plrc(["pretrain", "--config", `${dir}/bad.yaml`, "--out", `${dir}/r0`]);
    assert.equal(badYaml.code, 2);
    assert.match(badYaml.stderr, /bad\.yaml/);
    await Deno.writeTextFile(`${dir}/unknown.yaml`, "model:\n  depht: 18\n");
    const unknown = await plrc(["pretrain", "--config", `${dir}/unknown.yaml`, "--out", `${dir}/r1`]);
    assert.equal(unknown.code, 2);
    assert.match(unknown.stderr, /model\.depht/);
    assert.match(unknown.stderr, /depth/);
    const badValue = await plrc(["pretrain", "--set", "model.depth=19", "--out", `${dir}/r2`]);
    assert.equal(badValue.code, 2);
    assert.match(badValue.stderr, /model\.depth/);
    assert.match(badValue.stderr, /18/);
    const badData = await plrc(["pretrain", "--data", `${dir}/missing`, "--out", `${dir}/r3`]);
    assert.equal(badData.code, 2);
    assert.match(badData.stderr, /is not a directory/);
    const both = await plrc(["pretrain", "--resume", "x", "--auto-resume", "--out", `${dir}/r4`]);
    assert.equal(both.code, 2);
    // a configuration no adapter can hold (a 65536² point-contrast gram, 16 GiB in one binding): exit 2 with the
    // keys to lower, not a stack trace
    const tooBig = await plrc([
      "pretrain",
      "--set",
      "data.points=1024",
      "--set",
      "train.maxSteps=1",
      "--out",
      `${dir}/r5`,
    ]);
    assert.equal(tooBig.code, 2, tooBig.stderr);
    assert.match(tooBig.stderr, /point contrast gram.* needs 16\.0 GiB .*train\.batchSize.*data\.points/);
    assert.doesNotMatch(tooBig.stderr, /^\s+at /m);
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("pretrain trains on the built-in scenes, writes its run directory, and export loads the checkpoint", async () => {
  const dir = await Deno.makeTempDir();
  try {
    const run = await plrc([
      "pretrain",
      "--out",
      dir,
      "--set",
      "train.maxSteps=3",
      "--set",
      "checkpoint.unit=step",
      "--profile",
    ]);
    assert.equal(run.code, 0, run.stderr + run.stdout);
    assert.match(run.stdout, /finished after 3 steps/);
    // what the step holds on the GPU
    assert.match(run.stdout, /^GPU buffers: \d+(\.\d+)? (KiB|MiB|GiB) \(plrc's own/m);
    // progress lines say how long is left, except the last
    assert.match(run.stdout, /^step 1\/3 .* img\/s ETA (\d+m)?\d+s$/m);
    assert.match(run.stdout, /^step 3\/3 .* img\/s$/m);
    // --profile: one step timed kernel by kernel, by family (or a plain note without timestamp queries)
    assert.match(
      run.stdout,
      /profile of step 3 \(GPU time per kernel family|profile: this adapter has no timestamp-query/,
    );
    if (/profile of step/.test(run.stdout)) assert.match(run.stdout, /conv forward\s+[\d.]+ ms/);
    assert.ok((await Deno.stat(`${dir}/sample.png`)).size > 1000, "sample.png");
    for (const f of ["config.yaml", "metrics.jsonl", "train.log", "checkpoints/last.safetensors"]) {
      assert.ok((await Deno.stat(`${dir}/${f}`)).isFile, f);
    }
    const metrics = (await Deno.readTextFile(`${dir}/metrics.jsonl`)).trim().split("\n").map((l) => JSON.parse(l));
    assert.deepEqual(metrics.map((m) => m.step), [0, 1, 2]);
    for (const m of metrics) {
      for (const k of ["loss", "loss_image", "loss_point", "loss_distill", "lr", "images_per_s", "ms_per_step"]) {
        assert.ok(Number.isFinite(m[k]), `${k} in ${JSON.stringify(m)}`);
      }
      assert.ok(m.gpu_ms_per_step === null || m.gpu_ms_per_step > 0, `gpu_ms_per_step in ${JSON.stringify(m)}`);
      // the step's own wall time, and the later readback of its losses
      assert.ok(m.ms_per_step > 0 && m.latency_ms >= m.ms_per_step * 0.999, JSON.stringify(m));
    }

    const ex = await plrc([
      "export",
      "--ckpt",
      `${dir}/checkpoints/last.safetensors`,
      "--format",
      "torchvision",
      "--out",
      `${dir}/bb.safetensors`,
    ]);
    assert.equal(ex.code, 0, ex.stderr);
    assert.ok((await Deno.stat(`${dir}/bb.safetensors`)).size > 1000);
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("pretrain --resume continues from the checkpoint's configuration; --set changes are listed; a bad file is exit 2", async () => {
  const dir = await Deno.makeTempDir();
  try {
    const tiny = ["--set", "model.width=0.0625", "--set", "data.resolution=32", "--set", "checkpoint.unit=step"];
    const first = await plrc([
      "pretrain",
      "--out",
      `${dir}/a`,
      ...tiny,
      "--set",
      "train.maxSteps=2",
      "--set",
      "optim.lr=0.1",
    ]);
    assert.equal(first.code, 0, first.text);
    const ckpt = `${dir}/a/checkpoints/last.safetensors`;
    // no --set repeated: the run's own settings (a ×0.0625 network would not even load into the default ×0.125)
    const more = await plrc(["pretrain", "--out", `${dir}/b`, "--resume", ckpt, "--set", "train.maxSteps=3"]);
    assert.equal(more.code, 0, more.text);
    assert.match(more.stdout, /resuming with changes to the checkpoint's configuration: train\.maxSteps 2 → 3\n/);
    assert.match(more.stdout, /finished after 3 steps/);
    const cfg = await Deno.readTextFile(`${dir}/b/config.yaml`);
    assert.match(cfg, /^ {2}lr: 0\.1$/m);
    assert.match(cfg, /^ {2}width: 0\.0625$/m);
    // an unchanged resume says so
    const same = await plrc(["pretrain", "--out", `${dir}/a`, "--auto-resume"]);
    assert.equal(same.code, 0, same.text);
    assert.match(same.stdout, /resuming with the checkpoint's configuration\n/);
    // a file that is not there, or not a checkpoint: exit 2 before the GPU starts
    const missing = await plrc(["pretrain", "--out", `${dir}/c`, "--resume", `${dir}/nope.safetensors`]);
    assert.equal(missing.code, 2, missing.text);
    assert.match(missing.stderr, /--resume: .*nope\.safetensors: no such file/);
    await Deno.writeTextFile(`${dir}/bad.safetensors`, "not a checkpoint");
    const bad = await plrc(["pretrain", "--out", `${dir}/c`, "--resume", `${dir}/bad.safetensors`]);
    assert.equal(bad.code, 2, bad.text);
    assert.match(bad.stderr, /--resume: not a readable checkpoint/);
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("pretrain on a folder with user label maps: unusable files are listed, the run trains and draws its sample", async () => {
  const dir = await Deno.makeTempDir();
  try {
    const W = 96, H = 80;
    await Deno.mkdir(`${dir}/data`), await Deno.mkdir(`${dir}/maps`);
    for (let k = 0; k < 10; k++) {
      const s = new Uint8Array(W * H * 3).map(() => (Math.random() * 255) | 0);
      await Deno.writeFile(
        `${dir}/data/im${k}.png`,
        encodePng({ width: W, height: H, channels: 3, depth: 8, samples: s }),
      );
      if (k === 9) continue; // no map: skipped
      const m = labelMap(W, H);
      for (let p = 0; p < W * H; p++) m.data[p] = 1 + Math.floor((p % W) / 24) + 4 * Math.floor(p / W / 20);
      await Deno.writeFile(`${dir}/maps/im${k}.png`, encodeLabelMapPng(m));
    }
    await Deno.writeFile(`${dir}/data/bad.jpg`, new Uint8Array([0xff, 0xd8, 1, 2, 3]));
    const sets = ["--set", "data.regions.source=labelmaps", "--set", `data.regions.labelmaps=${dir}/maps`];
    const run = await plrc([
      "pretrain",
      "--data",
      `${dir}/data`,
      "--out",
      `${dir}/run`,
      ...sets,
      "--set",
      "train.maxSteps=1",
    ]);
    assert.equal(run.code, 0, run.stderr + run.stdout);
    assert.match(run.stdout, /9 images used, 2 files skipped/);
    assert.match(run.stdout, /skipped im9\.png: no label map/);
    assert.match(run.stdout, /label maps from .*maps/);
    assert.match(run.stdout, /finished after 1 steps/);
    assert.ok((await Deno.stat(`${dir}/run/sample.png`)).size > 1000, "sample.png");
    // a maps folder that is not there: a usage error naming the key
    const gone = ["--set", "data.regions.source=labelmaps", "--set", `data.regions.labelmaps=${dir}/nomaps`];
    const noMaps = await plrc(["pretrain", "--data", `${dir}/data`, "--out", `${dir}/r3`, ...gone]);
    assert.equal(noMaps.code, 2, noMaps.stderr + noMaps.stdout);
    assert.match(noMaps.stderr + noMaps.stdout, /data\.regions\.labelmaps .*nomaps is not a folder/);
    // label maps on the built-in scenes: a configuration error naming the key
    const bad = await plrc(["pretrain", "--out", `${dir}/r2`, ...sets]);
    assert.equal(bad.code, 2, bad.stderr + bad.stdout);
    assert.match(bad.stderr + bad.stdout, /data\.regions\.source.*label maps need a folder/s);
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("plrc bench kernels --json prints one JSON measurement per case", async () => {
  const r = await plrc(["bench", "kernels", "--json", "--scale", "0.001", "--reps", "2"]);
  assert.equal(r.code, 0, r.stderr);
  const lines = r.stdout.trim().split("\n").map((l) => JSON.parse(l));
  assert.ok(lines.length >= 8);
  for (const m of lines) {
    assert.ok(m.ms > 0 && Number.isFinite(m.gbPerS), JSON.stringify(m));
    assert.ok(Array.isArray(m.shape));
  }
});

Deno.test("plrc bench gemm announces each case on stderr and prints its row as soon as it is measured", async () => {
  const r = await plrc(["bench", "gemm", "--size", "32,48", "--reps", "2", "--json"]);
  assert.equal(r.code, 0, r.stderr);
  assert.match(r.stderr, /^\[1\/2\] gemm 32 …$/m);
  assert.match(r.stderr, /^\[2\/2\] gemm 48 …$/m);
  const rows = r.stdout.trim().split("\n").map((l) => JSON.parse(l));
  assert.deepEqual(rows.map((m) => m.name), ["gemm 32", "gemm 48"]);
  for (const m of rows) assert.ok(m.ms > 0 && m.gflops > 0, JSON.stringify(m));
  // the kernel's whole name: mode, shape, register block, layout, fit/edge, and only the epilogue parts it has
  for (const m of rows) assert.match(m.shape.kernel, /^fwd\.(register|tiled)\.\d+x\d+\.\w+\.dense\.(fit|edge)$/);
});

Deno.test("plrc bench step --json runs the whole training step at a tiny size and reports the breakdown", async () => {
  const r = await plrc([
    "bench",
    "step",
    "--json",
    "--reps",
    "1",
    ...["train.batchSize=4", "model.width=0.0625", "data.resolution=32", "model.prototypes=16", "loss.image.queue=16"]
      .flatMap((s) => ["--set", s]),
  ]);
  assert.equal(r.code, 0, r.stderr);
  const m = JSON.parse(r.stdout.trim().split("\n").at(-1)!);
  assert.equal(m.suite, "step");
  assert.equal(m.batch, 4);
  assert.ok(m.msPerStep > 0 && m.imagesPerS > 0 && m.backboneGflops > 0, JSON.stringify(m));
  assert.ok(m.dispatchesPerStep > 100);
  if (m.gpuMsByFamily) assert.ok(m.gpuMsByFamily["conv forward"] > 0);
  // the buffers by part: the encoders and parameters hold memory, and the parts add up to the peak
  assert.equal(m.precision, "fp32");
  const parts = m.buffersMiBByPart as Record<string, number>;
  for (const k of ["parameters", "online encoder", "momentum encoder", "losses"]) assert.ok(parts[k] > 0, k);
  const sum = Object.values(parts).reduce((a, b) => a + b, 0);
  assert.ok(Math.abs(sum - m.peakGpuMiB) <= 0.05 * m.peakGpuMiB, `parts ${sum} MiB, peak ${m.peakGpuMiB} MiB`);
});

Deno.test("pretrain never overwrites a run: --out holding one needs --auto-resume or --force; --resume stays in its run", async () => {
  const dir = await Deno.makeTempDir();
  const out = `${dir}/run`, steps = (n: number) => ["--set", `train.maxSteps=${n}`, "--set", "data.workers=0"];
  const lines = async () => (await Deno.readTextFile(`${out}/metrics.jsonl`)).trim().split("\n").length;
  try {
    const first = await plrc(["pretrain", "--out", out, ...steps(2)]);
    assert.equal(first.code, 0, first.text);
    const ckpt = await Deno.readFile(`${out}/checkpoints/last.safetensors`);
    // again without a flag: exit 2 naming both ways on, and nothing touched
    const again = await plrc(["pretrain", "--out", out, ...steps(2)]);
    assert.equal(again.code, 2, again.text);
    assert.match(again.stderr, /holds a run: continue it with --auto-resume, start it again with --force/);
    assert.equal(await lines(), 2);
    assert.deepEqual(await Deno.readFile(`${out}/checkpoints/last.safetensors`), ckpt);
    // --resume without --out continues in the checkpoint's own run folder
    const resumed = await plrc(["pretrain", "--resume", `${out}/checkpoints/last.safetensors`, ...steps(3)]);
    assert.equal(resumed.code, 0, resumed.text);
    assert.match(resumed.text, new RegExp(`run directory ${out}`));
    assert.equal(await lines(), 3);
    // --force starts afresh: the old metrics are gone, not appended to
    const forced = await plrc(["pretrain", "--out", out, "--force", ...steps(2)]);
    assert.equal(forced.code, 0, forced.text);
    assert.equal(await lines(), 2);
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("typos get a suggestion: a command, and an option", async () => {
  const cmd = await plrc(["pretrian"]);
  assert.equal(cmd.code, 2);
  assert.match(cmd.stderr, /unknown command "pretrian"; did you mean pretrain\?/);
  const opt = await plrc(["pretrain", "--dat", "/tmp"]);
  assert.equal(opt.code, 2);
  assert.match(opt.stderr, /unknown option --dat; did you mean --data\?/);
  // nothing near: the plain message and the help
  const far = await plrc(["pretrain", "--zzzzzz"]);
  assert.equal(far.code, 2);
  assert.match(far.stderr, /Unknown option '--zzzzzz'/);
  assert.match(far.stderr, /--auto-resume/);
});

Deno.test("small data is said, not silently trained on: no usable image, fewer images than a batch, steps capped by epochs", async () => {
  const dir = await Deno.makeTempDir();
  try {
    // a folder whose only file is not an image: exit 2 with the skip report, and no run directory left behind
    await Deno.mkdir(`${dir}/junk`);
    await Deno.writeTextFile(`${dir}/junk/a.jpg`, "not a jpeg");
    const none = await plrc(["pretrain", "--data", `${dir}/junk`, "--out", `${dir}/r1`]);
    assert.equal(none.code, 2, none.text);
    assert.match(none.stderr, /no usable image in .*junk/);
    await assert.rejects(Deno.stat(`${dir}/r1`));
    // three images at batch 8: exit 2 naming both numbers
    await Deno.mkdir(`${dir}/three`);
    for (let k = 0; k < 3; k++) {
      const s = new Uint8Array(80 * 80 * 3).map(() => (Math.random() * 255) | 0);
      await Deno.writeFile(
        `${dir}/three/im${k}.png`,
        encodePng({ width: 80, height: 80, channels: 3, depth: 8, samples: s }),
      );
    }
    const few = await plrc(["pretrain", "--data", `${dir}/three`, "--out", `${dir}/r2`]);
    assert.equal(few.code, 2, few.text);
    assert.match(few.stderr, /has 3 usable images, fewer than train\.batchSize \(8\)/);
    // maxSteps past what the epochs allow: a warning, and the run stops at the epochs' end
    const capped = await plrc([
      "pretrain",
      "--out",
      `${dir}/r3`,
      ...["--set", "data.scenes.count=16", "--set", "train.maxSteps=4", "--set", "data.workers=0"],
    ]);
    assert.equal(capped.code, 0, capped.text);
    assert.match(capped.text, /warning: train\.maxSteps is 4, but train\.epochs \(1\) × 2 steps per epoch make 2/);
    assert.match(capped.text, /finished after 2 steps/);
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("pretrain --log-format json prints one JSON object per log line; a step line carries its metrics record", async () => {
  const dir = await Deno.makeTempDir();
  try {
    const bad = await plrc(["pretrain", "--out", dir, "--log-format", "xml"]);
    assert.equal(bad.code, 2);
    assert.match(bad.stderr, /--log-format: "xml" is not one of text, json/);
    const run = await plrc([
      "pretrain",
      "--out",
      `${dir}/run`,
      "--log-format",
      "json",
      "--set",
      "train.maxSteps=2",
      "--set",
      "data.workers=0",
    ]);
    assert.equal(run.code, 0, run.stderr + run.stdout);
    const lines = run.stdout.trim().split("\n");
    const objects = lines.map((l) =>
      JSON.parse(l) as { time: string; level: string; message: string; record?: Record<string, unknown> }
    );
    for (const o of objects) {
      assert.ok(!Number.isNaN(Date.parse(o.time)), o.time);
      assert.ok(["info", "warning", "error"].includes(o.level), o.level);
      assert.equal(typeof o.message, "string");
    }
    assert.ok(objects.some((o) => /finished after 2 steps/.test(o.message)));
    const steps = objects.filter((o) => o.record);
    assert.deepEqual(steps.map((o) => o.record!.step), [0, 1]);
    // the same records as metrics.jsonl
    const metrics = (await Deno.readTextFile(`${dir}/run/metrics.jsonl`)).trim().split("\n").map((l) => JSON.parse(l));
    assert.deepEqual(steps.map((o) => o.record), metrics);
    // train.log stays text
    assert.match(await Deno.readTextFile(`${dir}/run/train.log`), /^step 1\/2 /m);
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("pretrain --distributed mpi outside an MPI launch trains alone without opening MPI; a bad backend is exit 2", async () => {
  const dir = await Deno.makeTempDir();
  try {
    // a library that does not exist: opening MPI would fail, so finishing proves it was not opened
    const env = { PLRC_MPI_LIBRARY: "/nonexistent/libmpi.so" };
    const run = await runCli(
      ["pretrain", "--distributed", "mpi", "--out", dir, "--set", "train.maxSteps=2", "--set", "model.width=0.0625"],
      env,
    );
    assert.equal(run.code, 0, run.text);
    assert.match(run.stdout, /distributed: mpi, but this process was not launched as one of several MPI ranks/);
    assert.match(run.stdout, /finished after 2 steps/);
    const bad = await runCli(["pretrain", "--distributed", "nccl", "--out", `${dir}/b`]);
    assert.equal(bad.code, 2, bad.text);
    assert.match(bad.stderr, /distributed\.backend: got "nccl".*none, mpi/);
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});
