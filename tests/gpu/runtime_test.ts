import assert from "node:assert/strict";
import { EVAL_MEMORY_HINT, LimitError, OutOfMemoryError, withMemoryCheck } from "../../src/gpu/device.ts";
import { Profiler, Recorder, summarise } from "../../src/gpu/recorder.ts";
import {
  bind,
  compileKernel,
  grid1d,
  KernelCompileError,
  pipelineCount,
  read,
  u32,
  write,
} from "../../src/gpu/kernel.ts";
import { BufferPool, Tensor, toHost } from "../../src/gpu/tensor.ts";
import { f16BitsToF32 as f16ToF32 } from "../../src/util/f16.ts";
import * as ew from "../../src/kernels/elementwise.ts";
import { assertClose, gpu, GPU_TEST, poisoned, readF64, runOnce } from "../util.ts";

Deno.test({
  name: "device: adapter limits requested, backend inferred, summary complete",
  ...GPU_TEST,
  async fn() {
    const g = await gpu();
    const s = g.summary;
    assert.ok(s.description.length > 0);
    assert.ok(["vulkan", "gl", "other"].includes(s.backend));
    // the device got the adapter's limit, not WebGPU's default 128 MiB floor... (CPU adapters: exactly 128 MiB)
    assert.equal(g.device.limits.maxStorageBufferBindingSize, g.adapter.limits.maxStorageBufferBindingSize);
    assert.equal(g.device.limits.maxStorageBuffersPerShaderStage, g.adapter.limits.maxStorageBuffersPerShaderStage);
    assert.equal(g.hasF16, g.device.features.has("shader-f16"));
    const want = Deno.env.get("DENO_WEBGPU_BACKEND");
    if (want === "gl") assert.equal(s.backend, "gl");
    if (want === "vulkan") assert.equal(s.backend, "vulkan");
  },
});

Deno.test({
  name: "WGSL errors name the kernel and quote the offending line",
  ...GPU_TEST,
  async fn() {
    const g = await gpu();
    const spec = {
      name: "broken_kernel",
      buffers: [write("y")],
      body: "@compute @workgroup_size(1)\nfn main() {\n  y[0] = undefined_thing + 1.0;\n}",
    };
    await assert.rejects(compileKernel(g, spec), (e: unknown) => {
      assert.ok(e instanceof KernelCompileError, String(e));
      assert.match(e.message, /kernel "broken_kernel"/);
      assert.match(e.message, /undefined_thing/);
      assert.match(e.message, /\b4 \|/); // line 4 of the full source (header is line 1)
      return true;
    });
  },
});

Deno.test({
  name: "pipelines are cached per kernel and specialisation",
  ...GPU_TEST,
  async fn() {
    const g = await gpu();
    const spec = {
      name: "cache_probe",
      key: "a",
      buffers: [write("y")],
      uniforms: [u32("n")],
      body: "@compute @workgroup_size(1)\nfn main() { y[0] = f32(P.n); }",
    };
    const before = pipelineCount(g);
    const k1 = await compileKernel(g, spec), k2 = await compileKernel(g, { ...spec });
    assert.equal(k1, k2);
    assert.equal(pipelineCount(g), before + 1);
    const k3 = await compileKernel(g, { ...spec, key: "b" });
    assert.notEqual(k1, k3);
  },
});

Deno.test({
  name: "oversized tensors are refused with the tensor's name and the limit",
  ...GPU_TEST,
  async fn() {
    const g = await gpu();
    const n = g.device.limits.maxStorageBufferBindingSize / 4 + 1024;
    assert.throws(() => Tensor.empty(g, [n], "f32", "huge activations"), (e: unknown) => {
      assert.ok(e instanceof LimitError);
      assert.match(e.message, /huge activations/);
      assert.match(e.message, /maxStorageBufferBindingSize|maxBufferSize/);
      return true;
    });
  },
});

Deno.test({
  name: "withMemoryCheck: passes the value through, or turns an out-of-memory error into one clear error",
  ...GPU_TEST,
  async fn() {
    const g = await gpu();
    // the real device: a small allocation raises nothing
    const t = await withMemoryCheck(g, "allocating a test tensor", () => Promise.resolve(Tensor.empty(g, [16])));
    assert.equal(t.numel, 16);
    t.dispose();
    await assert.rejects(() => withMemoryCheck(g, "x", () => Promise.reject(new Error("boom"))), /boom/);
    // a device whose scope reports out-of-memory (a real one cannot be provoked on a CPU adapter)
    const scopes: string[] = [];
    const oom = {
      memory: { liveBytes: 3 * 2 ** 30, peakBytes: 3 * 2 ** 30 },
      device: {
        pushErrorScope: (f: string) => void scopes.push(f),
        popErrorScope: () => (scopes.pop(), Promise.resolve({ message: "Not enough memory left." })),
      },
    } as unknown as Pick<Awaited<ReturnType<typeof gpu>>, "device" | "memory">;
    await assert.rejects(
      () => withMemoryCheck(oom, "building the training step", () => Promise.resolve(1)),
      (e: unknown) => {
        assert.ok(e instanceof OutOfMemoryError);
        assert.equal(scopes.length, 0, "the scope is popped");
        assert.match(e.message, /while building the training step .*3\.00 GiB.*Not enough memory left/);
        assert.match(e.message, /train\.accumulate.*train\.batchSize/);
        return true;
      },
    );
    // evaluations name their own options
    await assert.rejects(
      () => withMemoryCheck(oom, "building the detector", () => Promise.resolve(1), EVAL_MEMORY_HINT),
      /while building the detector .*evaluation batch \(plrc eval --batch, detect\) or resolution \(--resolution\)/,
    );
    // an error of the allocation itself still pops the scope, and the device's verdict wins
    await assert.rejects(
      () => withMemoryCheck(oom, "x", () => Promise.reject(new Error("boom"))),
      OutOfMemoryError,
    );
    assert.equal(scopes.length, 0);
  },
});

Deno.test({
  name: "a chain of 200 dependent dispatches runs in one submission with bind groups reused",
  ...GPU_TEST,
  async fn() {
    const g = await gpu();
    const n = 1000;
    const x = Tensor.from(g, [n], Float32Array.from({ length: n }, (_, i) => i % 7));
    const acc = Tensor.from(g, [n], new Float32Array(n));
    const step = await ew.axpy(g, 0.5, x, acc); // bound once, recorded 200 times
    const rec = new Recorder(g);
    for (let i = 0; i < 200; i++) rec.run(step);
    assert.equal(rec.dispatches, 200);
    rec.submit();
    assert.throws(() => rec.submit(), /twice/);
    assertClose(
      await readF64(acc),
      Float64Array.from({ length: n }, (_, i) => 100 * (i % 7)),
      { rtol: 1e-6, atol: 0 },
      "acc",
    );
    x.dispose(), acc.dispose();
  },
});

Deno.test({
  name: "uniforms can be updated between submissions without rebinding",
  ...GPU_TEST,
  async fn() {
    const g = await gpu();
    const x = Tensor.from(g, [8], [1, 2, 3, 4, 5, 6, 7, 8]), y = poisoned(g, [8]);
    const d = await ew.scale(g, x, 2, y);
    await runOnce(g, [d]);
    assertClose(await readF64(y), [2, 4, 6, 8, 10, 12, 14, 16], { rtol: 0, atol: 0 }, "scale 2");
    d.setParams({ alpha: -3 });
    await runOnce(g, [d]);
    assertClose(await readF64(y), [-3, -6, -9, -12, -15, -18, -21, -24], { rtol: 0, atol: 0 }, "scale -3");
    x.dispose(), y.dispose();
  },
});

Deno.test({
  name: "grids past 65535 workgroups fold into 2-D and cover every element once",
  ...GPU_TEST,
  async fn() {
    const g = await gpu();
    const n = 65535 * 64 + 77; // > 65535 groups of 64
    assert.ok(grid1d(n, 64)[1] > 1);
    const spec = {
      name: "index_probe",
      buffers: [read("x"), write("y")],
      uniforms: [u32("n")],
      body: `@compute @workgroup_size(64)
fn main(@builtin(workgroup_id) wid: vec3<u32>, @builtin(local_invocation_id) lid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>) {
  let i = (wid.y * nwg.x + wid.x) * 64u + lid.x;
  if (i >= P.n) { return; }
  y[i] = x[i] + 1.0;
}`,
    };
    const x = Tensor.from(g, [n], new Float32Array(n)), y = poisoned(g, [n]);
    await runOnce(g, [await bind(g, spec, [x, y], { n }, grid1d(n, 64))]);
    const out = await y.read();
    assert.ok(out.every((v) => v === 1), "some element was not written exactly once");
    x.dispose(), y.dispose();
  },
});

Deno.test({
  name: "timestamp profiler reports one positive duration per dispatch",
  ...GPU_TEST,
  ignore: !(await gpu()).hasTimestamps,
  async fn() {
    const g = await gpu();
    const n = 1 << 18;
    const a = Tensor.from(g, [n], new Float32Array(n).fill(1)), y = poisoned(g, [n]);
    const prof = new Profiler(g, 16);
    const rec = new Recorder(g, prof);
    rec.run(await ew.relu(g, a, y)).run(await ew.add(g, a, a, y)).run(await ew.add(g, a, a, y));
    rec.submit();
    const times = await prof.read();
    assert.deepEqual(times.map((t) => t.label), ["relu", "add", "add"]);
    assert.ok(times.every((t) => t.ms >= 0 && t.ms < 10_000), JSON.stringify(times));
    const sum = summarise(times);
    assert.equal(sum.find((s) => s.label === "add")!.count, 2);
    prof.destroy(), a.dispose(), y.dispose();
  },
});

Deno.test({
  name: "buffer pool recycles released buffers by size class; tensors round-trip every dtype",
  ...GPU_TEST,
  async fn() {
    const g = await gpu();
    assert.equal(BufferPool.sizeClass(3), 16);
    assert.equal(BufferPool.sizeClass((1 << 20) + 1), 1 << 21);
    const a = Tensor.empty(g, [1000]);
    const buf = a.buffer;
    a.dispose();
    const b = Tensor.empty(g, [999]);
    assert.equal(b.buffer, buf);
    assert.throws(() => a.buffer, /after dispose/);
    b.dispose();
    const i = Tensor.from(g, [5], [-2, -1, 0, 1, 2147483647], "i32");
    assert.deepEqual([...(await i.read())], [-2, -1, 0, 1, 2147483647]);
    const u = Tensor.from(g, [3], [0, 1, 4294967295], "u32");
    assert.deepEqual([...(await u.read())], [0, 1, 4294967295]);
    const h = Tensor.from(g, [3], [1.5, -0.333, 65504], "f16");
    assert.deepEqual([...(await h.read())].map(f16ToF32), [...toHost("f16", [1.5, -0.333, 65504])].map(f16ToF32));
    assert.equal(f16ToF32((await h.read())[0]), 1.5);
    for (const t of [i, u, h]) t.dispose();
  },
});
