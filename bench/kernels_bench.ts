/**
 * `deno bench` for the foundation kernels: each iteration records 20 dispatches of one case in one
 * submission and waits once (a single wait costs ≥ 11 ms, so timing single dispatches would measure the
 * wait). `plrc bench kernels` reports the same cases with GPU timestamps.
 */
import { getGpu, Recorder, sync } from "../src/gpu/mod.ts";
import { kernelCases } from "../src/bench/mod.ts";

const gpu = await getGpu();
const scale = Number(Deno.env.get("PLRC_BENCH_SCALE") ?? 0.25);
const { cases } = await kernelCases(gpu, scale);

for (const c of cases) {
  Deno.bench({
    name: `${c.kernel} (${c.variant}) [${c.shape.join("×")}] ×20`,
    group: c.kernel,
    baseline: c.variant === "thread" || c.variant === "naive" || c.variant === "vec4" || c.variant === "rows",
    async fn() {
      const rec = new Recorder(gpu);
      for (let i = 0; i < 20; i++) rec.runAll(c.dispatches);
      rec.submit();
      await sync(gpu);
    },
  });
}
