/**
 * Throughput of the foundation kernels: each case is bound once, warmed up, then timed over many
 * dispatches in one submission (GPU time from timestamp queries where the adapter has them, wall time
 * otherwise). Used by `plrc bench kernels` and `bench/kernels_bench.ts`.
 *
 * @module
 */
import type { Gpu } from "../gpu/device.ts";
import { Profiler, Recorder, sync } from "../gpu/recorder.ts";
import type { Dispatch } from "../gpu/kernel.ts";
import { Tensor } from "../gpu/tensor.ts";
import * as ew from "../kernels/elementwise.ts";
import { reduceAxis } from "../kernels/reduce.ts";
import * as rows from "../kernels/rows.ts";
import { transpose } from "../kernels/transpose.ts";

/** One measurement, printed as one JSON object by `plrc bench --json`. */
export interface KernelMeasurement {
  /** Kernel name. */
  kernel: string;
  /** Kernel variant. */
  variant: string;
  /** Shape of the case. */
  shape: number[];
  /** Median milliseconds per dispatch (sequence) . */
  ms: number;
  /** Where `ms` came from. */
  timing: "timestamp" | "wall";
  /** Bytes read + written per run divided by time. */
  gbPerS: number;
  /** The adapter's description. */
  adapter: string;
  /** The adapter's backend. */
  backend: string;
}

/** A case: dispatches that do one logical op, and the bytes it moves. */
export interface KernelCase {
  /** Kernel name. */
  kernel: string;
  /** Kernel variant. */
  variant: string;
  /** Shape of the case. */
  shape: number[];
  /** Bytes read plus written by one run. */
  bytes: number;
  /** The dispatches of one run. */
  dispatches: Dispatch[];
}

/** Times `c` over `reps` repetitions; median over repetitions. */
export async function timeCase(
  gpu: Gpu,
  c: KernelCase,
  reps = 20,
): Promise<{ ms: number; timing: "timestamp" | "wall" }> {
  const warm = new Recorder(gpu);
  for (let i = 0; i < 2; i++) warm.runAll(c.dispatches);
  warm.submit();
  await sync(gpu);
  if (gpu.hasTimestamps) {
    const prof = new Profiler(gpu, reps * c.dispatches.length);
    const rec = new Recorder(gpu, prof);
    for (let i = 0; i < reps; i++) rec.runAll(c.dispatches);
    rec.submit();
    const t = await prof.read();
    prof.destroy();
    const per: number[] = [];
    for (let i = 0; i < reps; i++) {
      per.push(t.slice(i * c.dispatches.length, (i + 1) * c.dispatches.length).reduce((s, e) => s + e.ms, 0));
    }
    const ms = median(per);
    if (ms > 0) return { ms, timing: "timestamp" };
  }
  // wall time of the whole batch (one submission, one wait) divided by the repetitions
  const t0 = performance.now();
  const rec = new Recorder(gpu);
  for (let i = 0; i < reps; i++) rec.runAll(c.dispatches);
  rec.submit();
  await sync(gpu);
  return { ms: (performance.now() - t0) / reps, timing: "wall" };
}

function median(v: number[]): number {
  const s = [...v].sort((a, b) => a - b);
  return s[Math.floor(s.length / 2)];
}

/** Builds the benchmark cases at `scale` (1 = full size; tests use a tiny scale). */
export async function kernelCases(gpu: Gpu, scale = 1): Promise<{ cases: KernelCase[]; tensors: Tensor[] }> {
  const n = Math.max(1024, Math.round((1 << 22) * scale));
  const R = Math.max(8, Math.round(4096 * scale)), C = 1024;
  const T = Math.max(16, Math.round(2048 * Math.sqrt(scale)));
  const rnd = (k: number) => Float32Array.from({ length: k }, () => Math.random() * 2 - 1);
  const a = Tensor.from(gpu, [n], rnd(n), "f32", "a"), b = Tensor.from(gpu, [n], rnd(n), "f32", "b");
  const y = Tensor.empty(gpu, [n], "f32", "y");
  const x = Tensor.from(gpu, [R, C], rnd(R * C), "f32", "x"), xy = Tensor.empty(gpu, [R, C], "f32", "xy");
  const rowOut = Tensor.empty(gpu, [R], "f32", "row out"), rowOut2 = Tensor.empty(gpu, [R], "f32", "row out 2");
  const tgt = Tensor.from(gpu, [R], Int32Array.from({ length: R }, (_, i) => i % C), "i32", "targets");
  const sq = Tensor.from(gpu, [T, T], rnd(T * T), "f32", "square"), sqT = Tensor.empty(gpu, [T, T], "f32", "square T");
  const f = 4;
  const cases: KernelCase[] = [
    { kernel: "add", variant: "vec4", shape: [n], bytes: 3 * f * n, dispatches: [await ew.add(gpu, a, b, y)] },
    { kernel: "axpy", variant: "vec4", shape: [n], bytes: 3 * f * n, dispatches: [await ew.axpy(gpu, 0.5, a, y)] },
    { kernel: "relu", variant: "vec4", shape: [n], bytes: 2 * f * n, dispatches: [await ew.relu(gpu, a, y)] },
    {
      kernel: "reduce_sum",
      variant: "rows",
      shape: [R, C],
      bytes: f * R * (C + 1),
      dispatches: (await reduceAxis(gpu, x, 1, "sum", rowOut)).dispatches,
    },
  ];
  for (const v of ["thread", "workgroup"] as const) {
    cases.push(
      {
        kernel: "softmax",
        variant: v,
        shape: [R, C],
        bytes: 2 * f * R * C,
        dispatches: [await rows.softmax(gpu, x, xy, v)],
      },
      {
        kernel: "cross_entropy",
        variant: v,
        shape: [R, C],
        bytes: f * R * (C + 3),
        dispatches: [await rows.crossEntropy(gpu, x, tgt, rowOut, rowOut2, v)],
      },
    );
  }
  for (const v of ["naive", "tiled"] as const) {
    cases.push({
      kernel: "transpose",
      variant: v,
      shape: [T, T],
      bytes: 2 * f * T * T,
      dispatches: [await transpose(gpu, sq, sqT, v)],
    });
  }
  return { cases, tensors: [a, b, y, x, xy, rowOut, rowOut2, tgt, sq, sqT] };
}

/** Runs every kernel case and returns one measurement per case. */
export async function benchKernels(
  gpu: Gpu,
  opts: { scale?: number; reps?: number } = {},
): Promise<KernelMeasurement[]> {
  const { cases, tensors } = await kernelCases(gpu, opts.scale ?? 1);
  const out: KernelMeasurement[] = [];
  for (const c of cases) {
    const { ms, timing } = await timeCase(gpu, c, opts.reps ?? 20);
    out.push({
      kernel: c.kernel,
      variant: c.variant,
      shape: c.shape,
      ms,
      timing,
      gbPerS: c.bytes / (ms * 1e6),
      adapter: gpu.summary.description,
      backend: gpu.summary.backend,
    });
  }
  for (const t of tensors) t.dispose();
  return out;
}
