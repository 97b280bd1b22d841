import { elementwiseRef as ref } from "../../src/kernels/elementwise.ts";
import * as ew from "../../src/kernels/elementwise.ts";
import { Tensor } from "../../src/gpu/tensor.ts";
import { assertClose, freshSeed, gpu, GPU_TEST, poisoned, readF64, Rng, runOnce } from "../util.ts";

// Elementwise f32 results are a single rounding of the f64 value: 1 ulp-level tolerance.
const TOL = { rtol: 2e-7, atol: 1e-30 };

for (const n of [1, 7, 4096, 70001]) {
  Deno.test({
    name: `elementwise ops match float64 references (n=${n})`,
    ...GPU_TEST,
    async fn() {
      const g = await gpu();
      const seed = freshSeed(), rng = new Rng(seed);
      const av = rng.normals(n), bv = rng.normals(n), yv = rng.normals(n);
      const alpha = rng.normal();
      const a = Tensor.from(g, [n], av), b = Tensor.from(g, [n], bv);
      const cases: [
        string,
        (y: Tensor) => Promise<import("../../src/gpu/kernel.ts").Dispatch>,
        Float64Array,
        boolean,
      ][] = [
        ["add", (y) => ew.add(g, a, b, y), ref.add(av, bv), false],
        ["mul", (y) => ew.mul(g, a, b, y), ref.mul(av, bv), false],
        ["scale", (y) => ew.scale(g, a, alpha, y), ref.scale(av, Math.fround(alpha)), false],
        ["axpy", (y) => ew.axpy(g, alpha, a, y), ref.axpy(Math.fround(alpha), av, yv), true],
        ["relu", (y) => ew.relu(g, a, y), ref.relu(av), false],
        ["relu_backward", (y) => ew.reluBackward(g, a, b, y), ref.reluBackward(av, bv), false],
      ];
      for (const [name, build, expected, inPlace] of cases) {
        const y = inPlace ? Tensor.from(g, [n], yv) : poisoned(g, [n]);
        await runOnce(g, [await build(y)]);
        // axpy rounds alpha·a and the sum (or fuses them): two roundings of the terms' magnitudes
        const tol = inPlace
          ? { rtol: 0, atol: Float64Array.from(yv, (v, i) => 2 ** -23 * (Math.abs(v) + Math.abs(alpha * av[i]))) }
          : TOL;
        assertClose(await readF64(y), expected, tol, `${name} n=${n} seed=${seed}`);
        y.dispose();
      }
      a.dispose(), b.dispose();
    },
  });
}
