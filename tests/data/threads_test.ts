/** ThreadPool: ordered results with transferred buffers, error and crash propagation, close. */
import assert from "node:assert/strict";
import { ThreadCrashError, ThreadPool } from "../../src/data/threads.ts";
import { freshSeed, Rng } from "../util.ts";
import type { FixtureRequest } from "./thread_fixture_worker.ts";

const URL_ = new URL("./thread_fixture_worker.ts", import.meta.url);
type Res = { data: Float64Array; worker: string };

Deno.test("results come back in request order with the init applied and buffers transferred both ways", async () => {
  const seed = freshSeed(), rng = new Rng(seed), offset = rng.next();
  const pool = new ThreadPool<FixtureRequest, Res>(URL_, 3, { init: { offset }, perWorker: 2 });
  try {
    const inputs = Array.from({ length: 24 }, () => Float64Array.from({ length: 5 }, () => rng.next()));
    const expect = inputs.map((x) => x.map((v) => 2 * v + offset));
    // random delays, so workers finish out of order
    const reqs = inputs.map((data) => ({ op: "double" as const, data, delayMs: Math.floor(rng.next() * 20) }));
    const got: Res[] = [];
    for await (const r of pool.map(reqs, 8)) got.push(r);
    assert.equal(got.length, 24);
    got.forEach((r, i) => assert.deepEqual(r.data, expect[i], `request ${i} (seed ${seed})`));
    assert.equal(new Set(got.map((r) => r.worker)).size, 3, "every worker took requests");
    // run() with a transfer list moves the input buffer to the worker
    const x = Float64Array.of(1, 2, 3);
    const r = await pool.run({ op: "double", data: x }, [x.buffer]);
    assert.equal(x.buffer.byteLength, 0, "the sent buffer is detached");
    assert.deepEqual(r.data, Float64Array.of(2 + offset, 4 + offset, 6 + offset));
  } finally {
    pool.close();
  }
});

Deno.test("a handler error rejects its request with the worker's message; the pool goes on", async () => {
  const pool = new ThreadPool<FixtureRequest, Res>(URL_, 1, { init: { offset: 0 } });
  try {
    const msg = `bad input #${freshSeed()}`;
    await assert.rejects(pool.run({ op: "throw", message: msg }), (e: Error) => {
      assert.equal(e.message, msg);
      assert.ok(!(e instanceof ThreadCrashError));
      return true;
    });
    assert.deepEqual((await pool.run({ op: "double", data: Float64Array.of(3) })).data, Float64Array.of(6));
  } finally {
    pool.close();
  }
});

Deno.test("a crashed worker rejects its requests with ThreadCrashError and is replaced", async () => {
  const pool = new ThreadPool<FixtureRequest, Res>(URL_, 1, { init: { offset: 1 }, perWorker: 2 });
  try {
    const msg = `boom ${freshSeed()}`;
    const a = pool.run({ op: "crash", message: msg }), b = pool.run({ op: "hang" });
    for (const p of [a, b]) {
      await assert.rejects(p, (e: Error) => e instanceof ThreadCrashError && e.message.includes(msg));
    }
    assert.deepEqual((await pool.run({ op: "double", data: Float64Array.of(2) })).data, Float64Array.of(5));
  } finally {
    pool.close();
  }
});

Deno.test("a failed start-up is reported to every request", async () => {
  const msg = `no source ${freshSeed()}`;
  const pool = new ThreadPool<FixtureRequest, Res>(URL_, 2, { init: { offset: 0, fail: msg } });
  try {
    for (let i = 0; i < 3; i++) {
      await assert.rejects(pool.run({ op: "double", data: Float64Array.of(i) }), { message: msg });
    }
  } finally {
    pool.close();
  }
});

Deno.test("close() rejects pending and later requests and stops the workers", async () => {
  const pool = new ThreadPool<FixtureRequest, Res>(URL_, 2, { init: { offset: 0 } });
  const pending = [pool.run({ op: "hang" }), pool.run({ op: "hang" }), pool.run({ op: "hang" })];
  pool.close();
  assert.ok(pool.closed);
  for (const p of pending) await assert.rejects(p, /ThreadPool closed/);
  await assert.rejects(pool.run({ op: "double", data: Float64Array.of(1) }), /ThreadPool is closed/);
  pool.close(); // idempotent
  // hung workers that were not terminated would keep the test process alive (and fail the op sanitizer)
});

Deno.test("bad sizes are refused", () => {
  assert.throws(() => new ThreadPool(URL_, 0), /integer ≥ 1/);
  assert.throws(() => new ThreadPool(URL_, 1, { perWorker: 0 }), /perWorker/);
});
