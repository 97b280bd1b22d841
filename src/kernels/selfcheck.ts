/**
 * A quick on-device check of the foundation kernels against their float64 references: run by
 * `plrc pretrain` before anything else, so a broken driver or adapter is caught in seconds rather than
 * after hours of training, and by the GL smoke tests.
 *
 * @module
 */
import type { Gpu } from "../gpu/device.ts";
import { Recorder, sync } from "../gpu/recorder.ts";
import { Tensor } from "../gpu/tensor.ts";
import * as ew from "./elementwise.ts";
import { reduceAxis, reduceAxisRef } from "./reduce.ts";
import * as rows from "./rows.ts";
import { transpose, transposeRef } from "./transpose.ts";

/** One kernel's outcome. */
export interface SelfCheckResult {
  /** Kernel name. */
  kernel: string;
  /** Largest |gpu − ref| / max(|ref|, 1). */
  maxErr: number;
  /** `maxErr` is within the kernel's tolerance. */
  ok: boolean;
}

/** Runs a few kernels on seeded random data and compares them with float64 references. */
export async function selfCheck(gpu: Gpu, tol = 1e-4): Promise<SelfCheckResult[]> {
  let s = 12345;
  const rnd = () => ((s = (Math.imul(s, 1103515245) + 12345) >>> 0) / 2 ** 32) * 4 - 2;
  const R = 33, C = 70;
  const xv = Float32Array.from({ length: R * C }, rnd);
  const tv = Int32Array.from({ length: R }, (_, i) => (i * 7) % C);
  const x = Tensor.from(gpu, [R, C], xv, "f32", "selfcheck x");
  const t = Tensor.from(gpu, [R], tv, "i32", "selfcheck targets");
  const relu = Tensor.empty(gpu, [R, C]), sm = Tensor.empty(gpu, [R, C]), tr = Tensor.empty(gpu, [C, R]);
  const loss = Tensor.empty(gpu, [R]), lse = Tensor.empty(gpu, [R]), sum = Tensor.empty(gpu, [C]);
  const red = await reduceAxis(gpu, x, 0, "sum", sum);
  const rec = new Recorder(gpu).runAll([
    await ew.relu(gpu, x, relu),
    await rows.softmax(gpu, x, sm),
    await rows.crossEntropy(gpu, x, t, loss, lse),
    await transpose(gpu, x, tr),
    ...red.dispatches,
  ]);
  rec.submit();
  await sync(gpu);
  const cmp = async (kernel: string, tensor: Tensor, ref: ArrayLike<number>): Promise<SelfCheckResult> => {
    const got = await tensor.read();
    let maxErr = 0;
    for (let i = 0; i < ref.length; i++) {
      const e = Math.abs(got[i] - ref[i]) / Math.max(Math.abs(ref[i]), 1);
      maxErr = Number.isNaN(e) ? Infinity : Math.max(maxErr, e);
    }
    return { kernel, maxErr, ok: maxErr <= tol };
  };
  const results = [
    await cmp("relu", relu, Float64Array.from(xv, (v) => Math.max(v, 0))),
    await cmp("softmax", sm, rows.rowsRef.softmax(xv, R, C)),
    await cmp("cross_entropy", loss, rows.rowsRef.crossEntropy(xv, tv, R, C).loss),
    await cmp("transpose", tr, transposeRef(xv, 1, R, C)),
    await cmp("reduce_sum", sum, reduceAxisRef(xv, [R, C], 0, "sum")),
  ];
  for (const tt of [x, t, relu, sm, tr, loss, lse, sum]) tt.dispose();
  for (const tt of red.owned) tt.dispose();
  return results;
}
