/**
 * Readbacks: `readBuffer` and the reusable `Readback` bring back exactly what the GPU holds, for ranges
 * larger than one mapped chunk (64 KiB) with a ragged tail and non-zero offsets, and a `Readback` read twice
 * returns the new contents, not the old.
 */
import assert from "node:assert/strict";
import { Readback } from "../../src/gpu/readback.ts";
import { readBuffer } from "../../src/gpu/tensor.ts";
import { freshSeed, gpu, GPU_TEST, Rng } from "../util.ts";

Deno.test({
  name: "readback: readBuffer and Readback return the GPU's bytes exactly (chunked, ragged, offset, reused)",
  ...GPU_TEST,
  async fn() {
    const g = await gpu();
    const seed = freshSeed(), rng = new Rng(seed);
    const n = 70_001; // > 4 chunks of 64 KiB, not a multiple of the chunk
    const buf = g.device.createBuffer({
      size: n * 4,
      usage: GPUBufferUsage.STORAGE | GPUBufferUsage.COPY_SRC | GPUBufferUsage.COPY_DST,
    });
    const fresh = () => Float32Array.from({ length: n }, () => rng.normal());
    let data = fresh();
    g.device.queue.writeBuffer(buf, 0, data);
    const whole = new Float32Array(await readBuffer(g, buf, n * 4));
    assert.deepEqual(whole, data, `readBuffer, whole (seed ${seed})`);
    const part = new Float32Array(await readBuffer(g, buf, 40_000 * 4, 1_001 * 4));
    assert.deepEqual(part, data.subarray(1_001, 41_001), `readBuffer at an offset (seed ${seed})`);
    const into = new ArrayBuffer(n * 4 + 64);
    new Uint8Array(into).fill(0xff);
    await readBuffer(g, buf, n * 4, 0, into);
    assert.deepEqual(new Float32Array(into, 0, n), data, `readBuffer into a caller's buffer`);

    const rb = new Readback(g, [
      { buffer: buf, offset: 4 * 17, bytes: 4 * 50_000 },
      { buffer: buf, offset: 0, bytes: 4 },
      { buffer: buf, offset: 4 * 60_000, bytes: 4 * 10_001 },
    ]);
    for (let round = 0; round < 2; round++) {
      new Uint8Array(rb.host).fill(0xff); // poison: a range that is not copied stays NaN
      const [a, b, c] = await rb.read();
      const at = `(round ${round}, seed ${seed})`;
      assert.deepEqual(a, data.subarray(17, 50_017), `first range ${at}`);
      assert.deepEqual(b, data.subarray(0, 1), `one float ${at}`);
      assert.deepEqual(c, data.subarray(60_000, 70_001), `last range ${at}`);
      data = fresh();
      g.device.queue.writeBuffer(buf, 0, data);
    }
    rb.destroy();
    buf.destroy();
  },
});
