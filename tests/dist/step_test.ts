/**
 * Data parallelism equals accumulation: `mpirun -n 2` with half of the batch per rank must leave exactly what
 * one process leaves with the whole batch as the same micro-batches (tests/train/accumulate_test.ts holds that
 * one to separate steps): gradients, loss values, parameters, momentum encoder, queue and distillation
 * centre, for plrc, moco and detcon, with shuffle-BN (its all-gather of views and keys) and without, and with
 * micro-batches inside each rank. Both ranks must hold the same state afterwards.
 */
import assert from "node:assert/strict";
import { assertClose, freshSeed, GPU_TEST, maxRelErr } from "../util.ts";
import { type After, eightImages, oneStep, type StepCase } from "../train/one_step.ts";
import { MPICH_RUN, mpirun, NO_LAUNCHER, OMPI_RUN, WHY } from "./launch.ts";

const WORKER = new URL("./step_worker.ts", import.meta.url).pathname;

/** Global batch 8 on 2 ranks: `accumulate` micro-batches per rank. */
const CASES: (Omit<StepCase, "seed"> & { label: string })[] = [
  { label: "plrc, shuffle-BN", batch: 8, accumulate: 1, shuffleBn: true, method: "plrc" },
  { label: "plrc, no shuffle-BN", batch: 8, accumulate: 1, shuffleBn: false, method: "plrc" },
  { label: "plrc, shuffle-BN, 2 micro-batches per rank", batch: 8, accumulate: 2, shuffleBn: true, method: "plrc" },
  { label: "moco, shuffle-BN", batch: 8, accumulate: 1, shuffleBn: true, method: "moco" },
  { label: "detcon, shuffle-BN", batch: 8, accumulate: 1, shuffleBn: true, method: "detcon" },
];

function load(dir: string, k: number, rank: number): After {
  const o = JSON.parse(Deno.readTextFileSync(`${dir}/case-${k}-rank-${rank}.json`));
  return {
    ...o,
    grads: Float64Array.from(o.grads),
    params: Float64Array.from(o.params),
    momentum: Float64Array.from(o.momentum),
    queue: Float64Array.from(o.queue),
    center: Float64Array.from(o.center),
  };
}

Deno.test({
  name: "dist: 2 ranks × 4 images equal one process with 2 micro-batches of 4 (plrc, moco, detcon, shuffle-BN)" + WHY,
  ignore: NO_LAUNCHER,
  ...GPU_TEST,
  async fn() {
    const seed = freshSeed();
    const dir = await Deno.makeTempDir({ prefix: "plrc-dist-step-" });
    try {
      const cases = CASES.map(({ label: _, ...c }) => c);
      const r = await mpirun(MPICH_RUN!, [WORKER, dir, String(seed), JSON.stringify(cases)], { timeoutS: 900 });
      assert.deepEqual(r.code, 0, `mpirun failed (seed ${seed}):\n${r.stdout}\n${r.stderr}`);
      const whole = await eightImages(seed);
      for (const [k, c] of CASES.entries()) {
        const at = `(${c.label}, seed ${seed})`;
        const ref = await oneStep({ ...c, seed, accumulate: 2 * c.accumulate }, whole);
        const [r0, r1] = [load(dir, k, 0), load(dir, k, 1)];
        // every rank ends in the same state: the same update from the same all-reduced gradient
        for (const key of ["grads", "params", "momentum", "losses", "queue", "center"] as const) {
          assert.deepEqual(Array.from(r1[key]), Array.from(r0[key]), `rank 1's ${key} equal rank 0's ${at}`);
        }
        assert.ok(r0.grads.every(Number.isFinite) && r0.grads.some((g) => g !== 0), `finite, non-zero gradients ${at}`);
        assertClose(r0.grads, ref.grads, { rtol: 1e-4, atol: 1e-7 }, `gradient ${at}`);
        assertClose(r0.losses, ref.losses, { rtol: 1e-5, atol: 1e-6 }, `losses ${at}`);
        assertClose(r0.params, ref.params, { rtol: 1e-5, atol: 1e-7 }, `parameters ${at}`);
        assertClose(r0.momentum, ref.momentum, { rtol: 1e-5, atol: 1e-7 }, `momentum encoder ${at}`);
        assertClose(r0.queue, ref.queue, { rtol: 1e-4, atol: 1e-6 }, `queue ${at}`);
        assertClose(r0.center, ref.center, { rtol: 1e-4, atol: 1e-7 }, `distillation centre ${at}`);
        // the gradient left in many chunks, read back from several points of the last backward
        const ge = r0.gradientExchange!;
        assert.ok(ge.chunks >= 8 && ge.segments >= 4, `chunks ${ge.chunks}, segments ${ge.segments} ${at}`);
        // the queue got both ranks' keys: rows 0-3 (rank 0's images) and 4-7 (rank 1's) differ
        const D = 16;
        assert.ok(maxRelErr(r0.queue.slice(0, 4 * D), r0.queue.slice(4 * D, 8 * D)) > 1e-2, `two key sets ${at}`);
        console.log(
          `${c.label}: max relative gradient difference ${maxRelErr(r0.grads, ref.grads).toExponential(1)}; ` +
            `gradient in ${ge.chunks} chunks from ${ge.segments} points of the last pass`,
        );
      }
    } finally {
      await Deno.remove(dir, { recursive: true });
    }
  },
});

Deno.test({
  name: "dist: the same step under Open MPI's launcher (pointer handles) leaves exactly what it leaves under MPICH" +
    (OMPI_RUN === null || NO_LAUNCHER ? " [ignored: needs mpirun.openmpi and MPICH's launcher]" : ""),
  ignore: OMPI_RUN === null || NO_LAUNCHER,
  ...GPU_TEST,
  async fn() {
    const seed = freshSeed();
    const cases = JSON.stringify([{ batch: 8, accumulate: 1, shuffleBn: true, method: "plrc" }]);
    const dirs = [await Deno.makeTempDir(), await Deno.makeTempDir()];
    try {
      const a = await mpirun(MPICH_RUN!, [WORKER, dirs[0], String(seed), cases], { timeoutS: 600 });
      const b = await mpirun(OMPI_RUN!, [WORKER, dirs[1], String(seed), cases], { timeoutS: 600, ompi: true });
      assert.equal(a.code, 0, a.stderr);
      assert.equal(b.code, 0, b.stderr);
      for (const rank of [0, 1]) {
        const read = (d: string) => Deno.readTextFileSync(`${d}/case-0-rank-${rank}.json`);
        assert.equal(read(dirs[1]), read(dirs[0]), `rank ${rank} (seed ${seed})`);
      }
    } finally {
      for (const d of dirs) await Deno.remove(d, { recursive: true });
    }
  },
});
