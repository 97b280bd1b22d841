/**
 * Shrinks the run folders of a `plrc compare` output to what its evaluations read, so that the runs of a
 * comparison pre-trained on one machine can be evaluated on another (the GPU machine receives at most
 * 64 MiB): each run keeps `checkpoints/last.safetensors` with only the online backbone's parameters and BN
 * statistics and the checkpoint's metadata (its configuration); older checkpoints are removed. A slimmed
 * checkpoint evaluates exactly as the full one (`plrc eval` reads nothing else of it), but cannot resume.
 *
 * usage: deno run -A tools/slim_runs.ts COMPARE_OUT
 */
import { readSafetensors, type StInput, toFloat32, writeSafetensors } from "../src/io/mod.ts";
import { BACKBONE_PREFIX } from "../src/models/mod.ts";

const KEEP = new RegExp(`^(params|stats)/online/${BACKBONE_PREFIX.replace(".", "\\.")}`);

/** Rewrites one checkpoint in place with the tensors `plrc eval` reads; returns the bytes before and after. */
export async function slimCheckpoint(path: string): Promise<[number, number]> {
  const before = (await Deno.stat(path)).size;
  const { tensors, metadata } = await readSafetensors(path);
  const kept: Record<string, StInput> = {};
  for (const [name, t] of tensors) {
    if (KEEP.test(name)) kept[name] = { dtype: "F32", shape: t.shape, data: toFloat32(t) };
  }
  if (!Object.keys(kept).length) throw new Error(`${path} holds no online backbone tensors`);
  await writeSafetensors(`${path}.tmp`, kept, metadata);
  await Deno.rename(`${path}.tmp`, path);
  return [before, (await Deno.stat(path)).size];
}

if (import.meta.main) {
  const out = Deno.args[0];
  if (!out) throw new Error("usage: deno run -A tools/slim_runs.ts COMPARE_OUT");
  let total = [0, 0];
  for await (const run of Deno.readDir(`${out}/runs`)) {
    const dir = `${out}/runs/${run.name}/checkpoints`;
    try {
      await Deno.stat(`${dir}/last.safetensors`);
    } catch {
      continue; // not finished
    }
    for await (const f of Deno.readDir(dir)) if (f.name !== "last.safetensors") await Deno.remove(`${dir}/${f.name}`);
    const [a, b] = await slimCheckpoint(`${dir}/last.safetensors`);
    total = [total[0] + a, total[1] + b];
  }
  console.log(`${out}: checkpoints ${(total[0] / 2 ** 20).toFixed(1)} MiB → ${(total[1] / 2 ** 20).toFixed(1)} MiB`);
}
