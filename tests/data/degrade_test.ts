/** Degraded region masks: untouched at 0, the asked noise fraction, the asked boundary shift, determinism. */
import assert from "node:assert/strict";
import { blockNoise, degradeLabels, shiftLabels, translateLabels } from "../../src/data/degrade.ts";
import { type LabelMap, labelMap } from "../../src/data/image.ts";
import { regionLabelMap } from "../../src/data/regions.ts";
import { SceneGenerator } from "../../src/data/scenes.ts";
import { ConfigError, resolveConfig } from "../../src/train/config/mod.ts";
import { scenesSource } from "../../src/data/sources.ts";
import { regionModeOf } from "../../src/train/config/mod.ts";
import { freshSeed, Rng } from "../util.ts";

const SEED = freshSeed();
const at = `(seed ${SEED})`;

/** 128×128 split into a 4×4 grid of 32-px regions (labels 1..16): 8-px blocks never straddle a boundary. */
const grid16 = (): LabelMap => regionLabelMap({ kind: "grid", grid: 4 }, 128, 128);

const changed = (a: LabelMap, b: LabelMap) => a.data.reduce((n, v, i) => n + (v !== b.data[i] ? 1 : 0), 0);

Deno.test("noise 0 and shift 0 leave the map bit-identical", () => {
  const m = grid16(), rng = new Rng(SEED);
  assert.deepEqual(degradeLabels(m, { noise: 0, block: 8, shift: 0 }, rng).data, m.data);
  assert.deepEqual(blockNoise(m, 0, 8, rng).map.data, m.data);
  assert.deepEqual(translateLabels(m, 0, 0).data, m.data);
});

Deno.test("block noise relabels round(f · blocks) whole blocks with other present labels", () => {
  const rng = new Rng(SEED);
  for (const f of [0.05, 0.1, 0.25, 0.5, 1]) {
    const m = grid16(), { map, blocks } = blockNoise(m, f, 8, rng);
    const nBlocks = 16 * 16, k = Math.round(f * nBlocks);
    assert.equal(blocks.length, k, `f ${f} ${at}`);
    // aligned blocks each hold one label, and the new label differs: exactly k/nBlocks of the pixels change
    assert.equal(changed(m, map) / (128 * 128), k / nBlocks, `f ${f} ${at}`);
    for (const b of blocks) {
      const x0 = (b % 16) * 8, y0 = Math.floor(b / 16) * 8, lab = map.data[y0 * 128 + x0];
      assert.notEqual(lab, m.data[y0 * 128 + x0]);
      assert.ok(lab >= 1 && lab <= 16);
      for (let y = y0; y < y0 + 8; y++) for (let x = x0; x < x0 + 8; x++) assert.equal(map.data[y * 128 + x], lab);
    }
  }
  // an unaligned map (scene instances, blocks of 5 px cut by the edge): at most f, and close to it
  const scene = new SceneGenerator(SEED, { size: 96 }).scene(0).instanceMap;
  const m = { ...scene, data: scene.data.map((v) => v + 1) };
  const frac = changed(m, blockNoise(m, 0.3, 5, rng).map) / m.data.length;
  assert.ok(frac <= 0.3 + 0.02 && frac >= 0.15, `changed ${frac} ${at}`);
  // a one-region map has no other label to swap in
  const one = labelMap(16, 16);
  one.data.fill(3);
  assert.deepEqual(blockNoise(one, 1, 4, rng).map.data, one.data);
});

Deno.test("shift moves every boundary by exactly the asked pixels, signs at random", () => {
  // a 20×20 square of label 2 at columns 20..39, rows 30..49 on background 1
  const m = labelMap(64, 64);
  for (let y = 0; y < 64; y++) {
    for (let x = 0; x < 64; x++) {
      m.data[y * 64 + x] = x >= 20 && x < 40 && y >= 30 && y < 50 ? 2 : 1;
    }
  }
  const bbox = (a: LabelMap) => {
    let x0 = 64, x1 = -1, y0 = 64, y1 = -1;
    for (let y = 0; y < 64; y++) {
      for (let x = 0; x < 64; x++) {
        if (a.data[y * 64 + x] === 2) {
          x0 = Math.min(x0, x), x1 = Math.max(x1, x), y0 = Math.min(y0, y), y1 = Math.max(y1, y);
        }
      }
    }
    return [x0, y0, x1, y1];
  };
  const rng = new Rng(SEED), signs = new Set<string>();
  for (let t = 0; t < 40; t++) {
    const s = 1 + rng.int(10), r = shiftLabels(m, s, rng);
    assert.equal(Math.abs(r.dx), s);
    assert.equal(Math.abs(r.dy), s);
    assert.deepEqual(bbox(r.map), [20 + r.dx, 30 + r.dy, 39 + r.dx, 49 + r.dy], `shift ${s} ${at}`);
    signs.add(`${Math.sign(r.dx)},${Math.sign(r.dy)}`);
  }
  assert.equal(signs.size, 4, `all four directions drawn ${at}`);
  // the border is replicated: shifting right by 3 copies column 0 into columns 0..3
  const g = grid16(), right = translateLabels(g, 3, 0);
  for (let x = 0; x <= 3; x++) assert.equal(right.data[x], g.data[0]);
  assert.equal(right.data[35], 2); // old boundary at 32 now at 35
  assert.equal(right.data[34], 1);
});

Deno.test("scenes with gt regions: instance masks + 1; degradation deterministic per image, off at 0", async () => {
  const o = { count: 4, size: 64, classes: 6, seed: 7 };
  const gt = scenesSource(o, { kind: "gt" });
  const s = new SceneGenerator(7, { size: 64, classes: 6 }).scene(2);
  const r = await gt.get(2);
  assert.deepEqual(r.regions!.data, s.instanceMap.data.map((v) => v + 1));
  // via the configuration: noise 0 / shift 0 is the plain mode; otherwise degraded, the same every read
  const cfg = (sets: string[]) => resolveConfig({ sets: ["data.regions.source=gt", ...sets] });
  assert.deepEqual(regionModeOf(cfg([])), { kind: "gt" });
  const mode = regionModeOf(cfg(["data.regions.noise=0.2", "data.regions.shift=3", "seed=11"]));
  assert.deepEqual(mode, { kind: "gt", degrade: { noise: 0.2, block: 8, shift: 3, seed: 11 } });
  const bad = scenesSource(o, mode);
  const a = await bad.get(2), b = await bad.get(2);
  assert.deepEqual(a.regions!.data, b.regions!.data);
  assert.ok(changed(a.regions!, r.regions!) > 0);
  // another data seed degrades differently
  const other = await scenesSource(o, regionModeOf(cfg(["data.regions.noise=0.2", "data.regions.shift=3"]))).get(2);
  assert.notDeepEqual(other.regions!.data, a.regions!.data);
  // grid regions degraded: the grid's label map, degraded; undegraded grid supplies no map (the default)
  assert.equal((await scenesSource(o, regionModeOf(resolveConfig({}))).get(0)).regions, undefined);
  const g = await scenesSource(o, regionModeOf(resolveConfig({ sets: ["data.regions.shift=2"] }))).get(0);
  const plain = regionLabelMap({ kind: "grid", grid: 4 }, 64, 64);
  // 16-px cells, boundaries at 16, 32, 48: a ±2 shift changes 2 columns at each of the 3 vertical boundaries
  // and 2 rows at each horizontal one (the image edge replicates, so changes nothing): 6·64 + 6·64 − 6·6
  assert.equal(changed(g.regions!, plain), 6 * 64 + 6 * 64 - 6 * 6);
});

Deno.test("config: noise, noiseBlock, shift out of range and gt without scenes are rejected by key", () => {
  const problems = (sets: string[]) => {
    try {
      resolveConfig({ sets });
    } catch (e) {
      assert.ok(e instanceof ConfigError);
      return e.problems.join("\n");
    }
    assert.fail(`accepted ${sets}`);
  };
  assert.match(problems(["data.regions.noise=1.5"]), /data\.regions\.noise: got 1\.5.*allowed: a number ≥ 0 and ≤ 1/);
  assert.match(problems(["data.regions.noise=-0.1"]), /data\.regions\.noise/);
  assert.match(problems(["data.regions.shift=-1"]), /data\.regions\.shift: got -1.*an integer ≥ 0 and ≤ 256/);
  assert.match(problems(["data.regions.shift=1.5"]), /data\.regions\.shift/);
  assert.match(problems(["data.regions.noiseBlock=0"]), /data\.regions\.noiseBlock/);
  assert.match(
    problems(["data.regions.source=gt", "data.source=/tmp/images"]),
    /data\.regions\.source: got "gt".*gt masks exist for the built-in scenes only/,
  );
  assert.match(problems(["data.regions.source=masks"]), /allowed: grid, fh, labelmaps, gt/);
  const ok = resolveConfig({ sets: ["data.regions.noise=1", "data.regions.shift=256", "data.regions.source=gt"] });
  assert.deepEqual([ok.data.regions.noise, ok.data.regions.shift, ok.data.regions.noiseBlock], [1, 256, 8]);
});
