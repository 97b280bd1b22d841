/**
 * One rank of the MPI tests, run by tests/dist/mpi_test.ts under `mpirun -n 2`: `check` runs every collective
 * on fresh random data against sums computed here, `abort` makes rank 1 abort while rank 0 waits in a barrier,
 * `exit` makes rank 1 exit without finalising, `shard SEED COUNT BATCH EPOCHS` all-gathers every rank's images of
 * each epoch as the trainer shards them. Prints one JSON line per rank on success.
 */
import { detectLaunch, Mpi, MpiError } from "../../src/dist/mpi.ts";
import { shardEpoch } from "../../src/dist/shard.ts";
import { Rng } from "../../src/util/rng.ts";

const mode = Deno.args[0] ?? "check";
const launch = detectLaunch();
const mpi = Mpi.init();
const { rank, size } = mpi;
const fail = (msg: string): never => {
  console.error(`rank ${rank}: ${msg}`);
  return mpi.abort(3);
};

if (mode === "abort") {
  if (rank === 1) {
    console.error("rank 1: aborting on purpose");
    mpi.abort(7);
  }
  mpi.barrier();
  fail("the barrier returned although rank 1 aborted");
}
if (mode === "exit") {
  if (rank === 1) Deno.exit(5);
  mpi.barrier();
  fail("the barrier returned although rank 1 exited");
}

if (mode === "shard") {
  const [seed, count, batch, epochs] = Deno.args.slice(1).map(Number);
  const gathered: number[][][] = [];
  for (let e = 0; e < epochs; e++) {
    const mine = Int32Array.from(shardEpoch({ seed, count, batch, ranks: size, rank }, e));
    // every rank takes the same number of images, so the all-gather's equal parts hold them all
    const all = mpi.allgather(mine);
    gathered.push(
      Array.from({ length: size }, (_, r) => Array.from(all.subarray(r * mine.length, (r + 1) * mine.length))),
    );
  }
  console.log(JSON.stringify({ rank, size, gathered }));
  mpi.finalize();
  Deno.exit(0);
}

const seed = Number(Deno.args[1] ?? 1);
/** Every rank's data for a case, computable on any rank. */
const dataOf = (r: number, n: number, salt: number) => Rng.derive(seed + salt, r).normals(n);
const report: Record<string, unknown> = { rank, size, launch, library: mpi.library };
if (launch && (launch.rank !== rank || launch.size !== size)) fail(`launch ${JSON.stringify(launch)} disagrees`);

// all-reduce: exact sums, on sizes around the eager/rendezvous switch points
for (const [i, n] of [1, 7, 1000, 65_537, 1 << 20].entries()) {
  const x = dataOf(rank, n, i);
  const want = new Float32Array(n);
  // the same order of additions as a two-rank reduction (a + b is commutative in f32, exactly)
  for (let r = 0; r < size; r++) {
    const d = dataOf(r, n, i);
    for (let k = 0; k < n; k++) want[k] = Math.fround(want[k] + d[k]);
  }
  mpi.allreduceSum(x);
  for (let k = 0; k < n; k++) if (x[k] !== want[k]) fail(`allreduce n=${n}: [${k}] ${x[k]} != ${want[k]}`);
}
// nonblocking all-reduce, completed by polling from the event loop
{
  const n = 300_001, x = dataOf(rank, n, 50), want = new Float32Array(n);
  for (let r = 0; r < size; r++) {
    const d = dataOf(r, n, 50);
    for (let k = 0; k < n; k++) want[k] = Math.fround(want[k] + d[k]);
  }
  const req = mpi.iallreduceSum(x);
  await req.done();
  for (let k = 0; k < n; k++) if (x[k] !== want[k]) fail(`iallreduce: [${k}] ${x[k]} != ${want[k]}`);
}
// all-gather: rank order, three element types
{
  const f = dataOf(rank, 5, 60), g = mpi.allgather(f);
  for (let r = 0; r < size; r++) {
    const d = dataOf(r, 5, 60);
    for (let k = 0; k < 5; k++) if (g[r * 5 + k] !== d[k]) fail(`allgather f32 rank ${r} [${k}]`);
  }
  const ints = mpi.allgather(Int32Array.from([rank, -rank - 1, 1 << 30]));
  for (let r = 0; r < size; r++) {
    if (ints[3 * r] !== r || ints[3 * r + 1] !== -r - 1 || ints[3 * r + 2] !== 1 << 30) fail("allgather i32");
  }
  const bytes = mpi.allgather(Uint8Array.from([rank, 255 - rank]));
  for (let r = 0; r < size; r++) if (bytes[2 * r] !== r || bytes[2 * r + 1] !== 255 - r) fail("allgather u8");
  report.gathered = Array.from(ints);
}
// broadcast from each root, onto poisoned arrays elsewhere
for (let root = 0; root < size; root++) {
  const src = dataOf(root, 1001, 70 + root);
  const x = rank === root ? src.slice() : new Float32Array(1001).fill(NaN);
  mpi.bcast(x, root);
  for (let k = 0; k < x.length; k++) if (x[k] !== src[k]) fail(`bcast root ${root} [${k}]`);
  const b = rank === root ? Uint8Array.from([9, 8, 7]) : new Uint8Array(3);
  mpi.bcast(b, root);
  if (b.join() !== "9,8,7") fail(`bcast u8 root ${root}`);
}
// a collective with a wrong root is a typed error, not a crash
try {
  mpi.bcast(new Float32Array(1), size);
  fail("bcast to a missing root did not throw");
} catch (e) {
  if (!(e instanceof MpiError)) throw e;
}
mpi.barrier();
console.log(JSON.stringify({ ...report, ok: true }));
mpi.finalize();
