/**
 * The decode worker: runs one {@link DataTask} per request and answers its result (pixel buffers
 * transferred, not copied), or an error for a failure that is not a bad source file (a bug or an I/O
 * problem with the cache), which the pool turns into a rejected task.
 *
 * @module
 */
import { type DataTask, runTask, type TaskResult } from "./tasks.ts";
import { serveThread } from "./threads.ts";

serveThread<unknown, DataTask, TaskResult>(() => async (task) => {
  const result = await runTask(task);
  return { result, transfer: result.ok && result.image ? [result.image.data.buffer as ArrayBuffer] : [] };
});
