/**
 * One rank of the data-parallel step test (tests/dist/step_test.ts), run under `mpirun -n 2`:
 * `step_worker.ts OUT_DIR SEED CASES_JSON`. For each case, this rank runs its half of the eight test images
 * as its share of the global batch and writes what the step left behind to OUT_DIR/case-K-rank-R.json.
 */
import { splitBatch } from "../../src/data/batch.ts";
import { MpiRanks } from "../../src/dist/comm.ts";
import { Mpi } from "../../src/dist/mpi.ts";
import { eightImages, oneStep, type StepCase } from "../train/one_step.ts";

const [outDir, seedArg, casesArg] = Deno.args;
const seed = Number(seedArg);
const cases = JSON.parse(casesArg) as StepCase[];
const mpi = Mpi.init();
try {
  // 16 KiB chunks: the tiny encoder's gradient leaves in many chunks, read back during the last backward
  const ranks = new MpiRanks(mpi, { timeoutMs: 300_000, bucket: 4096 });
  const halves = splitBatch(await eightImages(seed), mpi.size);
  for (const [k, c] of cases.entries()) {
    const r = await oneStep({ ...c, seed }, halves[mpi.rank], ranks);
    const plain = Object.fromEntries(
      Object.entries(r).map(([n, v]) => [n, n === "gradientExchange" ? v : Array.from(v as ArrayLike<number>)]),
    );
    await Deno.writeTextFile(`${outDir}/case-${k}-rank-${mpi.rank}.json`, JSON.stringify(plain));
  }
  mpi.finalize();
} catch (e) {
  console.error(`rank ${mpi.rank}: ${e instanceof Error ? e.stack : e}`);
  mpi.abort(3);
}
