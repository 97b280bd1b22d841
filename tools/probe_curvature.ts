/**
 * Why the linear probe takes its step from the data: for a random backbone of a preset, the curvature bound
 * of the probe's objective on its C4 features (λmax by power iteration), and the probe fitted with the old
 * fixed step (0.5, no momentum) beside the default (1/L, Nesterov 0.9): training loss and held-out mIoU.
 * usage: deno run -A tools/probe_curvature.ts [preset (gpu-small)] [seed (1)]
 * Measured on lavapipe (48 training scenes, every 6th pixel; 24 test scenes; seed 1), 2026-11-27:
 * gpu-small λmax 82.1: fixed 0.5 loss 0.702 / 0.691 / 0.662 at 100 / 200 / 300 iterations (it oscillates;
 * a per-iteration trace rose 0.642 → 0.747 between 150 and 200), mIoU 13.5%; default 0.403 / 0.361 / 0.338,
 * mIoU 17.7%. cpu-tiny λmax 10.1: both converge (0.546 vs 0.536), mIoU 13.4% vs 13.9%.
 */
import { getGpu } from "../src/gpu/mod.ts";
import {
  downsampleLabels,
  fitSoftmaxRef,
  frozenBackbone,
  meanIoU,
  probePredictor,
  probeStepSize,
  sceneSet,
  standardise,
  upsampleBilinear,
} from "../src/eval/mod.ts";
import { initResNet, ParamStore, resnetSpecs } from "../src/models/mod.ts";
import { dataConfigOf, resnetConfigOf, resolveConfig } from "../src/train/mod.ts";

const preset = Deno.args[0] ?? "gpu-small", seed = Number(Deno.args[1] ?? 1);
const cfg = resolveConfig({ sets: [`preset=${preset}`, `seed=${seed}`] });
const model = resnetConfigOf(cfg), gpu = await getGpu(), data = dataConfigOf(cfg);
const store = new ParamStore(resnetSpecs(model)).allocate(gpu);
initResNet(store, model, cfg.seed);
const R = 128, nTrain = 48, nTest = 24;
const scenes = sceneSet(cfg.data.scenes.seed + 1_000_003, R, cfg.data.scenes.classes, 0, nTrain + nTest).images;
const fb = await frozenBackbone(gpu, store, model, R, { mean: data.mean, std: data.std });
const { h, w, C } = fb, T = 4 * h, K = cfg.data.scenes.classes + 1;
/** Upsampled features and classes of every `stride`-th pixel of `images`. */
async function pixels(images: typeof scenes, stride: number) {
  const xs: number[] = [], ys: number[] = [];
  await fb.each(images.map((im) => im.image), (i, [rows]) => {
    const up = upsampleBilinear(rows, h, w, C, T), labels = downsampleLabels(images[i].classes, T);
    for (let p = 0; p < T * T; p++) {
      if ((i * T * T + p) % stride === 0) xs.push(...up.subarray(p * C, (p + 1) * C)), ys.push(labels[p]);
    }
  });
  return { x: Float64Array.from(xs), y: Int32Array.from(ys) };
}
const train = await pixels(scenes.slice(0, nTrain), 6), test = await pixels(scenes.slice(nTrain), 4);
fb.dispose();
const { z, mean, std } = standardise(train.x, C);
const l2 = 1e-4, N = train.y.length;
const step = probeStepSize(z, new Float64Array(N).fill(1 / N), C, l2);
const lambda = (1 / step - l2) / (0.5 * 1.1);
console.log(
  `${preset} seed ${seed}: ${N} pixels × ${C} features, ${K} classes; λmax ≈ ${lambda.toFixed(1)}, ` +
    `stable steps < 2/L = ${(4 / lambda).toFixed(4)}; default step ${step.toFixed(4)}`,
);
for (const [name, o] of [["fixed 0.5", { lr: 0.5, momentum: 0 }], ["default", {}]] as const) {
  const losses = [100, 200, 300].map((iterations) => fitSoftmaxRef(z, train.y, C, K, { ...o, iterations }));
  const pred = probePredictor(losses[2].W, mean, std, C, K)(test.x);
  console.log(
    `  ${name}: training loss at 100/200/300 iterations ${losses.map((l) => l.loss.toFixed(3)).join(" / ")}, ` +
      `held-out mIoU ${(100 * meanIoU(pred, test.y, K).miou).toFixed(1)}%`,
  );
}
