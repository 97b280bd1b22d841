/**
 * The assembled step learns: on a fixed batch of built-in scenes, 30 steps of SGD lower the point-level
 * loss clearly and end with a distillation loss below that of the same 30 steps with a vanishing
 * learning rate (the control: same queue filling, same EMA and centre, same teacher at the schedule's
 * starting temperature), whose point loss stays where it was. Losses come back through the
 * trainer's lagged metrics ring, as in a real run.
 */
import assert from "node:assert/strict";
import { makeBatch } from "../../src/data/batch.ts";
import { dataConfigOf, deriveConfig, resolveConfig } from "../../src/train/config.ts";
import { stepConfigOf } from "../../src/train/plan.ts";
import { scenesSource } from "../../src/train/sources.ts";
import { PlrcStep } from "../../src/train/step.ts";
import { gpu, GPU_TEST } from "../util.ts";

const STEPS = 30, WINDOW = 6;

async function losses(lr: number): Promise<{ point: number[]; distill: number[] }> {
  const g = await gpu();
  // the release's bottleneck of 256: cpu-tiny's 512 moves the distillation term too slowly to show learning
  // against the control within 30 steps
  const cfg = resolveConfig({ preset: "cpu-tiny", sets: ["model.bottleneck=256"] });
  const src = scenesSource({ count: 8, size: cfg.data.scenes.size, classes: 6, seed: 3 });
  const sc = stepConfigOf(cfg, deriveConfig(cfg, { datasetSize: src.count }));
  const step = await PlrcStep.build(g, sc);
  const items = await Promise.all(
    Array.from({ length: sc.batch }, async (_, i) => ({ ...(await src.get(i)), key: i })),
  );
  step.upload(makeBatch(items, dataConfigOf(cfg)));
  const out = { point: [] as number[], distill: [] as number[] };
  const keep = (r: { values: Record<number, number> } | null) => {
    if (r) out.point.push(r.values[1]), out.distill.push(r.values[2]);
  };
  for (let i = 0; i < STEPS; i++) {
    keep(await step.run(i, { lr, ema: sc.ema, teacherTemperature: sc.temperatures.teacher }));
  }
  for (const r of await step.ring.drain()) keep(r);
  step.dispose();
  return out;
}

const mean = (a: number[]) => a.reduce((s, v) => s + v, 0) / a.length;
const change = (a: number[]) => (mean(a.slice(-WINDOW)) - mean(a.slice(0, WINDOW))) / mean(a.slice(0, WINDOW));

Deno.test({
  name: "a short run on scenes lowers the point and distillation losses; a vanishing learning rate does not",
  ...GPU_TEST,
  async fn() {
    const trained = await losses(0.05), control = await losses(1e-9);
    assert.equal(trained.point.length, STEPS);
    const msg = (what: string, l: { point: number[]; distill: number[] }) =>
      `${what}: point ${l.point.map((v) => v.toFixed(2)).join(" ")} | distill ${
        l.distill.map((v) => v.toFixed(2)).join(" ")
      }`;
    // the point term: down with learning, flat without it
    assert.ok(change(trained.point) < -0.05, msg("trained point loss did not fall by 5%", trained));
    assert.ok(Math.abs(change(control.point)) < 0.02, msg("control point loss moved", control));
    // the distillation target moves in both runs (the centre warms up from zero, which softens the teacher
    // and raises the loss), so learning shows against the control's last window, not against step 0; with the
    // bottleneck of 256 the teacher stays near uniform and the term moves slowly (measured: 4% below
    // the control after 30 steps, 5.54 against 5.78)
    const last = (a: number[]) => mean(a.slice(-WINDOW));
    assert.ok(
      last(trained.distill) < 0.98 * last(control.distill),
      `${msg("trained", trained)}\n${msg("control", control)}`,
    );
  },
});
