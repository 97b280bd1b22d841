/** The worker pool: results identical and in task order for 0, 1 and 2 workers; bounded prefetch. */
import assert from "node:assert/strict";
import { join } from "node:path";
import { type DataTask, type TaskResult, WorkerPool } from "../../src/data/pool.ts";
import { craftPng, jpegOf, testPicture } from "./helpers.ts";

async function collect(pool: WorkerPool, tasks: DataTask[]): Promise<TaskResult[]> {
  const out: TaskResult[] = [];
  for await (const r of pool.map(tasks)) out.push(r);
  return out;
}

Deno.test("0, 1 and 2 workers give identical results in task order, bad files included", async () => {
  const dir = await Deno.makeTempDir();
  try {
    const rels: string[] = [];
    for (let i = 0; i < 8; i++) {
      const rel = `img${i}.${i % 3 === 0 ? "png" : "jpg"}`;
      const w = 40 + 37 * i, h = 300 - 20 * i; // varied sizes so workers finish out of order
      const bytes = i % 3 === 0
        ? craftPng({ width: w, height: h, depth: 8, colorType: 2, samples: testPicture(w, h).data })
        : await jpegOf(testPicture(w, h));
      await Deno.writeFile(join(dir, rel), i === 5 ? bytes.subarray(0, 100) : bytes);
      rels.push(rel);
    }
    const tasks: DataTask[] = rels.map((rel) => ({ kind: "load", root: dir, rel, opts: { maxShort: 64 } }));
    const results: TaskResult[][] = [];
    for (const n of [0, 1, 2]) {
      const pool = new WorkerPool(n);
      try {
        results.push(await collect(pool, tasks));
      } finally {
        pool.close();
      }
    }
    assert.deepEqual(results[0].map((r) => r.rel), rels);
    assert.equal(results[0].filter((r) => !r.ok).length, 1);
    assert.ok(!results[0][5].ok);
    for (const k of [1, 2]) {
      assert.equal(results[k].length, 8);
      for (let i = 0; i < 8; i++) {
        const a = results[0][i], b = results[k][i];
        assert.equal(b.rel, a.rel);
        assert.equal(b.ok, a.ok);
        if (a.ok && b.ok) {
          assert.deepEqual([b.image!.width, b.image!.height], [a.image!.width, a.image!.height]);
          assert.deepEqual(b.image!.data, a.image!.data, `${k} workers, ${a.rel}`);
        } else if (!a.ok && !b.ok) assert.equal(b.reason, a.reason);
      }
    }
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("map() keeps at most `prefetch` tasks started ahead of the consumer", async () => {
  const dir = await Deno.makeTempDir();
  const pool = new WorkerPool(0);
  try {
    await Deno.writeFile(join(dir, "a.jpg"), await jpegOf(testPicture(16, 16)));
    let pulled = 0;
    const tasks = function* (): Generator<DataTask> {
      for (let i = 0; i < 10; i++) pulled++, yield { kind: "load", root: dir, rel: "a.jpg", opts: {} };
    };
    const seen: number[] = [];
    for await (const _ of pool.map(tasks(), 3)) seen.push(pulled);
    // at each delivery: 3 started and not consumed, plus the one being delivered
    assert.deepEqual(seen, [4, 5, 6, 7, 8, 9, 10, 10, 10, 10]);
  } finally {
    pool.close();
    await Deno.remove(dir, { recursive: true });
  }
});
