/**
 * Training checkpoints: save → load restores every entry of the flat parameter, momentum and statistics
 * buffers and every extra tensor bit for bit; names are inspectable in PyTorch layout; truncated, foreign
 * and mismatched files give an error naming the file and the entry and leave the GPU state unchanged; the
 * previous file survives a failed save; `latestCheckpoint` picks the newest file.
 */
import assert from "node:assert/strict";
import { join } from "node:path";
import type { Gpu } from "../../src/gpu/device.ts";
import { Tensor } from "../../src/gpu/tensor.ts";
import { readSafetensors, toFloat32, writeSafetensors } from "../../src/io/safetensors.ts";
import { type ResNetConfig, resnetSpecs } from "../../src/models/resnet.ts";
import { isTrainable, ParamStore } from "../../src/nn/params.ts";
import {
  CheckpointError,
  checkpointName,
  latestCheckpoint,
  loadCheckpoint,
  readCheckpointFile,
  saveCheckpoint,
} from "../../src/train/checkpoint.ts";
import { VERSION } from "../../src/version.ts";
import { freshSeed, gpu, GPU_TEST, Rng } from "../util.ts";

const CFG: ResNetConfig = { depth: 18, width: 0.125 };
const specs = (cfg = CFG) => [
  ...resnetSpecs(cfg, "backbone."),
  { name: "head.w", shape: [3, 5], kind: "linear_weight" as const },
];

/** A store whose flat buffers (params, momentum, stats) are filled with random values. */
function randomStore(g: Gpu, rng: Rng, cfg = CFG): ParamStore {
  const s = new ParamStore(specs(cfg)).allocate(g);
  const f = s.flat();
  for (const t of [f.params, f.momentum, f.stats]) t.upload(Float32Array.from({ length: t.numel }, () => rng.normal()));
  return s;
}

/** Every entry's region of the three flat buffers (gaps between entries are padding and not saved). */
async function snapshot(s: ParamStore): Promise<Map<string, Float32Array>> {
  const f = s.flat();
  const p = (await f.params.read()) as Float32Array, m = (await f.momentum.read()) as Float32Array;
  const st = (await f.stats.read()) as Float32Array;
  const out = new Map<string, Float32Array>();
  for (const [name, e] of s.entries) {
    const r = (b: Float32Array) => b.slice(e.offset, e.offset + e.numel);
    if (isTrainable(e.spec.kind)) out.set(`p:${name}`, r(p)).set(`m:${name}`, r(m));
    else out.set(`s:${name}`, r(st));
  }
  return out;
}

function extraTensors(g: Gpu, rng: Rng) {
  return {
    queue: Tensor.from(g, [4, 8], Float32Array.from({ length: 32 }, () => rng.normal()), "f32", "queue"),
    center: Tensor.from(g, [8], Float32Array.from({ length: 8 }, () => rng.uniform(-1, 1)), "f16", "center"),
    pointer: Tensor.from(g, [2], Int32Array.of(-3, 17), "i32", "pointer"),
    rngState: Tensor.from(g, [4], Uint32Array.of(0, 1, 0xffffffff, 0x80000000), "u32", "rng"),
  };
}

async function readAll(ts: Record<string, Tensor>) {
  return Object.fromEntries(await Promise.all(Object.entries(ts).map(async ([k, t]) => [k, await t.read()])));
}

function bitsEqual(a: Map<string, Float32Array>, b: Map<string, Float32Array>, what: string) {
  assert.deepEqual([...a.keys()], [...b.keys()], what);
  for (const [k, v] of a) {
    const x = new Uint32Array(v.buffer, v.byteOffset, v.length), y = new Uint32Array(b.get(k)!.buffer);
    assert.deepEqual(x, y, `${what}: ${k}`);
  }
}

const META = {
  step: 1234,
  epoch: 3,
  rng: { data: [1, 2, 3, 4294967295] },
  config: "model:\n  depth: 18\n  width: 0.125\n",
  num_batches_tracked: { online: 1234, momentum: 1234 },
  queuePointer: 7,
};

async function withDir(fn: (dir: string) => Promise<void>) {
  const dir = await Deno.makeTempDir();
  try {
    await fn(dir);
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
}

Deno.test({
  name: "save → load restores params, optimizer momentum, BN statistics and extra tensors exactly, and the metadata",
  ...GPU_TEST,
  async fn() {
    const seed = freshSeed();
    const g = await gpu();
    const rng = new Rng(seed);
    await withDir(async (dir) => {
      const a = { online: randomStore(g, rng), momentum: randomStore(g, rng) };
      const ta = extraTensors(g, rng);
      const path = join(dir, checkpointName(1234));
      await saveCheckpoint(path, { stores: a, tensors: ta, meta: META });
      const b = { online: randomStore(g, rng), momentum: randomStore(g, rng) };
      const tb = extraTensors(g, new Rng(seed + 1));
      const meta = await loadCheckpoint(path, { stores: b, tensors: tb });
      assert.deepEqual(meta, META, `seed ${seed}`);
      for (const k of ["online", "momentum"] as const) bitsEqual(await snapshot(b[k]), await snapshot(a[k]), k);
      assert.deepEqual(await readAll(tb), await readAll(ta), "extra tensors");
      for (const t of [...Object.values(ta), ...Object.values(tb)]) t.dispose();
    });
  },
});

Deno.test({
  name: "checkpoint entries are named per store and kind, in PyTorch layout (OIHW), with format metadata",
  ...GPU_TEST,
  async fn() {
    const g = await gpu();
    await withDir(async (dir) => {
      const s = randomStore(g, new Rng(5));
      const q = Tensor.from(g, [2, 3], [1, 2, 3, 4, 5, 6], "f32", "q");
      const path = join(dir, "c.safetensors");
      await saveCheckpoint(path, { stores: { online: s }, tensors: { queue: q }, meta: { step: 1 } });
      const f = await readSafetensors(path);
      assert.equal(f.metadata["plrc.format"], "plrc-checkpoint/1");
      assert.equal(f.metadata["plrc.version"], VERSION);
      assert.equal(f.metadata.step, "1");
      const conv = f.tensors.get("params/online/backbone.conv1.weight")!;
      assert.deepEqual(conv.shape, [8, 3, 7, 7]);
      assert.deepEqual(toFloat32(conv), await s.get("backbone.conv1.weight"), "OIHW values, as ParamStore.get");
      assert.ok(f.tensors.has("momentum/online/backbone.layer1.0.conv2.weight"));
      assert.ok(f.tensors.has("stats/online/backbone.bn1.running_var"));
      assert.ok(!f.tensors.has("momentum/online/backbone.bn1.running_var"), "statistics have no momentum");
      assert.deepEqual(toFloat32(f.tensors.get("tensor/queue")!), Float32Array.of(1, 2, 3, 4, 5, 6));
      const expected = s.specs.length + s.specs.filter((x) => isTrainable(x.kind)).length + 1;
      assert.equal(f.tensors.size, expected);
      q.dispose();
    });
  },
});

Deno.test({
  name: "truncated, foreign and mismatched checkpoints: clear errors naming the entry, GPU state unchanged",
  ...GPU_TEST,
  async fn() {
    const g = await gpu();
    const rng = new Rng(11);
    await withDir(async (dir) => {
      const path = join(dir, "c.safetensors");
      const src = randomStore(g, rng);
      const q = Tensor.from(g, [4], [1, 2, 3, 4], "f32", "q");
      await saveCheckpoint(path, { stores: { online: src }, tensors: { queue: q }, meta: META });
      const target = randomStore(g, rng);
      const tq = Tensor.from(g, [4], [9, 9, 9, 9], "f32", "tq");
      const before = await snapshot(target);
      const unchanged = async (what: string) => {
        bitsEqual(await snapshot(target), before, what);
        assert.deepEqual([...(await tq.read())], [9, 9, 9, 9], what);
      };
      const expectError = async (p: string, stores: Record<string, ParamStore>, re: RegExp, what: string) => {
        await assert.rejects(
          loadCheckpoint(p, { stores, tensors: { queue: tq } }),
          (e: Error) => e instanceof CheckpointError && re.test(e.message) && e.message.includes(p),
          what,
        );
        await unchanged(what);
      };

      const bytes = await Deno.readFile(path);
      const cut = join(dir, "cut.safetensors");
      await Deno.writeFile(cut, bytes.subarray(0, bytes.length - 1000));
      await expectError(cut, { online: target }, /not a readable checkpoint/, "truncated");
      await Deno.writeFile(cut, bytes.subarray(0, 5));
      await expectError(cut, { online: target }, /not a readable checkpoint/, "truncated header");

      const foreign = join(dir, "foreign.safetensors");
      await writeSafetensors(foreign, { x: { dtype: "F32", shape: [1], data: new Float32Array(1) } });
      await expectError(foreign, { online: target }, /not a plrc checkpoint/, "foreign");

      // same names, different width: the first mismatching entry is named with both shapes
      const wide = randomStore(g, rng, { depth: 18, width: 0.25 });
      const widePath = join(dir, "wide.safetensors");
      await saveCheckpoint(widePath, { stores: { online: wide }, tensors: { queue: q }, meta: {} });
      await expectError(
        widePath,
        { online: target },
        /entry "params\/online\/backbone\.conv1\.weight" has shape \[16,3,7,7\], expected \[8,3,7,7\]/,
        "wider model",
      );
      // a store name the file lacks
      await expectError(
        path,
        { momentum: target },
        /entry "params\/momentum\/backbone\.conv1\.weight" is missing/,
        "store",
      );
      // a different model (ResNet-34 has more blocks): the file's extras are listed
      const deep = new ParamStore(specs({ depth: 34, width: 0.125 })).allocate(g);
      await assert.rejects(
        loadCheckpoint(path, { stores: { online: deep }, tensors: { queue: tq } }),
        /layer1\.2\.conv1\.weight" is missing/,
      );
      // an extra tensor the caller does not expect
      await assert.rejects(
        loadCheckpoint(path, { stores: { online: target }, tensors: {} }),
        /unexpected entries.*"tensor\/queue"/,
      );
      await unchanged("extra tensor");
      const q8 = Tensor.from(g, [8], new Float32Array(8), "f32", "q8");
      await assert.rejects(
        loadCheckpoint(path, { stores: { online: target }, tensors: { queue: q8 } }),
        /"tensor\/queue" has shape \[4\], expected \[8\]/,
      );
      const q16 = Tensor.from(g, [4], [0, 0, 0, 0], "f16", "q16");
      await assert.rejects(
        loadCheckpoint(path, { stores: { online: target }, tensors: { queue: q16 } }),
        /"tensor\/queue" has dtype F32, expected F16/,
      );
      await unchanged("after every failed load");
      for (const t of [q, tq, q8, q16]) t.dispose();
    });
  },
});

Deno.test({
  name: "a failed save keeps the previous checkpoint intact and leaves no temporary file",
  ...GPU_TEST,
  async fn() {
    const g = await gpu();
    await withDir(async (dir) => {
      const s = randomStore(g, new Rng(3));
      const path = join(dir, "last.safetensors");
      await saveCheckpoint(path, { stores: { online: s }, tensors: {}, meta: { step: 1 } });
      const before = await Deno.readFile(path);
      await assert.rejects(
        saveCheckpoint(path, { stores: { online: s }, tensors: {}, meta: { step: 2n } }),
        /metadata "step" is not JSON-serialisable/,
      );
      await assert.rejects(saveCheckpoint(path, { stores: { "a/b": s }, tensors: {}, meta: {} }), /invalid store name/);
      await assert.rejects(saveCheckpoint(path, { stores: {}, tensors: {}, meta: { "plrc.x": 1 } }), /reserved/);
      assert.deepEqual(await Deno.readFile(path), before);
      assert.deepEqual([...Deno.readDirSync(dir)].map((e) => e.name), ["last.safetensors"]);
      assert.equal((await readCheckpointFile(path)).meta.step, 1);
    });
  },
});

Deno.test("latestCheckpoint: last.safetensors first, else the highest step; temporaries ignored", async () => {
  await withDir(async (dir) => {
    assert.equal(await latestCheckpoint(join(dir, "nope")), null);
    assert.equal(await latestCheckpoint(dir), null);
    for (const n of [checkpointName(20), checkpointName(100), "step_00000300.safetensors.tmp-ab12", "notes.txt"]) {
      await Deno.writeFile(join(dir, n), new Uint8Array(1));
    }
    assert.equal(checkpointName(100), "step_00000100.safetensors");
    assert.equal(await latestCheckpoint(dir), join(dir, "step_00000100.safetensors"));
    await Deno.writeFile(join(dir, "last.safetensors"), new Uint8Array(1));
    assert.equal(await latestCheckpoint(dir), join(dir, "last.safetensors"));
  });
});
