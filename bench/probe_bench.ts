/**
 * `deno bench` for the linear probe's fit (`plrc eval --protocol linear`): the GPU fit against its float64
 * host reference on the same rows, at cpu-tiny's 32 C4 features and at gpu-small's 512, 20 iterations each
 * (an evaluation runs 300). The step size is given so that both time only the iterations. Pixels follow
 * PLRC_BENCH_SCALE: 4096 by default (CPU-adapter friendly), the evaluation's 32768 with `gpu`.
 * Measured 2026-11-27 on the 2-core lavapipe machine (default scale, side by side in one run): GPU 146 ms vs
 * host 81 ms at 32 features (the GPU 1.79× slower), 1.4 s vs 1.4 s at 512 (1.07× faster). On the H200 the
 * GPU fit made a whole 512-feature evaluation 140–175 → 14–21 s (`bench/transfer/2026-11-27-h200-full/`).
 */
import { getGpu } from "../src/gpu/mod.ts";
import { fitSoftmax, fitSoftmaxRef } from "../src/eval/mod.ts";

const gpu = await getGpu();
const N = Deno.env.get("PLRC_BENCH_SCALE") === "gpu" ? 32768 : 4096, K = 7, iterations = 20;
for (const C of [32, 512]) {
  const z = Float64Array.from({ length: N * C }, () => Math.random() - 0.5);
  const y = Int32Array.from({ length: N }, () => Math.floor(Math.random() * K));
  const o = { iterations, lr: 0.05 };
  Deno.bench({
    name: `probe fit GPU, ${N} px × ${C}`,
    group: `probe ${C}`,
    baseline: true,
    fn: async () => {
      await fitSoftmax(gpu, z, y, C, K, o);
    },
  });
  Deno.bench({
    name: `probe fit host float64, ${N} px × ${C}`,
    group: `probe ${C}`,
    fn: () => {
      fitSoftmaxRef(z, y, C, K, o);
    },
  });
}
