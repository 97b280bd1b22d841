/**
 * The decode worker: receives one {@link DataTask} per message and answers `{ result }` (pixel buffers
 * transferred, not copied) or `{ error }` for a failure that is not a bad source file (a bug or an I/O
 * problem with the cache), which the pool turns into a rejected task.
 *
 * @module
 */
import { type DataTask, runTask } from "./pool.ts";

// Deno types `self` as the window scope; in a worker it is the worker scope
const scope = self as unknown as {
  onmessage: ((e: MessageEvent<DataTask>) => void) | null;
  postMessage(msg: unknown, transfer?: Transferable[]): void;
};

scope.onmessage = async (e) => {
  try {
    const result = await runTask(e.data);
    const transfer = result.ok && result.image ? [result.image.data.buffer as ArrayBuffer] : [];
    scope.postMessage({ result }, transfer);
  } catch (err) {
    scope.postMessage({ error: err instanceof Error ? err.message : String(err) });
  }
};
