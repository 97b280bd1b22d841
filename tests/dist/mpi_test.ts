/**
 * MPI through Deno's FFI, run for real: `mpirun -n 2` of tests/dist/mpi_worker.ts checks every collective on
 * fresh random data, and that a rank which aborts or exits ends the job with a non-zero status. The MPICH
 * launcher is `$PLRC_MPIRUN`, else `mpiexec.mpich`, else `mpirun`; Open MPI's `mpirun.openmpi` is tried too
 * when installed. Without a launcher these tests are reported as ignored, with the reason.
 */
import assert from "node:assert/strict";
import { freshSeed } from "../util.ts";
import { detectLaunch, Mpi, MpiError } from "../../src/dist/mpi.ts";
import { batchIndices } from "../../src/train/trainer.ts";
import { MPICH_RUN, mpirun as launch, NO_LAUNCHER, OMPI_RUN, type Run, WHY } from "./launch.ts";

/** A fresh seed per run (PLRC_TEST_SEED fixes it), printed so that a failure can be rerun. */
function seed(): number {
  const s = freshSeed();
  console.log(`seed ${s}`);
  return s;
}

const WORKER = new URL("./mpi_worker.ts", import.meta.url).pathname;

if (NO_LAUNCHER) console.warn(`MPI tests${WHY}`);

const mpirun = (launcher: string, args: string[], ompi = false) =>
  launch(launcher, [WORKER, ...args], { ompi, timeoutS: 120 });

function checkRun(r: Run, abi: string) {
  assert.deepEqual(r.code, 0, `mpirun failed:\n${r.stdout}\n${r.stderr}`);
  const lines = r.stdout.trim().split("\n").map((l) => JSON.parse(l)).sort((a, b) => a.rank - b.rank);
  assert.deepEqual(lines.map((l) => [l.rank, l.size, l.ok]), [[0, 2, true], [1, 2, true]]);
  for (const l of lines) {
    assert.deepEqual(l.library.abi, abi);
    assert.deepEqual(l.launch.rank, l.rank);
    assert.deepEqual(l.launch.localRank, l.rank);
    assert.deepEqual(l.gathered, [0, -1, 1 << 30, 1, -2, 1 << 30]);
  }
}

Deno.test({
  name: "mpi (MPICH launcher): 2 ranks, all-reduce sums exact, nonblocking all-reduce, all-gather order, bcast" + WHY,
  ignore: NO_LAUNCHER,
  async fn() {
    checkRun(await mpirun(MPICH_RUN!, ["check", String(seed())]), "mpich");
  },
});

Deno.test({
  name: "mpi (MPICH launcher): a rank that aborts ends the job with its code, and its last line gets through" + WHY,
  ignore: NO_LAUNCHER,
  async fn() {
    const r = await mpirun(MPICH_RUN!, ["abort"]);
    assert.deepEqual(r.code, 7, r.stderr);
    // the aborting rank's own last line gets through (MPI's own abort report may or may not: its forwarding races
    // with the teardown)
    assert.match(r.stderr, /rank 1: aborting on purpose/);
  },
});

Deno.test({
  name: "mpi (MPICH launcher): a rank that exits without finalising ends the job non-zero" + WHY,
  ignore: NO_LAUNCHER,
  async fn() {
    const r = await mpirun(MPICH_RUN!, ["exit"]);
    assert.ok(r.code !== 0 && r.code !== 124, `exit code ${r.code}: ${r.stderr}`);
  },
});

Deno.test({
  name: "mpi (Open MPI launcher): the same collectives through Open MPI's pointer handles" +
    (OMPI_RUN === null ? " [ignored: no mpirun.openmpi on PATH]" : ""),
  ignore: OMPI_RUN === null,
  async fn() {
    checkRun(await mpirun(OMPI_RUN!, ["check", String(seed())], true), "openmpi");
    const r = await mpirun(OMPI_RUN!, ["abort"], true);
    assert.deepEqual(r.code, 7, r.stderr);
  },
});

Deno.test({
  name: "mpi: sharding under mpirun -n 2: over each epoch the ranks' images are the epoch's images, each once" + WHY,
  ignore: NO_LAUNCHER,
  async fn() {
    const s = seed(), count = 37, batch = 8, epochs = 3, spe = Math.floor(count / batch);
    const r = await mpirun(MPICH_RUN!, ["shard", String(s), String(count), String(batch), String(epochs)]);
    assert.equal(r.code, 0, r.stderr);
    const lines = r.stdout.trim().split("\n").map((l) => JSON.parse(l)) as { rank: number; gathered: number[][][] }[];
    assert.equal(lines.length, 2);
    // both ranks gathered the same thing
    assert.deepEqual(lines[0].gathered, lines[1].gathered);
    for (let e = 0; e < epochs; e++) {
      const [r0, r1] = lines[0].gathered[e];
      assert.equal(r0.length, (spe * batch) / 2, `rank 0's share of epoch ${e}`);
      assert.equal(r1.length, (spe * batch) / 2, `rank 1's share of epoch ${e}`);
      // the single process's epoch: the same images, each taken once by exactly one rank
      const single = Array.from({ length: spe }, (_, k) => batchIndices(s, count, batch, e * spe + k).indices).flat();
      assert.deepEqual([...r0, ...r1].sort((a, b) => a - b), [...single].sort((a, b) => a - b), `epoch ${e}`);
      assert.equal(new Set([...r0, ...r1]).size, spe * batch, `no image twice in epoch ${e}`);
    }
    // and epochs differ in order and in the images dropped
    assert.notDeepEqual(lines[0].gathered[0], lines[0].gathered[1]);
  },
});

Deno.test({
  name: "mpi: a step's exchange of sums over 2 ranks in 4 KiB chunks cut across ranges: exact sums, into place " +
    "or into another buffer, nothing else touched" + WHY,
  ignore: NO_LAUNCHER,
  async fn() {
    const r = await mpirun(MPICH_RUN!, ["exchange", String(seed())]);
    assert.equal(r.code, 0, r.stdout + r.stderr);
    const lines = r.stdout.trim().split("\n").map((l) => JSON.parse(l));
    // 2500 + 3001 + 1500 floats in chunks of 1024
    assert.deepEqual(lines.map((l) => [l.ok, l.chunks]), [[true, 7], [true, 7]]);
  },
});

Deno.test("mpi: a missing library is a typed error that says what to install", () => {
  let e: unknown;
  try {
    Mpi.init({ library: "libno-such-mpi.so.99" });
  } catch (err) {
    e = err;
  }
  assert.ok(e instanceof MpiError);
  assert.deepEqual(e.kind, "not-found");
  assert.match(e.message, /libno-such-mpi\.so\.99/);
  assert.match(e.message, /apt-get install mpich libmpich-dev/);
  assert.deepEqual(Mpi.current, null);
});

Deno.test("mpi: the launch is read from each launcher's variables, without MPI", () => {
  assert.deepEqual(detectLaunch({}), null);
  assert.deepEqual(detectLaunch({ PMI_RANK: "1", PMI_SIZE: "4", MPI_LOCALRANKID: "1", MPI_LOCALNRANKS: "2" }), {
    launcher: "hydra",
    rank: 1,
    size: 4,
    localRank: 1,
    localSize: 2,
  });
  assert.deepEqual(
    detectLaunch({
      OMPI_COMM_WORLD_RANK: "3",
      OMPI_COMM_WORLD_SIZE: "8",
      OMPI_COMM_WORLD_LOCAL_RANK: "3",
      OMPI_COMM_WORLD_LOCAL_SIZE: "4",
      PMIX_RANK: "3",
    })?.launcher,
    "openmpi",
  );
  assert.deepEqual(detectLaunch({ SLURM_PROCID: "5", SLURM_NTASKS: "16", SLURM_LOCALID: "1" }), {
    launcher: "slurm",
    rank: 5,
    size: 16,
    localRank: 1,
    localSize: null,
  });
  // Slurm's variables in a batch script (no srun step) have no task count for the step: not a launch
  assert.deepEqual(detectLaunch({ SLURM_PROCID: "0" }), null);
  assert.deepEqual(detectLaunch({ PMIX_RANK: "2", PMIX_SIZE: "3" })?.rank, 2);
  assert.deepEqual(detectLaunch({ PMI_RANK: "x" }), null);
});
