/**
 * Test helpers: a seeded RNG, float64 closeness checks with the worst element in the message, and a way
 * to run bound dispatches once with poisoned outputs.
 *
 * @module
 */
import assert from "node:assert/strict";
import { getGpu, type Gpu } from "../src/gpu/device.ts";
import { Recorder } from "../src/gpu/recorder.ts";
import type { Dispatch } from "../src/gpu/kernel.ts";
import { type DType, Tensor } from "../src/gpu/tensor.ts";
export { Rng } from "../src/util/rng.ts";

/** Runs the CLI as a user does (`deno run -A cli.ts ARGS`, a subprocess): exit code, stdout, stderr, and both. */
export async function runCli(
  args: string[],
  env: Record<string, string> = {},
): Promise<{ code: number; stdout: string; stderr: string; text: string }> {
  const out = await new Deno.Command(Deno.execPath(), {
    args: ["run", "-A", new URL("../cli.ts", import.meta.url).pathname, ...args],
    env,
    stdout: "piped",
    stderr: "piped",
  }).output();
  const dec = new TextDecoder(), stdout = dec.decode(out.stdout), stderr = dec.decode(out.stderr);
  return { code: out.code, stdout, stderr, text: stdout + stderr };
}

/** A seed that differs per run unless PLRC_TEST_SEED is set; printed on failure through the message. */
export function freshSeed(): number {
  const fixed = Deno.env.get("PLRC_TEST_SEED");
  return fixed ? Number(fixed) : (Math.random() * 2 ** 31) | 0;
}

/** Tolerances: |a − e| ≤ atol + rtol·|e| elementwise. */
export interface Tol {
  rtol: number;
  /** One bound for all elements, or one per element (for results whose error depends on their terms). */
  atol: number | ArrayLike<number>;
}

/** Asserts closeness elementwise; the message names the worst element and the seed. */
export function assertClose(
  actual: ArrayLike<number>,
  expected: ArrayLike<number>,
  tol: Tol,
  what: string,
): void {
  assert.equal(actual.length, expected.length, `${what}: length ${actual.length} vs ${expected.length}`);
  let worst = -1, worstExcess = 0;
  for (let i = 0; i < expected.length; i++) {
    const a = actual[i], e = expected[i];
    const atol = typeof tol.atol === "number" ? tol.atol : tol.atol[i];
    const err = Math.abs(a - e), bound = atol + tol.rtol * Math.abs(e);
    if (!(err <= bound)) { // catches NaN (poison) too
      const excess = Number.isNaN(err) ? Infinity : err / bound;
      if (worst < 0 || excess > worstExcess) worst = i, worstExcess = excess;
    }
  }
  if (worst >= 0) {
    assert.fail(
      `${what}: element ${worst} is ${actual[worst]}, expected ${expected[worst]} ` +
        `(rtol ${tol.rtol}, atol ${typeof tol.atol === "number" ? tol.atol : tol.atol[worst]}; ${
          Number.isFinite(worstExcess) ? worstExcess.toFixed(1) + "× the bound" : "NaN"
        })`,
    );
  }
}

/** Largest |a − e| / max(|e|, floor) over the arrays. */
export function maxRelErr(a: ArrayLike<number>, e: ArrayLike<number>, floor = 1e-6): number {
  let m = 0;
  for (let i = 0; i < e.length; i++) m = Math.max(m, Math.abs(a[i] - e[i]) / Math.max(Math.abs(e[i]), floor));
  return m;
}

/** The shared device. */
export const gpu = (): Promise<Gpu> => getGpu();

/** An output tensor filled with NaN (or -1 for integer types) so that unwritten elements fail checks. */
export function poisoned(g: Gpu, shape: number[], dtype: DType = "f32", name = "out"): Tensor {
  const t = Tensor.empty(g, shape, dtype, name);
  t.fill(dtype === "f32" || dtype === "f16" ? NaN : -1);
  return t;
}

/** Records the dispatches in one submission and waits for them. */
export async function runOnce(g: Gpu, ds: Dispatch[]): Promise<void> {
  new Recorder(g).runAll(ds).submit();
  await g.device.queue.onSubmittedWorkDone();
}

/** Reads a tensor as plain numbers. */
export async function readF64(t: Tensor): Promise<Float64Array> {
  return Float64Array.from(await t.read());
}

/** `--set`s of the smallest encoder the step tests train (ResNet-18 ×0.0625, 16-wide heads, 16 prototypes). */
export const TINY_MODEL: readonly string[] = [
  "model.width=0.0625",
  "model.prototypes=16",
  "model.pointDim=16",
  "model.bottleneck=16",
];

/** Deno.test options for GPU tests: the device and its pools live for the whole process. */
export const GPU_TEST = { sanitizeResources: false, sanitizeOps: false };

/**
 * The workgroup-memory ("tiled") GEMM shape is the real-GPU variant. Mesa's GL compiler takes minutes for
 * each of its pipelines (measured: 6.5 min for one convolution's three kernels), and CPU adapters never
 * choose it, so its tests run on Vulkan (lavapipe in CI, real GPUs) and are skipped on GL.
 */
export function skipTiled(shape: string): boolean {
  return shape === "tiled" && BACKEND === "gl";
}

/** The backend of the shared device ("none" without an adapter). */
export const BACKEND: string = await getGpu().then((g) => g.summary.backend, () => "none");

/** Max relative error between `grad` and central differences (step 1e-6) of `loss` at `x` (x restored). */
export function fdError(loss: (x: Float64Array) => number, x: Float64Array, grad: ArrayLike<number>, h = 1e-6): number {
  let worst = 0;
  for (let i = 0; i < x.length; i++) {
    const xi = x[i];
    x[i] = xi + h;
    const up = loss(x);
    x[i] = xi - h;
    const down = loss(x);
    x[i] = xi;
    const fd = (up - down) / (2 * h);
    worst = Math.max(worst, Math.abs(fd - grad[i]) / Math.max(1, Math.abs(fd)));
  }
  return worst;
}
