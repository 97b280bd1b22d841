/**
 * Data-parallel pre-training end to end, through the CLI under `mpirun -n 2`:
 * - a 2-rank run equals one process running the same global batch as 2 micro-batches: every loss it logs
 *   and every tensor of its checkpoint but the BN running statistics (kept per rank) bit-equal;
 * - a 2-rank run whose rank 1 is killed with SIGKILL ends the whole job with a non-zero status, and
 *   `--auto-resume` finishes it: with 2 ranks exactly as the uninterrupted run, with 1 process to the end.
 */
import assert from "node:assert/strict";
import { readCheckpointFile } from "../../src/train/checkpoint.ts";
import { GPU_TEST, TINY_MODEL } from "../util.ts";
import { MPICH_RUN, NO_LAUNCHER, WHY } from "./launch.ts";

const CLI = new URL("../../cli.ts", import.meta.url).pathname;

const SETS = [
  ...TINY_MODEL,
  "data.resolution=32",
  "data.scenes.count=256",
  "data.scenes.size=48",
  "data.points=4",
  "data.regions.count=2",
  "loss.image.queue=16",
  "train.batchSize=8",
  "model.bnGroup=4",
  "model.shuffleBn=true",
  "checkpoint.unit=step",
  "checkpoint.interval=2",
  "log.interval=1",
].flatMap((s) => ["--set", s]);

const env = { NO_COLOR: "1" };

function pretrain(ranks: number, out: string, extra: string[]): Deno.ChildProcess {
  const args = [Deno.execPath(), "run", "-A", CLI, "pretrain", "--out", out, ...SETS, ...extra];
  const launch = ranks > 1 ? [MPICH_RUN!, "-n", String(ranks)] : [];
  return new Deno.Command("timeout", { args: ["600", ...launch, ...args], env, stdout: "piped", stderr: "piped" })
    .spawn();
}

async function finish(p: Deno.ChildProcess): Promise<{ code: number; out: string }> {
  const o = await p.output();
  const dec = new TextDecoder();
  return { code: o.code, out: dec.decode(o.stdout) + dec.decode(o.stderr) };
}

const losses = (run: string) =>
  Deno.readTextFileSync(`${run}/metrics.jsonl`).trim().split("\n").map((l) => JSON.parse(l)).map((
    r,
  ) => [r.step, r.loss_image, r.loss_point, r.loss_distill]);

/** The checkpoint's tensors (BN running statistics left out: they are per rank) as name → bytes. */
async function tensors(path: string): Promise<Map<string, Uint8Array>> {
  const f = await readCheckpointFile(path);
  return new Map([...f.tensors].filter(([n]) => !n.startsWith("stats/")).map(([n, t]) => [n, t.bytes]));
}

function assertSameTensors(a: Map<string, Uint8Array>, b: Map<string, Uint8Array>, what: string) {
  assert.deepEqual([...b.keys()].sort(), [...a.keys()].sort(), `${what}: tensor names`);
  const differ = [...a.keys()].filter((n) => {
    const x = a.get(n)!, y = b.get(n)!;
    return x.length !== y.length || x.some((v, i) => v !== y[i]);
  });
  assert.deepEqual(differ, [], `${what}: tensors that differ`);
}

Deno.test({
  name: "dist: a 2-rank pretrain equals one process with 2 micro-batches (losses, checkpoint bit-equal)" + WHY,
  ignore: NO_LAUNCHER,
  ...GPU_TEST,
  async fn() {
    const dir = await Deno.makeTempDir({ prefix: "plrc-dist-train-" });
    try {
      const steps = ["--set", "train.maxSteps=6"];
      const two = await finish(pretrain(2, `${dir}/two`, ["--distributed", "mpi", ...steps]));
      assert.equal(two.code, 0, two.out);
      assert.match(two.out, /distributed: 2 MPI ranks/);
      const one = await finish(pretrain(1, `${dir}/one`, [...steps, "--set", "train.accumulate=2"]));
      assert.equal(one.code, 0, one.out);
      // rank 0 alone wrote the run's files, one line per step
      assert.equal(losses(`${dir}/two`).length, 6);
      assert.deepEqual(losses(`${dir}/two`), losses(`${dir}/one`));
      const last = (run: string) => `${run}/checkpoints/last.safetensors`;
      assertSameTensors(await tensors(last(`${dir}/one`)), await tensors(last(`${dir}/two`)), "checkpoints");
    } finally {
      await Deno.remove(dir, { recursive: true });
    }
  },
});

Deno.test({
  name: "dist: a batch that does not split over the ranks is a usage error (exit 2) naming the key, on every rank" +
    WHY,
  ignore: NO_LAUNCHER,
  ...GPU_TEST,
  async fn() {
    const dir = await Deno.makeTempDir({ prefix: "plrc-dist-bad-" });
    try {
      const r = await finish(
        pretrain(2, `${dir}/run`, [
          "--distributed",
          "mpi",
          "--set",
          "train.batchSize=6",
          "--set",
          "train.accumulate=2",
        ]),
      );
      assert.equal(r.code, 2, r.out);
      assert.match(r.out, /train\.batchSize: 6 does not split over 2 ranks × 2 micro-batches .*multiple of 4/);
    } finally {
      await Deno.remove(dir, { recursive: true });
    }
  },
});

/** The pid of rank `rank` among the deno processes writing into `out` (read from their MPI environment). */
function rankPid(out: string, rank: number): number | null {
  for (const e of Deno.readDirSync("/proc")) {
    if (!/^\d+$/.test(e.name)) continue;
    try {
      const cmdline = Deno.readTextFileSync(`/proc/${e.name}/cmdline`).split("\0");
      if (!cmdline.includes(out) || !cmdline.includes("pretrain") || !cmdline[0].endsWith("deno")) continue;
      const environ = Deno.readTextFileSync(`/proc/${e.name}/environ`).split("\0");
      if (environ.includes(`PMI_RANK=${rank}`)) return Number(e.name);
    } catch {
      // a process that ended meanwhile
    }
  }
  return null;
}

/** Sends `signal` to rank `rank` of the job writing into `out` once it has written a periodic checkpoint. */
async function signalRank(out: string, rank: number, signal: Deno.Signal): Promise<boolean> {
  for (let t = 0; t < 6000; t++) {
    let have = false;
    try {
      have = [...Deno.readDirSync(`${out}/checkpoints`)].some((e) => /^step_\d+\.safetensors$/.test(e.name));
    } catch {
      // not created yet
    }
    const pid = have ? rankPid(out, rank) : null;
    if (pid !== null) return Deno.kill(pid, signal), true;
    await new Promise((r) => setTimeout(r, 10));
  }
  return false;
}

Deno.test({
  name: "dist: a rank that hangs (SIGSTOP) ends the job after distributed.timeout with a message naming it" + WHY,
  ignore: NO_LAUNCHER,
  ...GPU_TEST,
  async fn() {
    const dir = await Deno.makeTempDir({ prefix: "plrc-dist-hang-" });
    try {
      const out = `${dir}/run`;
      const job = pretrain(2, out, [
        "--distributed",
        "mpi",
        "--set",
        "train.maxSteps=400",
        "--set",
        "distributed.timeout=3",
      ]);
      const t0 = performance.now();
      assert.ok(await signalRank(out, 1, "SIGSTOP"), "rank 1 was found and stopped");
      const ended = await finish(job);
      const secs = (performance.now() - t0) / 1000;
      assert.equal(ended.code, 1, ended.out);
      assert.match(
        ended.out,
        /rank 0: an? [a-z-]+ of \d+ \w+ did not complete within 3 s: another rank has hung or died/,
      );
      assert.match(ended.out, /raise --set distributed\.timeout/);
      assert.match(ended.out, /rank 0 of 2 failed \(exit 1\): ending the MPI job/);
      assert.ok(secs < 60, `the job ended ${secs.toFixed(0)} s after the hang, not at the launch timeout`);
    } finally {
      await Deno.remove(dir, { recursive: true });
    }
  },
});

Deno.test({
  name: "dist: a rank killed with SIGKILL ends the job; --auto-resume finishes it, exactly with 2 ranks, " +
    "and with 1 process" + WHY,
  ignore: NO_LAUNCHER,
  ...GPU_TEST,
  async fn() {
    const dir = await Deno.makeTempDir({ prefix: "plrc-dist-resume-" });
    try {
      const steps = ["--set", "train.maxSteps=24"];
      const dist = ["--distributed", "mpi", ...steps];
      const straight = await finish(pretrain(2, `${dir}/straight`, dist));
      assert.equal(straight.code, 0, straight.out);
      for (const [name, resumeRanks] of [["two", 2], ["one", 1]] as const) {
        const out = `${dir}/${name}`;
        const job = pretrain(2, out, dist);
        // kill rank 1 once a checkpoint exists and before the run ends
        const killed = await signalRank(out, 1, "SIGKILL");
        const ended = await finish(job);
        assert.ok(killed, `rank 1 was found and killed (${name}):\n${ended.out}`);
        assert.ok(ended.code !== 0 && ended.code !== 124, `the job ended non-zero, not by timeout: ${ended.code}`);
        const meta = await readCheckpointFile(`${out}/checkpoints/last.safetensors`);
        const at = Number(meta.meta.step);
        assert.ok(at >= 2 && at < 24, `killed mid-run: the last checkpoint is at step ${at}`);
        const resumed = await finish(
          pretrain(resumeRanks, out, resumeRanks > 1 ? [...dist, "--auto-resume"] : [...steps, "--auto-resume"]),
        );
        assert.equal(resumed.code, 0, resumed.out);
        assert.match(resumed.out, new RegExp(`resumed from .* at step ${at}`));
        const fin = await readCheckpointFile(`${out}/checkpoints/last.safetensors`);
        assert.equal(Number(fin.meta.step), 24, resumed.out);
        if (resumeRanks === 2) {
          const last = (run: string) => `${run}/checkpoints/last.safetensors`;
          assertSameTensors(await tensors(last(`${dir}/straight`)), await tensors(last(out)), "resumed vs straight");
        }
      }
    } finally {
      await Deno.remove(dir, { recursive: true });
    }
  },
});

Deno.test({
  name: "dist: bench step --json under mpirun -n 2 splits rank 0's step into GPU wait, readback, communication, host" +
    WHY,
  ignore: NO_LAUNCHER,
  ...GPU_TEST,
  async fn() {
    const args = [Deno.execPath(), "run", "-A", CLI, "bench", "step", "--json", "--reps", "2", "--batch", "8"];
    const sets = [...TINY_MODEL, "data.resolution=32", "model.bnGroup=4"].flatMap((s) => ["--set", s]);
    const o = await new Deno.Command("timeout", {
      args: ["300", MPICH_RUN!, "-n", "2", ...args, ...sets],
      env,
      stdout: "piped",
      stderr: "piped",
    }).output();
    const out = new TextDecoder().decode(o.stdout);
    assert.equal(o.code, 0, out + new TextDecoder().decode(o.stderr));
    const rows = out.trim().split("\n").map((l) => JSON.parse(l));
    assert.equal(rows.length, 1, "rank 0 alone prints");
    const d = rows[0].distributed;
    assert.equal(d.ranks, 2);
    for (const k of ["gpuWaitMs", "readbackMs", "communicationMs", "hostMs"]) {
      assert.ok(Number.isFinite(d[k]) && d[k] >= 0, `${k} ${d[k]}`);
    }
    // the parts add up to the step, and the exchange moved at least the gradient
    const sum = d.gpuWaitMs + d.readbackMs + d.communicationMs + d.hostMs;
    assert.ok(Math.abs(sum - rows[0].msPerStep) < 0.05 * rows[0].msPerStep + 1, `${sum} vs ${rows[0].msPerStep}`);
    assert.ok(d.bytesPerStep > 4 * 10_000, `bytes per step ${d.bytesPerStep}`);
  },
});
