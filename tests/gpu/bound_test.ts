import assert from "node:assert/strict";
import { TensorArena } from "../../src/gpu/bound.ts";
import { Recorder } from "../../src/gpu/recorder.ts";
import { Tensor } from "../../src/gpu/tensor.ts";
import { reduceAxis } from "../../src/kernels/reduce.ts";
import { gpu, GPU_TEST } from "../util.ts";

Deno.test({
  name: "arena: tracks what it allocates and adopts, frees it all once",
  ...GPU_TEST,
  async fn() {
    const g = await gpu();
    const arena = new TensorArena(g);
    const x = arena.alloc([64, 1000], "x");
    const idx = arena.alloc([3], "indices", "u32");
    assert.equal(idx.dtype, "u32");
    const y = arena.alloc([64], "y");
    const op = arena.adopt(await reduceAxis(g, x, 1, "sum", y, true)); // forced split: owns its partial sums
    assert.equal(op.owned.length, 1);
    assert.deepEqual(arena.owned, [x, idx, y, ...op.owned]);
    arena.dispose();
    assert.equal(arena.owned.length, 0);
    assert.throws(() => x.buffer, /after dispose/);
  },
});

Deno.test({
  name: "recorder: copyTensor copies a whole tensor (views included) and refuses a size mismatch",
  ...GPU_TEST,
  async fn() {
    const g = await gpu();
    const a = Tensor.from(g, [4], [1, 2, 3, 4]);
    // a view at the first aligned offset: the copy lands at the view's offset, not at the buffer's start
    const off = g.device.limits.minStorageBufferOffsetAlignment / 4;
    const flat = Tensor.from(g, [off + 4], new Float32Array(off + 4));
    const view = Tensor.view(g, flat.buffer, 4 * off, [4], "f32", "tail");
    new Recorder(g).copyTensor(a, view).submit();
    const got = await flat.read();
    assert.deepEqual([...got.subarray(off)], [1, 2, 3, 4]);
    assert.ok(got.subarray(0, off).every((v) => v === 0));
    assert.throws(() => new Recorder(g).copyTensor(a, flat), new RegExp(`16 bytes into ${4 * (off + 4)}`));
    for (const t of [a, flat]) t.dispose();
  },
});
