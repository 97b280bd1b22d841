/**
 * tools/slim_runs.ts keeps exactly what `plrc eval` reads of a run's checkpoint (the online backbone's
 * parameters and BN statistics, and the metadata with the configuration), bit for bit, and drops the rest.
 */
import assert from "node:assert/strict";
import { readSafetensors, writeSafetensors } from "../../src/io/safetensors.ts";
import { slimCheckpoint } from "../../tools/slim_runs.ts";

Deno.test("slimCheckpoint keeps the online backbone's tensors and the metadata, and nothing else", async () => {
  const dir = await Deno.makeTempDir();
  try {
    const path = `${dir}/last.safetensors`;
    const f = (n: number, seed: number) => Float32Array.from({ length: n }, (_, i) => Math.sin(seed * 97 + i));
    const all = {
      "params/online/backbone.conv1.weight": f(24, 1),
      "stats/online/backbone.bn1.running_mean": f(4, 2),
      "params/online/point_head.0.weight": f(8, 3),
      "params/momentum/backbone.conv1.weight": f(24, 4),
      "stats/momentum/backbone.bn1.running_mean": f(4, 5),
      "optim/momentum": f(30, 6),
      "queue": f(16, 7),
    };
    const meta = { format: "plrc-checkpoint/1", config: "seed: 3\n", step: "767" };
    await writeSafetensors(
      path,
      Object.fromEntries(Object.entries(all).map(([k, v]) => [k, { dtype: "F32", shape: [v.length], data: v }])),
      meta,
    );
    const [before, after] = await slimCheckpoint(path);
    assert.ok(after < before / 2, `${before} -> ${after}`);
    const { tensors, metadata } = await readSafetensors(path);
    assert.deepEqual([...tensors.keys()].sort(), [
      "params/online/backbone.conv1.weight",
      "stats/online/backbone.bn1.running_mean",
    ]);
    for (const [name, t] of tensors) {
      assert.deepEqual(new Float32Array(t.bytes.buffer), all[name as keyof typeof all], name);
    }
    assert.deepEqual(metadata, meta);
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});
