/**
 * One rank of the MPI tests, run by tests/dist/mpi_test.ts under `mpirun -n 2`: `check` runs every collective
 * on fresh random data against sums computed here, `abort` makes rank 1 abort while rank 0 waits in a barrier,
 * `exit` makes rank 1 exit without finalising, `shard SEED COUNT BATCH EPOCHS` all-gathers every rank's images of
 * each epoch as the trainer shards them, `exchange SEED` sums ranges of GPU buffers over the ranks through
 * src/train/exchange.ts in small chunks and checks them. Prints one JSON line per rank on success.
 */
import { detectLaunch, Mpi, MpiError } from "../../src/dist/mpi.ts";
import { shardEpoch } from "../../src/dist/shard.ts";
import { MpiRanks } from "../../src/dist/comm.ts";
import { getGpu } from "../../src/gpu/device.ts";
import { readBuffer } from "../../src/gpu/tensor.ts";
import { SumExchange } from "../../src/train/exchange.ts";
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

if (mode === "exchange") {
  // three ranges over two buffers, one summed into a third buffer; 4 KiB chunks so that chunks cut ranges
  const seed = Number(Deno.args[1]);
  const g = await getGpu();
  const usage = GPUBufferUsage.STORAGE | GPUBufferUsage.COPY_SRC | GPUBufferUsage.COPY_DST;
  const mk = (n: number) => g.device.createBuffer({ size: n * 4, usage });
  const a = mk(5000), b = mk(3001), out = mk(1500);
  const valuesOf = (r: number, buf: number, n: number) => Rng.derive(seed + buf, r).normals(n);
  g.device.queue.writeBuffer(a, 0, Float32Array.from(valuesOf(rank, 0, 5000)));
  g.device.queue.writeBuffer(b, 0, Float32Array.from(valuesOf(rank, 1, 3001)));
  g.device.queue.writeBuffer(out, 0, new Float32Array(1500).fill(NaN));
  const ranges = [
    { buffer: a, offset: 4 * 100, bytes: 4 * 2500 }, // in place, three chunks
    { buffer: b, offset: 0, bytes: 4 * 3001 }, // in place, crosses chunk boundaries
    { buffer: a, offset: 4 * 3000, bytes: 4 * 1500, to: { buffer: out, offset: 0 } }, // into another buffer
  ];
  const ex = new SumExchange(g, new MpiRanks(mpi, { timeoutMs: 60_000 }), ranges, 4096);
  await ex.run();
  const read = async (buf: GPUBuffer, n: number) => new Float32Array(await readBuffer(g, buf, n * 4));
  const [ga, gb, go] = [await read(a, 5000), await read(b, 3001), await read(out, 1500)];
  const sum = (buf: number, n: number) => {
    const s = new Float32Array(n);
    for (let r = 0; r < size; r++) valuesOf(r, buf, n).forEach((v, i) => s[i] += v);
    return s;
  };
  const sa = sum(0, 5000), sb = sum(1, 3001), mine = valuesOf(rank, 0, 5000);
  const bad: string[] = [];
  for (let i = 0; i < 5000; i++) {
    // summed where a range covers it (the third range sums into `out`, leaving a alone), untouched elsewhere
    const want = i >= 100 && i < 2600 ? sa[i] : mine[i];
    if (ga[i] !== want) bad.push(`a[${i}] ${ga[i]} != ${want}`);
  }
  for (let i = 0; i < 3001; i++) if (gb[i] !== sb[i]) bad.push(`b[${i}] ${gb[i]} != ${sb[i]}`);
  for (let i = 0; i < 1500; i++) if (go[i] !== sa[3000 + i]) bad.push(`out[${i}] ${go[i]} != ${sa[3000 + i]}`);
  if (bad.length) fail(`${bad.length} wrong values, first ${bad.slice(0, 3).join("; ")}`);
  console.log(JSON.stringify({ rank, size, chunks: ex.chunks, ok: true }));
  ex.destroy();
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
