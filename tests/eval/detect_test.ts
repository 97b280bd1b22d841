/**
 * The detect protocol: decoding on a hand-worked map, the detector's head gradients and C3 gradient against
 * float64 references (fresh data, poisoned gradients), the whole graph's gradient against the change of the
 * loss (backbone cut after layer2 included), COCO folders read back as the scenes they were written from,
 * a frozen backbone left bit for bit as it was, the frozen protocol's C3 centred per channel and divided by
 * one scale (against float64 statistics of the raw map) and so blind to C3's scale, every training image used, and a trained
 * detector beating the untrained one.
 */
import assert from "node:assert/strict";
import { Recorder } from "../../src/gpu/recorder.ts";
import { exportScenes, SceneGenerator } from "../../src/data/scenes.ts";
import { readCoco } from "../../src/data/coco.ts";
import { cocoImages, sceneImages } from "../../src/eval/datasets.ts";
import {
  buildDetector,
  c3Scale,
  c3Specs,
  decodeDetections,
  detectEval,
  detectHeadSpecs,
  detectorStore,
  type DetImage,
  measureC3Stats,
  trainDetector,
} from "../../src/eval/detect.ts";
import type { RgbImage } from "../../src/data/image.ts";
import { convDgradRef, convForwardRef, type ConvGeom, convWgradRef } from "../../src/kernels/gemm.ts";
import { centerNetLossRef, centerNetTargets, type ClassBox } from "../../src/losses/centernet.ts";
import { initResNet, type ResNetConfig, resnetSpecs } from "../../src/models/resnet.ts";
import { ParamStore } from "../../src/nn/params.ts";
import { assertClose, freshSeed, gpu, GPU_TEST, readF64, Rng, runOnce } from "../util.ts";

Deno.test("decoding: 3×3 peaks, top-k over classes, boxes from log sizes and offsets", () => {
  // 3×3 cells of 8 px, K = 2 (+4): class 1 peaks at cell (1, 1) with logit 2 and its neighbour (2, 1) has 1
  // (not a peak); class 0 peaks at (0, 0) with logit 0; everything else −5 (flat: ties count as peaks,
  // as with CenterNet's max-pool, but score σ(−5))
  const g = 3, K = 2, C = K + 4, rows = new Float64Array(g * g * C);
  for (let c = 0; c < g * g; c++) rows[c * C] = rows[c * C + 1] = -5;
  rows[4 * C + 1] = 2, rows[5 * C + 1] = 1, rows[0] = 0;
  // cell (1, 1): w = 2 cells, h = 1 cell, offset (0.5, 0.25) → centre (12, 10) px → box [4, 6, 20, 14]
  rows.set([Math.log(2), 0, 0.5, 0.25], 4 * C + K);
  const d = decodeDetections(rows, g, K, 24, 2, 7);
  assert.equal(d.length, 2);
  assert.deepEqual([d[0].classId, d[0].image], [1, 7]);
  assert.ok(Math.abs(d[0].score - 1 / (1 + Math.exp(-2))) < 1e-12);
  d[0].box.forEach((v, i) => assert.ok(Math.abs(v - [4, 6, 20, 14][i]) < 1e-9, `box ${d[0].box}`));
  // class 0 at (0, 0): zero regressions → 1×1 cell box centred on the cell's corner, clipped to the image
  assert.equal(d[1].classId, 0);
  assert.equal(d[1].score, 0.5);
  assert.deepEqual(d[1].box, [0, 0, 4, 4]);
  // with room for every peak: class 1 has only (1, 1) (every other cell touches it); class 0 has (0, 0) and
  // the five flat cells not touching it ((2,0), (2,1), (0,2), (1,2), (2,2)) → 7 peaks, the flat ones last
  const all = decodeDetections(rows, g, K, 24, 100);
  assert.equal(all.length, 7);
  assert.ok(all.slice(2).every((x) => x.classId === 0 && x.score === 1 / (1 + Math.exp(5))));
  assert.ok(all.every((x) => !(x.classId === 1 && x.score === 1 / (1 + Math.exp(-1)))));
});

const TINY: ResNetConfig = { depth: 18, width: 0.0625 };

/** A detector store with random backbone and head, and random boxes for B images of R px. */
async function tinySetup(seed: number, B: number, R: number, K: number, W: number) {
  const g = await gpu();
  const src = new ParamStore(resnetSpecs(TINY)).allocate(g);
  initResNet(src, TINY, seed);
  // non-zero last-BN γ so that every block's residual branch carries gradient
  const rng = new Rng(seed);
  for (const s of src.specs) {
    if (s.kind === "bn_weight") src.set(s.name, Float32Array.from({ length: s.shape[0] }, () => rng.uniform(0.5, 1.5)));
    if (s.kind === "bn_bias") src.set(s.name, Float32Array.from({ length: s.shape[0] }, () => rng.normal() * 0.1));
  }
  const store = await detectorStore(g, src, TINY, K, W, seed);
  const boxes: ClassBox[][] = Array.from({ length: B }, () =>
    Array.from({ length: 1 + rng.int(3) }, () => {
      const x = rng.uniform(0, R - 12), y = rng.uniform(0, R - 12);
      return { box: [x, y, x + rng.uniform(6, 12), y + rng.uniform(6, 12)], classId: rng.int(K) };
    }));
  const input = Float32Array.from({ length: B * R * R * 3 }, () => rng.normal());
  return { g, src, store, boxes, input, rng };
}

Deno.test({
  name: "detector head: output, head gradients and the gradient of C3 match float64 references",
  ...GPU_TEST,
  async fn() {
    const seed = freshSeed(), B = 2, R = 32, K = 3, W = 8;
    const { g, store, boxes, input } = await tinySetup(seed, B, R, K, W);
    const det = await buildDetector(g, store, TINY, { batch: B, resolution: R, K, headWidth: W, train: true });
    const gs = det.grid, C3 = det.net.c5Shape[3], N = B * gs * gs;
    const t = centerNetTargets(boxes, gs, gs, 8, K);
    det.net.input.upload(input);
    det.loss!.upload(t);
    store.flat().grads.fill(NaN);
    det.net.dC5!.fill(NaN);
    // training graph without the SGD step (the last dispatch), so parameters stay put
    await runOnce(g, [...det.forward, ...det.train.slice(0, -1)]);
    const c3 = await readF64(det.net.c5);
    const v = async (n: string) => await readF64(store.value(`head.${n}`)); // HWIO, as the references take
    const gr = async (n: string) => await readF64(store.grad(`head.${n}`));
    const [wc, bc, wo, bo] = await Promise.all(["conv.weight", "conv.bias", "out.weight", "out.bias"].map(v));
    const g3: ConvGeom = { nb: B, ih: gs, iw: gs, cin: C3, cout: W, kh: 3, kw: 3, stride: 1, pad: 1 };
    const g1: ConvGeom = { nb: B, ih: gs, iw: gs, cin: W, cout: K + 4, kh: 1, kw: 1, stride: 1, pad: 0 };
    const hidden = convForwardRef(c3, wc, g3).map((x, i) => Math.max(0, x + bc[i % W]));
    const out = convForwardRef(hidden, wo, g1).map((x, i) => x + bo[i % (K + 4)]);
    const tol = { rtol: 1e-3, atol: 1e-5 };
    assertClose(await readF64(det.out), out, tol, `seed ${seed}: head output`);
    const ref = centerNetLossRef(out, t, K);
    assertClose(await readF64(det.loss!.loss), [ref.loss], tol, `seed ${seed}: loss`);
    const colSum = (m: Float64Array, c: number) => {
      const s = new Float64Array(c);
      m.forEach((x, i) => s[i % c] += x);
      return s;
    };
    const dPre = convDgradRef(ref.grad, wo, g1).map((x, i) => (hidden[i] > 0 ? x : 0));
    assertClose(await gr("out.weight"), convWgradRef(hidden, ref.grad, g1), tol, `seed ${seed}: d out.weight`);
    assertClose(await gr("out.bias"), colSum(ref.grad, K + 4), tol, `seed ${seed}: d out.bias`);
    assertClose(await gr("conv.weight"), convWgradRef(c3, dPre, g3), tol, `seed ${seed}: d conv.weight`);
    assertClose(await gr("conv.bias"), colSum(dPre, W), tol, `seed ${seed}: d conv.bias`);
    assertClose(await readF64(det.net.dC5!), convDgradRef(dPre, wc, g3), tol, `seed ${seed}: d C3`);
    assert.equal(N * (K + 4), out.length);
    // every backbone parameter up to layer2 got a (finite) gradient: the poison is gone
    for (const s of c3Specs(TINY, "backbone.")) {
      if (s.kind === "running_mean" || s.kind === "running_var") continue;
      const d = await readF64(store.grad(s.name));
      assert.ok(d.every(Number.isFinite), `seed ${seed}: ${s.name} gradient not written`);
    }
    det.dispose();
  },
});

Deno.test({
  name: "the detector's gradient (head and backbone up to C3) predicts the change of its loss",
  ...GPU_TEST,
  async fn() {
    const seed = freshSeed(), B = 4, R = 32, K = 2, W = 8;
    const { g, store, boxes, input } = await tinySetup(seed, B, R, K, W);
    const sgd = { lr: 0, momentum: 0, weightDecay: 0 };
    const det = await buildDetector(g, store, TINY, { batch: B, resolution: R, K, headWidth: W, train: true, sgd });
    det.net.input.upload(input);
    det.loss!.upload(centerNetTargets(boxes, det.grid, det.grid, 8, K));
    const lossOnly = [...det.forward, ...det.loss!.dispatches];
    const loss = async () => {
      new Recorder(g).runAll(lossOnly).submit();
      return (await det.loss!.loss.read())[0];
    };
    const l0 = await loss();
    await runOnce(g, det.train.slice(0, -1)); // gradients at θ
    const grads = await readF64(store.flat().grads);
    const g2 = grads.reduce((s, x) => s + x * x, 0);
    // θ − ηg, then θ + ηg through the SGD kernel (momentum 0: one step of exactly −lr·g)
    const eta = 1e-3 / Math.sqrt(g2);
    det.sgd!.setParams({ lr: eta });
    await runOnce(g, [det.sgd!]);
    const lMinus = await loss();
    det.sgd!.setParams({ lr: -2 * eta });
    await runOnce(g, [det.sgd!]);
    const lPlus = await loss();
    const predicted = 2 * eta * g2, measured = lPlus - lMinus;
    assert.ok(g2 > 0 && Number.isFinite(l0));
    assert.ok(
      Math.abs(measured - predicted) < 0.05 * predicted,
      `seed ${seed}: loss ${l0}: L(θ+ηg) − L(θ−ηg) = ${measured}, 2η‖g‖² = ${predicted}`,
    );
    det.dispose();
  },
});

Deno.test("a COCO folder reads back as the scenes it was exported from (boxes, classes, instances)", async () => {
  const dir = await Deno.makeTempDir();
  try {
    const gen = new SceneGenerator(11, { size: 64, classes: 3 });
    const ex = await exportScenes(dir, gen, 3);
    const coco = await readCoco(ex.annotations);
    const fromCoco = await cocoImages(dir, coco, 64, 1, 2);
    const direct = sceneImages(gen, 1, 2);
    fromCoco.forEach((im, i) => {
      assert.deepEqual(im.image.data, direct[i].image.data);
      assert.deepEqual(im.boxes, direct[i].boxes);
      assert.deepEqual(im.classes.data, direct[i].classes.data);
      assert.deepEqual(im.classOf, direct[i].classOf);
    });
    // stretched to another size, boxes scale with the image
    const half = await cocoImages(dir, coco, 32, 1, 1);
    assert.equal(half[0].image.width, 32);
    half[0].boxes.forEach((b, j) => b.box.forEach((v, k) => assert.equal(v, direct[0].boxes[j].box[k] / 2)));
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test({
  name: "a detector fine-tuned on scenes beats the untrained one on held-out scenes",
  ...GPU_TEST,
  async fn() {
    const g = await gpu();
    const cfg: ResNetConfig = { depth: 18, width: 0.125 };
    const src = new ParamStore(resnetSpecs(cfg)).allocate(g);
    initResNet(src, cfg, 1);
    const gen = new SceneGenerator(5, { size: 64, classes: 2 });
    const toDet = (first: number, n: number): DetImage[] => sceneImages(gen, first, n);
    const train = toDet(0, 64), test = toDet(64, 32);
    const o = { classes: 2, mean: [0.5, 0.5, 0.5], std: [0.25, 0.25, 0.25], batch: 8, lr: 0.02, seed: 2 };
    const untrained = await detectEval(g, src, cfg, train, test, { ...o, epochs: 0 });
    const trained = await detectEval(g, src, cfg, train, test, { ...o, epochs: 12 });
    assert.ok(trained.loss.last < trained.loss.first, `loss ${trained.loss.first} → ${trained.loss.last}`);
    assert.ok(
      trained.ap50 > untrained.ap50 + 0.1,
      `AP50 trained ${trained.ap50} vs untrained ${untrained.ap50} (AP ${trained.ap} vs ${untrained.ap})`,
    );
  },
});

Deno.test("plrc eval on a COCO folder: detect (JSON and table) and linear; --data DIR needs --ann", async () => {
  const cli = new URL("../../cli.ts", import.meta.url).pathname;
  const dir = await Deno.makeTempDir();
  const run = (...args: string[]) =>
    new Deno.Command(Deno.execPath(), { args: ["run", "-A", cli, "eval", "--ckpt", "random", ...args] }).output();
  const text = (b: Uint8Array) => new TextDecoder().decode(b);
  try {
    const ex = await exportScenes(dir, new SceneGenerator(3, { size: 64, classes: 3 }), 12);
    const data = ["--data", dir, "--ann", ex.annotations, "--train", "8", "--test", "4", "--resolution", "64"];
    const det = await run("--protocol", "detect", ...data, "--epochs", "1", "--batch", "4", "--json");
    assert.equal(det.code, 0, text(det.stderr));
    const r = JSON.parse(text(det.stdout).trim().split("\n").at(-1)!);
    assert.equal(r.protocol, "detect");
    assert.equal(r.data, dir);
    assert.ok(r.ap >= 0 && r.ap <= 1 && r.ap50 >= r.ap && r.ap50 <= 1, JSON.stringify(r));
    assert.deepEqual(r.perClass.map((c: { name: string }) => c.name), ["disc", "square", "triangle"]);
    assert.equal(r.settings.epochs, 1);
    assert.equal(r.steps, 2);
    assert.equal(r.trainImages, 8);
    assert.ok(r.testObjects > 0 && r.seconds > 0);
    const table = await run("--protocol", "detect", ...data, "--epochs", "1", "--batch", "4");
    assert.equal(table.code, 0, text(table.stderr));
    assert.match(text(table.stdout), /AP +\d+\.\d ± \d+\.\d +AP50 +\d+\.\d ± \d+\.\d/);
    assert.ok(r.ap_se >= 0 && r.ap50_se > 0 && r.ap50_se < 1, JSON.stringify(r));
    assert.deepEqual([r.train_images, r.test_images], [8, 4]);
    const frozen = await run("--protocol", "detect", ...data, "--epochs", "1", "--batch", "4", "--freeze-backbone");
    assert.equal(frozen.code, 0, text(frozen.stderr));
    assert.match(text(frozen.stdout), /head trained on the frozen backbone on 8 images/);
    assert.match(text(table.stdout), /triangle/);
    const lin = await run("--protocol", "linear", ...data, "--json");
    assert.equal(lin.code, 0, text(lin.stderr));
    assert.ok(JSON.parse(text(lin.stdout).trim().split("\n").at(-1)!).miou >= 0);
    assert.equal((await run("--protocol", "detect", "--data", dir)).code, 2);
    assert.equal((await run("--protocol", "detect", ...data.slice(0, 4), "--train", "10", "--test", "10")).code, 2);
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test({
  name: "--freeze-backbone: backbone parameters and BN statistics stay bit for bit, the head and its loss move",
  ...GPU_TEST,
  async fn() {
    const seed = freshSeed(), R = 32, K = 2, W = 8, B = 4;
    const g = await gpu();
    const src = new ParamStore(resnetSpecs(TINY)).allocate(g);
    initResNet(src, TINY, seed);
    // running statistics away from 0/1, so that eval-mode BN and any update of them would show
    const rng = new Rng(seed);
    for (const s of src.specs) {
      if (s.kind === "running_mean") src.set(s.name, Float32Array.from({ length: s.shape[0] }, () => rng.normal()));
      if (s.kind === "running_var") src.set(s.name, Float32Array.from({ length: s.shape[0] }, () => rng.uniform(1, 3)));
    }
    const train = sceneImages(new SceneGenerator(seed, { size: R, classes: K }), 0, 6); // 6: not a multiple of B
    const o = { classes: K, mean: [0.5, 0.5, 0.5], std: [0.25, 0.25, 0.25], batch: B, headWidth: W, seed };
    const read = async (store: ParamStore, names: string[]) =>
      await Promise.all(names.map(async (n) => new Uint32Array((await store.get(n)).buffer)));
    const backboneNames = c3Specs(TINY, "backbone.").map((s) => s.name);
    const headNames = detectHeadSpecs(0, W, K).map((s) => s.name);
    for (const freezeBackbone of [true, false]) {
      const store = await detectorStore(g, src, TINY, K, W, seed);
      const [bb0, head0] = [await read(store, backboneNames), await read(store, headNames)];
      const t = await trainDetector(g, store, TINY, train, { ...o, epochs: 3, lr: 0.05, freezeBackbone });
      const [bb1, head1] = [await read(store, backboneNames), await read(store, headNames)];
      const same = (a: Uint32Array, b: Uint32Array) => a.every((v, i) => v === b[i]);
      const changed = backboneNames.filter((_, i) => !same(bb0[i], bb1[i]));
      if (freezeBackbone) assert.deepEqual(changed, [], `seed ${seed}: frozen backbone entries changed`);
      // the control: fine-tuning moves weights and running statistics alike
      else {
        assert.ok(changed.some((n) => n.endsWith(".weight")), `seed ${seed}: fine-tuning left the weights`);
        assert.ok(changed.some((n) => n.endsWith(".running_mean")), `seed ${seed}: fine-tuning left the stats`);
      }
      assert.ok(headNames.every((_, i) => !same(head0[i], head1[i])), `seed ${seed}: every head entry moves`);
      const first = t.losses[0], last = t.losses[2];
      assert.equal(first.length, 2, "⌈6/4⌉ steps an epoch");
      const mean = (v: number[]) => v.reduce((a, x) => a + x, 0) / v.length;
      assert.ok(mean(first) !== mean(last) && last.every(Number.isFinite), `seed ${seed}: loss ${first} → ${last}`);
      assert.equal(t.used.size, 6, "every training image went into a batch");
    }
    // the frozen graph binds no backbone backward: fewer dispatches per step
    const store = await detectorStore(g, src, TINY, K, W, seed);
    const o2 = { batch: B, resolution: R, K, headWidth: W, train: true };
    const frozen = await buildDetector(g, store, TINY, { ...o2, freezeBackbone: true });
    const full = await buildDetector(g, store, TINY, o2);
    assert.equal(frozen.net.backward.length, 0);
    assert.equal(frozen.net.dC5, null);
    assert.ok(frozen.train.length + full.net.backward.length < full.train.length);
    frozen.dispose(), full.dispose();
  },
});

Deno.test({
  name: "detect trains on exactly --train N images (N not a multiple of the batch) and reports both counts",
  ...GPU_TEST,
  async fn() {
    const g = await gpu(), R = 32, K = 2;
    const src = new ParamStore(resnetSpecs(TINY)).allocate(g);
    initResNet(src, TINY, 3);
    const gen = new SceneGenerator(4, { size: R, classes: K });
    const o = { classes: K, mean: [0.5, 0.5, 0.5], std: [0.25, 0.25, 0.25], batch: 4, headWidth: 8, epochs: 1 };
    // one epoch of 7 images in batches of 4: ⌊7/4⌋ batches would leave 3 of them out
    const r = await detectEval(g, src, TINY, sceneImages(gen, 0, 7), sceneImages(gen, 7, 5), o);
    assert.equal(r.train_images, 7);
    assert.equal(r.test_images, 5);
    assert.equal(r.steps, 2);
    assert.ok(r.ap_se >= 0 && r.ap50_se >= 0 && Number.isFinite(r.ap_se));
    const frozen = await detectEval(g, src, TINY, sceneImages(gen, 0, 3), sceneImages(gen, 7, 5), {
      ...o,
      freezeBackbone: true,
    });
    assert.equal(frozen.train_images, 3, "fewer images than the batch: each used");
    assert.equal(frozen.settings.freezeBackbone, true);
  },
});

/** A random backbone with running statistics and BN affines away from 0/1 (so eval-mode BN shows). */
function randomBackbone(g: Awaited<ReturnType<typeof gpu>>, seed: number): ParamStore {
  const src = new ParamStore(resnetSpecs(TINY)).allocate(g);
  initResNet(src, TINY, seed);
  const rng = new Rng(seed), n = (s: { shape: number[] }) => s.shape[0];
  for (const s of src.specs) {
    if (s.kind === "running_mean") src.set(s.name, Float32Array.from({ length: n(s) }, () => rng.normal()));
    if (s.kind === "running_var") src.set(s.name, Float32Array.from({ length: n(s) }, () => rng.uniform(1, 3)));
    if (s.kind === "bn_weight") src.set(s.name, Float32Array.from({ length: n(s) }, () => rng.uniform(0.5, 1.5)));
    if (s.kind === "bn_bias") src.set(s.name, Float32Array.from({ length: n(s) }, () => rng.normal() * 0.1));
  }
  return src;
}

/** The frozen detector's graph with C3 normalised by statistics measured on `images`. */
async function normalisedDetector(store: ParamStore, images: RgbImage[], B: number, K: number, W: number) {
  const g = await gpu(), R = images[0].width, mean = [0.5, 0.5, 0.5], std = [0.25, 0.25, 0.25];
  const o = { batch: B, resolution: R, K, headWidth: W, train: true, freezeBackbone: true, normalise: true };
  const det = await buildDetector(g, store, TINY, o);
  const stats = await measureC3Stats(g, det, images, mean, std);
  det.setC3Stats(stats);
  return { det, stats, mean, std };
}

Deno.test({
  name: "--freeze-backbone: C3 centred per channel and divided by the RMS of its channels' stds",
  ...GPU_TEST,
  async fn() {
    const seed = freshSeed(), R = 32, K = 2, W = 8, B = 4, n = 6; // 6: the last batch is padded
    const g = await gpu();
    const store = await detectorStore(g, randomBackbone(g, seed), TINY, K, W, seed);
    const images = sceneImages(new SceneGenerator(seed, { size: R, classes: K }), 0, n).map((d) => d.image);
    const { det, stats, mean, std } = await normalisedDetector(store, images, B, K, W);
    const C = det.net.c5Shape[3], per = det.grid * det.grid;
    // every training image's raw C3 and normalised C3, one batch at a time (padding dropped)
    const raw: number[] = [], z: number[] = [];
    for (let s = 0; s < n; s += B) {
      const chunk = images.slice(s, s + B), imgs = Array.from({ length: B }, (_, i) => chunk[i] ?? chunk[0]);
      const x = new Float32Array(B * R * R * 3);
      imgs.forEach((im, i) => im.data.forEach((v, j) => x[i * R * R * 3 + j] = (v / 255 - mean[j % 3]) / std[j % 3]));
      det.net.input.upload(x);
      det.features.fill(NaN);
      await runOnce(g, det.forward);
      raw.push(...(await readF64(det.net.c5)).subarray(0, chunk.length * per * C));
      z.push(...(await readF64(det.features)).subarray(0, chunk.length * per * C));
    }
    const rows = n * per;
    assert.equal(stats.count, rows);
    const m = new Float64Array(C), sd = new Float64Array(C);
    for (let r = 0; r < rows; r++) for (let c = 0; c < C; c++) m[c] += raw[r * C + c] / rows;
    for (let r = 0; r < rows; r++) for (let c = 0; c < C; c++) sd[c] += (raw[r * C + c] - m[c]) ** 2 / rows;
    sd.forEach((v, c) => sd[c] = Math.sqrt(v));
    assertClose(stats.mean, m, { rtol: 1e-9, atol: 1e-9 }, `seed ${seed}: measured mean`);
    assertClose(stats.std, sd, { rtol: 1e-9, atol: 1e-9 }, `seed ${seed}: measured std`);
    // one scale for every channel: the RMS of the stds, so the channels' variances average 1 and a
    // channel that varies little stays small (divided by its own std it would not)
    const scale = Math.sqrt(sd.reduce((a, v) => a + v * v, 0) / C);
    assert.equal(c3Scale(stats), Math.sqrt(stats.std.reduce((a, v) => a + v * v, 0) / C));
    const expected = Float64Array.from(raw, (v, i) => (v - m[i % C]) / scale);
    assertClose(z, expected, { rtol: 1e-4, atol: 1e-4 }, `seed ${seed}: normalised C3`);
    // per channel over the training images: mean 0, std sd/scale
    const zm = new Float64Array(C), zs = new Float64Array(C);
    for (let r = 0; r < rows; r++) for (let c = 0; c < C; c++) zm[c] += z[r * C + c] / rows;
    for (let r = 0; r < rows; r++) for (let c = 0; c < C; c++) zs[c] += (z[r * C + c] - zm[c]) ** 2 / rows;
    assert.ok(sd.filter((v) => v > 1e-3 * scale).length > C / 2, `seed ${seed}: most channels vary`);
    assertClose(zm, new Float64Array(C), { rtol: 0, atol: 1e-4 }, `seed ${seed}: normalised means`);
    assertClose(zs.map(Math.sqrt), sd.map((v) => v / scale), { rtol: 0, atol: 1e-4 }, `seed ${seed}: stds`);
    const meanSquare = zs.reduce((a, v) => a + v, 0) / C;
    assertClose([meanSquare], [1], { rtol: 1e-4, atol: 0 }, `seed ${seed}: the variances average 1`);
    det.dispose();
  },
});

Deno.test({
  name: "--freeze-backbone is blind to C3's scale: a backbone whose C3 is 10× gives the same head and AP",
  ...GPU_TEST,
  async fn() {
    const seed = freshSeed(), R = 32, K = 2, W = 8, B = 4, c = 10;
    const g = await gpu();
    const src = randomBackbone(g, seed);
    // C3 × c exactly: the stem's BN affine × c, and every later BN (input already × c, in eval mode) keeps
    // its slope and scales its offset: β and the running mean × c; convolutions, ReLU, max-pool and the
    // residual sums are positively homogeneous
    const scaled = new ParamStore(resnetSpecs(TINY)).allocate(g);
    for (const s of src.specs) {
      const v = await src.get(s.name), stem = s.name.startsWith("bn1.");
      const k = (stem && (s.kind === "bn_weight" || s.kind === "bn_bias")) ||
          (!stem && (s.kind === "bn_bias" || s.kind === "running_mean"))
        ? c
        : 1;
      scaled.set(s.name, v.map((x) => x * k));
    }
    const data = sceneImages(new SceneGenerator(seed, { size: R, classes: K }), 0, 12);
    const train = data.slice(0, 8), test = data.slice(8), images = train.map((d) => d.image);
    const rng = new Rng(seed + 1), input = Float32Array.from({ length: B * R * R * 3 }, () => rng.normal());
    // one forward of the untrained frozen head, raw and normalised, on each backbone
    const forward = async (backbone: ParamStore, normalise: boolean) => {
      const store = await detectorStore(g, backbone, TINY, K, W, seed);
      const det = normalise
        ? (await normalisedDetector(store, images, B, K, W)).det
        : await buildDetector(g, store, TINY, {
          batch: B,
          resolution: R,
          K,
          headWidth: W,
          train: true,
          freezeBackbone: true,
        });
      det.net.input.upload(input);
      await runOnce(g, det.forward);
      const r = { c3: await readF64(det.net.c5), out: await readF64(det.out) };
      det.dispose();
      return r;
    };
    const [a, b] = [await forward(src, false), await forward(scaled, false)];
    assertClose(b.c3, a.c3.map((x) => x * c), { rtol: 1e-4, atol: 1e-4 }, `seed ${seed}: C3 × ${c}`);
    const maxDiff = (u: Float64Array, v: Float64Array) => u.reduce((w, x, i) => Math.max(w, Math.abs(x - v[i])), 0);
    // the control: on raw C3 the head sees the scale
    assert.ok(maxDiff(a.out, b.out) > 1e-2, `seed ${seed}: raw heads differ by ${maxDiff(a.out, b.out)}`);
    const [sa, sb] = [await forward(src, true), await forward(scaled, true)];
    assertClose(sb.out, sa.out, { rtol: 1e-4, atol: 1e-4 }, `seed ${seed}: normalised heads`);
    // and so the whole protocol: training losses and AP as good as equal
    const o = { classes: K, mean: [0.5, 0.5, 0.5], std: [0.25, 0.25, 0.25], batch: B, headWidth: W, seed };
    const run = (backbone: ParamStore) =>
      detectEval(g, backbone, TINY, train, test, { ...o, epochs: 3, lr: 0.05, freezeBackbone: true });
    const [ra, rb] = [await run(src), await run(scaled)];
    const tol = { rtol: 1e-3, atol: 1e-4 };
    assertClose([rb.loss.first, rb.loss.last], [ra.loss.first, ra.loss.last], tol, `seed ${seed}: losses`);
    assert.ok(
      Math.abs(ra.ap - rb.ap) < 0.01 && Math.abs(ra.ap50 - rb.ap50) < 0.01,
      `seed ${seed}: AP ${ra.ap} vs ${rb.ap}`,
    );
    assert.ok(!ra.diverged && ra.loss.last < ra.loss.first, `seed ${seed}: ${JSON.stringify(ra.loss)}`);
    assert.equal(ra.retries, 0);
    assert.equal(ra.lrUsed, 0.05);
    // a learning rate far too large, with no retry: the record says the head diverged
    const frozen = { ...o, epochs: 3, freezeBackbone: true };
    const wild = await detectEval(g, src, TINY, train, test, { ...frozen, lr: 500, divergenceRetries: 0 });
    assert.ok(wild.diverged, `seed ${seed}: lr 500 gave ${JSON.stringify(wild.loss)}`);
    assert.equal(wild.retries, 0);
    // with retries: started again at ÷ 4 until it trains (0.05 trains, above; 50 ÷ 4⁶ ≈ 0.012)
    const high = await detectEval(g, src, TINY, train, test, { ...frozen, lr: 50, divergenceRetries: 6 });
    assert.ok(!high.diverged && high.retries >= 1, `seed ${seed}: ${JSON.stringify(high.loss)}, ${high.retries}`);
    assert.equal(high.lrUsed, 50 / 4 ** high.retries);
  },
});
