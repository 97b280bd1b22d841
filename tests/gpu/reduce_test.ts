import {
  reduceAxis,
  reduceAxisBackward,
  reduceAxisBackwardRef,
  reduceAxisRef,
  reducedShape,
} from "../../src/kernels/reduce.ts";
import { Tensor } from "../../src/gpu/tensor.ts";
import { assertClose, freshSeed, gpu, GPU_TEST, poisoned, readF64, Rng, runOnce } from "../util.ts";

// Sums of up to ~10^5 f32 terms against float64: relative to the sum of magnitudes, ~n·2^-24.
const CASES: { shape: number[]; axis: number; split?: boolean }[] = [
  { shape: [5, 7], axis: 0 },
  { shape: [5, 7], axis: 1 },
  { shape: [3, 33, 4], axis: 1 },
  { shape: [2, 3, 4, 5], axis: -1 },
  { shape: [100000], axis: 0 }, // one output over a long axis: two-pass split
  { shape: [4, 3000, 2], axis: 1 },
  { shape: [64, 1000], axis: 1, split: true }, // forced split
];

for (const { shape, axis, split } of CASES) {
  for (const kind of ["sum", "mean"] as const) {
    Deno.test({
      name: `reduce ${kind} over axis ${axis} of [${shape}]${split ? " (split)" : ""} matches float64`,
      ...GPU_TEST,
      async fn() {
        const g = await gpu();
        const seed = freshSeed(), rng = new Rng(seed);
        const n = shape.reduce((a, b) => a * b, 1);
        const xv = rng.normals(n);
        const x = Tensor.from(g, shape, xv);
        const out = reducedShape(shape, axis);
        const y = poisoned(g, out.length ? out : [1]);
        const op = await reduceAxis(g, x, axis, kind, y, split ?? "auto");
        await runOnce(g, op.dispatches);
        const len = shape.at(axis)!;
        assertClose(
          await readF64(y),
          reduceAxisRef(xv, shape, axis, kind),
          { rtol: 1e-5, atol: 1e-6 * Math.sqrt(len) },
          `${kind} seed=${seed}`,
        );
        // determinism: a second run gives the same bits
        const first = await y.read();
        await runOnce(g, op.dispatches);
        assertClose(await y.read(), first, { rtol: 0, atol: 0 }, "repeat run differs");

        const dyv = rng.normals(y.numel);
        const dy = Tensor.from(g, y.shape, dyv), dx = poisoned(g, shape);
        await runOnce(g, [await reduceAxisBackward(g, dy, shape, axis, kind, dx)]);
        assertClose(
          await readF64(dx),
          reduceAxisBackwardRef(dyv, shape, axis, kind),
          { rtol: 1e-6, atol: 0 },
          `${kind} backward seed=${seed}`,
        );
        for (const t of [x, y, dy, dx]) t.dispose();
        for (const t of op.owned) t.dispose();
      },
    });
  }
}
