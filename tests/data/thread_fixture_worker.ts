/**
 * A worker for tests/data/threads_test.ts: doubles the numbers it is sent (after an optional delay),
 * throws, or crashes on request; `init.fail` makes start-up fail.
 *
 * @module
 */
import { serveThread } from "../../src/data/threads.ts";

export type FixtureRequest =
  | { op: "double"; data: Float64Array; delayMs?: number }
  | { op: "throw"; message: string }
  | { op: "crash"; message: string }
  | { op: "hang" };

serveThread<{ offset: number; fail?: string }, FixtureRequest, { data: Float64Array; worker: string }>((init) => {
  if (init.fail) throw new Error(init.fail);
  return async (req) => {
    if (req.op === "throw") throw new Error(req.message);
    if (req.op === "crash") {
      setTimeout(() => {
        throw new Error(req.message); // uncaught: the worker dies
      });
      return await new Promise(() => {});
    }
    if (req.op === "hang") return await new Promise(() => {});
    if (req.delayMs) await new Promise((r) => setTimeout(r, req.delayMs));
    const data = req.data.map((v) => 2 * v + init.offset);
    return { result: { data, worker: (self as unknown as { name: string }).name }, transfer: [data.buffer] };
  };
});
