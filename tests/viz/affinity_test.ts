/** Point-affinity math on hand-worked cases, the host point head against the GPU's, and the CLI's picture. */
import assert from "node:assert/strict";
import { decodePng } from "../../src/data/png.ts";
import { getGpu } from "../../src/gpu/device.ts";
import { Tensor } from "../../src/gpu/tensor.ts";
import { Recorder, sync } from "../../src/gpu/recorder.ts";
import { buildHeads } from "../../src/models/heads.ts";
import { createEncoderStore, headsConfig } from "../../src/models/encoder.ts";
import { loadEncoder, pointHeadWeights } from "../../src/eval/load.ts";
import { saveCheckpoint } from "../../src/train/checkpoint.ts";
import { configToYaml, deriveConfig, resolveConfig } from "../../src/train/config/mod.ts";
import { stepConfigOf } from "../../src/train/plan.ts";
import {
  affinityMap,
  bilinearSample,
  cosine,
  HEAT_STOPS,
  heatColor,
  mapViewPoint,
  normalizeRange,
  pickQueryCells,
  pointHeadHost,
} from "../../src/viz/affinity.ts";
import { AFFINITY_GAP } from "../../src/viz/pictures.ts";
import { assertClose, freshSeed, Rng } from "../util.ts";

const close = (a: number, e: number, what: string) => assert.ok(Math.abs(a - e) < 1e-12, `${what}: ${a} vs ${e}`);

Deno.test("bilinear sampling: cell centres exact, midpoints averaged, border replicated", () => {
  // 2×2 map, one channel: [[0, 1], [2, 3]]
  const m = [0, 1, 2, 3];
  const at = (u: number, v: number) => bilinearSample(m, 2, 2, 1, u, v)[0];
  close(at(0.5, 0.5), 0, "cell (0,0) centre");
  close(at(1.5, 1.5), 3, "cell (1,1) centre");
  close(at(1, 0.5), 0.5, "between cells (0,0) and (0,1)");
  close(at(1, 1), 1.5, "the middle of all four");
  close(at(0, 0), 0, "corner: border replicated");
  close(at(2, 1.5), 3, "right edge: border replicated");
  close(at(1.25, 0.5), 0.75, "three quarters of the way");
  // several channels are sampled with the same weights
  const two = bilinearSample([1, 10, 3, 30], 1, 2, 2, 1, 0.5);
  assert.deepEqual([...two], [2, 20]);
});

Deno.test("cosine and affinity maps: upsample the features, then compare", () => {
  close(cosine([1, 0], [1, 1]), 1 / Math.sqrt(2), "45°");
  close(cosine([1, 2], [-2, 1]), 0, "orthogonal");
  close(cosine([0, 0], [1, 1]), 0, "zero vector");
  // a 1×2 map [1,0] | [0,1] upsampled to 1×4: pixel centres at map u = 0.25, 0.75, 1.25, 1.75
  const a = affinityMap([1, 0], [1, 0, 0, 1], 1, 2, 2, 1, 4);
  const expect = [1, 0.75 / Math.sqrt(0.625), 0.25 / Math.sqrt(0.625), 0];
  assertClose(a, expect, { rtol: 0, atol: 1e-12 }, "affinity over 4 pixels");
  // interpolating the similarities instead would give 0.75 and 0.25 in the middle: the spec's order matters
  assert.ok(Math.abs(a[1] - 0.75) > 0.1);
});

Deno.test("heat colours: the stops at their places, linear between, clamped outside", () => {
  assert.deepEqual(heatColor(0), [...HEAT_STOPS[0]]);
  assert.deepEqual(heatColor(1), [...HEAT_STOPS[4]]);
  assert.deepEqual(heatColor(0.5), [...HEAT_STOPS[2]]);
  // halfway between stop 0 (0,0,4) and stop 1 (87,16,110)
  assert.deepEqual(heatColor(0.125), [44, 8, 57]);
  assert.deepEqual(heatColor(-3), [...HEAT_STOPS[0]]);
  assert.deepEqual(heatColor(7), [...HEAT_STOPS[4]]);
  assert.deepEqual(heatColor(NaN), [...HEAT_STOPS[0]]);
  const r = normalizeRange([2, 4, 3]);
  assert.deepEqual([...r.t, r.lo, r.hi], [0, 1, 0.5, 2, 4]);
  assert.deepEqual([...normalizeRange([5, 5]).t], [0, 0]);
});

Deno.test("view-to-view mapping through the crop boxes, flips included", () => {
  const v1 = { box: { i: 10, j: 20, h: 40, w: 40 }, flipped: false };
  const v2 = { box: { i: 0, j: 30, h: 80, w: 80 }, flipped: false };
  // view 1 pixel x 4 of 8 → source column 20 + 4·40/8 = 40 → view 2: (40 − 30)·8/80 = 1
  // y 2 → source row 10 + 2·40/8 = 20 → view 2: 20·8/80 = 2
  assert.deepEqual(mapViewPoint(4, 2, v1, v2, 8), { x: 1, y: 2, inside: true });
  assert.deepEqual(mapViewPoint(4, 2, v1, { ...v2, flipped: true }, 8), { x: 7, y: 2, inside: true });
  // a flipped view 1 reads source column 20 + (8 − 4)·40/8 = 40 as well at its centre; x 1 → 20 + 7·5 = 55
  assert.deepEqual(mapViewPoint(1, 2, { ...v1, flipped: true }, v2, 8), { x: 2.5, y: 2, inside: true });
  // source column 20 lies left of view 2 (which starts at 30)
  const out = mapViewPoint(0, 0, v1, v2, 8);
  assert.equal(out.inside, false);
  assert.equal(out.x, -1);
  // identity when both views are the same
  const seed = freshSeed(), rng = new Rng(seed);
  for (let t = 0; t < 50; t++) {
    const x = rng.uniform(0, 8), y = rng.uniform(0, 8), p = mapViewPoint(x, y, v1, v1, 8);
    assert.ok(Math.abs(p.x - x) < 1e-12 && Math.abs(p.y - y) < 1e-12 && p.inside, `seed ${seed}`);
  }
});

Deno.test("query cells: one per region, largest first, nearest the centroid; farthest points after that", () => {
  // 4×4: label 1 in the left half (8 cells), label 2 in the top right (4 cells), label 3 bottom right
  // except one unlabelled cell (3 cells)
  // deno-fmt-ignore
  const mask = [
    1, 1, 2, 2,
    1, 1, 2, 2,
    1, 1, 3, 3,
    1, 1, 3, 0,
  ];
  // label 1: centroid (row 1.5, col 0.5); cells 4, 5, 8, 9 tie at distance 0.5 → lowest index 4
  // label 2: centroid (0.5, 2.5): cells 2, 3, 6, 7 tie → 2; label 3: centroid (2.33, 2.33) → cell 10
  assert.deepEqual(pickQueryCells(mask, 4, 3), [4, 2, 10]);
  assert.deepEqual(pickQueryCells(mask, 4, 2), [4, 2]);
  // a fourth query: the cell whose nearest picked cell is farthest. Picked: 4 (r1,c0), 2 (r0,c2), 10 (r2,c2);
  // cell 12 (r3,c0) is 4 away (squared) from 4 and more from the others; every other cell is within 2
  assert.deepEqual(pickQueryCells(mask, 4, 4), [4, 2, 10, 12]);
  // only usable cells: the left column; label 1 then has cells 0, 4, 8, 12 → centroid row 1.5 → cell 4
  assert.deepEqual(pickQueryCells(mask, 4, 1, (c) => c % 4 === 0), [4]);
  // nothing usable: falls back to every cell
  assert.deepEqual(pickQueryCells(mask, 4, 1, () => false), [4]);
});

Deno.test("point head on the host: a hand-worked case, and the GPU's point head agrees", async () => {
  // x = [1, 2]; W1 = [[1, 0], [0, -1]], b1 = [0.5, 0.5] → pre [1.5, −1.5] → relu [1.5, 0]
  // W2 = [[2, 3]], b2 = [−1] → 2·1.5 − 1 = 2
  const r = pointHeadHost([1, 2], 1, [1, 0, 0, -1], [0.5, 0.5], [2, 3], [-1]);
  assert.deepEqual([r.dim, ...r.rows], [1, 2]);

  const gpu = await getGpu();
  const cfg = resolveConfig({ sets: ["data.resolution=64"] });
  const enc = stepConfigOf(cfg, deriveConfig(cfg, { datasetSize: 1 })).encoder;
  const store = createEncoderStore(gpu, enc, 3);
  const hc = headsConfig(enc), N = 6, seed = freshSeed();
  const x = new Rng(seed).normals(N * hc.inDim);
  const c5 = Tensor.from(gpu, [N, hc.inDim], x, "f32", "c5");
  const heads = await buildHeads(gpu, store, hc, c5, { rows: N, train: false, backward: false });
  new Recorder(gpu).runAll(heads.forward).submit();
  await sync(gpu);
  const y1 = (await heads.y1.read()) as Float32Array;
  const w = await pointHeadWeights(store);
  const host = pointHeadHost(x, N, w.w1, w.b1, w.w2, w.b2);
  assertClose(y1, host.rows, { rtol: 1e-4, atol: 1e-5 }, `point head GPU vs host (seed ${seed})`);
  heads.dispose();
  c5.dispose();
});

Deno.test("loadEncoder reads a checkpoint's store back (backbone and point head)", async () => {
  const gpu = await getGpu();
  const cfg = resolveConfig({ sets: ["data.resolution=64", "seed=5"] });
  const enc = stepConfigOf(cfg, deriveConfig(cfg, { datasetSize: 1 })).encoder;
  const online = createEncoderStore(gpu, enc, 11), momentum = createEncoderStore(gpu, enc, 12);
  const dir = await Deno.makeTempDir();
  try {
    const path = `${dir}/c.safetensors`;
    await saveCheckpoint(path, { stores: { online, momentum }, tensors: {}, meta: { config: configToYaml(cfg) } });
    for (const [which, ref] of [["online", online], ["momentum", momentum]] as const) {
      const got = await loadEncoder(gpu, path, { store: which });
      assert.equal(got.cfg.seed, 5);
      for (const name of ["point_head.2.weight", "backbone.conv1.weight", "backbone.bn1.running_var"]) {
        assert.deepEqual(await got.store.get(name), await ref.get(name), `${which} ${name}`);
      }
    }
    await assert.rejects(() => loadEncoder(gpu, `${dir}/none.safetensors`), /cannot use --ckpt/);
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("plrc visualize affinity --ckpt random writes a PNG of (1 + N) panels", async () => {
  const out = await Deno.makeTempFile({ suffix: ".png" });
  const cli = new URL("../../cli.ts", import.meta.url).pathname;
  const run = (args: string[]) =>
    new Deno.Command(Deno.execPath(), { args: ["run", "-A", cli, "visualize", "affinity", ...args] }).output();
  try {
    const r = await run(["--ckpt", "random", "--points", "3", "--scale", "2", "--level", "c4", "--out", out]);
    const text = new TextDecoder().decode(r.stdout);
    assert.equal(r.code, 0, new TextDecoder().decode(r.stderr));
    const png = decodePng(await Deno.readFile(out));
    const R = 64, k = 2, N = 3;
    assert.equal(png.width, (1 + N) * R * k + N * AFFINITY_GAP);
    assert.equal(png.height, R * k);
    assert.equal(text.match(/query \d at/g)?.length, N, text);
    assert.match(text, /c4 features 4×4×/);
    const bad = await run(["--ckpt", "random", "--level", "c3", "--out", out]);
    assert.equal(bad.code, 2);
    assert.match(new TextDecoder().decode(bad.stderr), /--level must be point, c4 or c5/);
  } finally {
    await Deno.remove(out);
  }
});
