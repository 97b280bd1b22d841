/**
 * `docs/config.md`, generated from the schema and the presets: every key with its type, default, allowed values
 * and documentation, section by section, then the presets and the derived values.
 *
 * `deno run -A src/train/config/doc.ts docs/config.md` rewrites the documentation.
 *
 * @module
 */
import { describeRule } from "./resolve.ts";
import { CONFIG_PATHS, type ConfigPath, type KeySpec, PRESET_NAMES, PRESETS, SCHEMA, SECTION_DOCS } from "./schema.ts";

// ---------------------------------------------------------------- documentation

const WIDTH = 120;
const specOf = (p: ConfigPath): KeySpec<unknown> => SCHEMA[p] as KeySpec<unknown>;

/** Greedy paragraph fill to the formatter's line width. */
function fill(text: string, first = "", rest = ""): string {
  const lines: string[] = [];
  let line = first;
  let empty = true;
  for (const w of text.split(/\s+/).filter(Boolean)) {
    if (!empty && line.length + 1 + w.length > WIDTH) lines.push(line), line = rest + w;
    else line += (empty ? "" : " ") + w;
    empty = false;
  }
  lines.push(line);
  return lines.join("\n");
}

function table(head: string[], rows: string[][]): string {
  const esc = (s: string) => s.replace(/\|/g, "\\|");
  const all = [head, ...rows].map((r) => r.map(esc));
  const w = head.map((_, i) => Math.max(3, ...all.map((r) => r[i].length)));
  const line = (r: string[]) => `| ${r.map((c, i) => c.padEnd(w[i])).join(" | ")} |`;
  return [line(all[0]), `| ${w.map((n) => "-".repeat(n)).join(" | ")} |`, ...all.slice(1).map(line)].join("\n");
}

const code = (v: unknown) => "`" + (Array.isArray(v) ? `[${v.join(", ")}]` : String(v)) + "`";

/** `docs/config.md`, generated from the schema and the presets. */
export function generateConfigDoc(): string {
  const out: string[] = [];
  const p = (s: string) => out.push(fill(s), "");
  out.push("# Configuration", "");
  out.push(
    "<!-- Generated from src/train/config/ by `deno run -A src/train/config/doc.ts docs/config.md`; do not edit. -->",
    "",
  );
  p(
    "`plrc pretrain` reads its settings from a YAML file (`--config FILE.yaml`) and from `--set key.path=value` " +
      "options. This page lists every key with its default and its allowed values; it is generated from the " +
      "schema in `src/train/config/schema.ts`, which is also what validates configurations.",
  );
  out.push("## How a configuration is resolved", "");
  for (
    const item of [
      "Layers, last wins: the defaults below ← the preset ← the file ← each `--set` in order ← `--data DIR` " +
      "(which sets `data.source`).",
      "The preset is the last one named (the file's `preset:` key, then `--set preset=NAME`); without one it " +
      "is `cpu-tiny`, so `plrc pretrain` with no options is a short CPU run on the built-in scenes. The " +
      "preset is always applied first, whichever layer names it.",
      "Keys are camelCase and nested by section; in a file write sections as mappings (`optim: {lr: 0.1}`), " +
      "in `--set` join them with dots (`--set optim.lr=0.1`).",
      "`--set` values are YAML scalars (`0.1`, `1e-4`, `true`, `null`, `auto`) or flow sequences " +
      "(`[0.2, 1]`); keys whose value is a string take the text as is unless it is quoted.",
      "Unknown keys are rejected with the closest known key; wrong types and out-of-range values are " +
      "reported with the key path, the value and what is allowed. All problems are reported together and " +
      "the command exits with code 2.",
      "The resolved configuration, every key included, is saved as `config.yaml` in the run directory; " +
      "passing it back with `--config` gives the same configuration.",
    ]
  ) out.push(fill(item, "- ", "  "));
  out.push("");
  out.push("## Presets", "");
  out.push(table(["preset", "what it is"], PRESET_NAMES.map((n) => [code(n), PRESETS[n].doc])), "");
  p(
    "The keys each preset sets (the defaults are the paper's setting, so `paper` restates them, and runs its " +
      "batch as micro-batches); " +
      "a key not listed here has its default under every preset.",
  );
  const presetKeys = CONFIG_PATHS.filter((k) => PRESET_NAMES.some((n) => k in PRESETS[n].values));
  out.push(
    table(
      ["key", ...PRESET_NAMES],
      presetKeys.map((k) => [
        code(k),
        ...PRESET_NAMES.map((n) => code((PRESETS[n].values as Record<string, unknown>)[k] ?? SCHEMA[k].default)),
      ]),
    ),
    "",
  );
  out.push("## Keys", "");
  const groups = new Map<string, ConfigPath[]>();
  for (const k of CONFIG_PATHS) {
    const g = k.split(".").slice(0, -1).join(".");
    groups.set(g, [...(groups.get(g) ?? []), k]);
  }
  for (const [g, keys] of groups) {
    out.push(`### ${g ? code(g) + ": " : ""}${SECTION_DOCS[g] ?? g}`, "");
    out.push(
      table(
        ["key", "default", "allowed", "meaning"],
        keys.map((k) => [code(k), code(SCHEMA[k].default), describeRule(specOf(k)), SCHEMA[k].doc]),
      ),
      "",
    );
  }
  out.push("## Rules across keys", "");
  for (
    const item of [
      "`data.regions.labelmaps` is required when `data.regions.source` is `labelmaps`, and label maps need a " +
      "folder `data.source`.",
      "With grid regions, `data.regions.count` is at most `data.regions.grid`².",
      "`data.regions.source: gt` needs `data.source: scenes` (only the built-in scenes have ground-truth masks).",
      "`model.bnGroup` divides `train.batchSize`, or is at least the batch (then the whole batch is one group).",
      "`loss.image.queue` is at least `train.batchSize` (methods plrc and moco).",
      "With method plrc the three loss weights are not all 0.",
      "On the built-in scenes with automatic steps per epoch, `data.scenes.count` is at least `train.batchSize`.",
      "`eval.knnEvery` > 0 with a folder `data.source` needs `eval.knnAnn` (labelled images for the k-NN monitor).",
      "`device.f16Storage` is false (f16 activation storage is not built).",
    ]
  ) out.push(fill(item, "- ", "  "));
  out.push("");
  out.push("## Derived values", "");
  p("Computed in one place (`deriveConfig` and `schedules` in `src/train/config/derive.ts`), never configured:");
  for (
    const item of [
      "Mask and pair grid S = R/4 and C5 map side h = R/32, with R = `data.resolution` (56 and 7 at 224).",
      "Learning rate: `optim.lr` × `train.batchSize` / `optim.lrReferenceBatch` with `optim.lrScaling: " +
      "linear` (0.03 at batch 256, as released; 0.0009375 at batch 8), `optim.lr` itself with `none`.",
      "Head widths `auto`: the C5 channel count (512 × width for ResNet-18/34, 2048 × width for ResNet-50).",
      "Distillation vector length E = S² + K (7232 at the paper's setting).",
      "Ghost-BN groups: ⌈B / min(`model.bnGroup`, B)⌉.",
      "Steps per epoch `auto`: ⌊dataset size / B⌋, at least 1; total steps: that × `train.epochs`, capped by " +
      "`train.maxSteps`. The schedules span all epochs even when `train.maxSteps` stops training earlier.",
      "Schedules span all epochs and advance once per epoch (`schedule.granularity: epoch`, as released) or " +
      "every step. The learning rate warms up linearly per step over the first `schedule.warmup` of training, " +
      "then follows lr·½(1 + cos πq) over the rest (q from 0 to 1 after the warm-up) or stays constant. The teacher temperature rises linearly from " +
      "`loss.distill.teacherStartTemperature` to `loss.distill.teacherTemperature` over the first " +
      "`loss.distill.teacherWarmup` of training (0.3 = the released 30 of 100 epochs), then stays. A cosine " +
      "EMA momentum is m = 1 − (1 − m₀)·½(1 + cos πp), p from 0 to 1 over training.",
      "Loss: plrc uses L = w_img·L_img + w_point·L_point + w_distill·L_distill with the `loss.*.weight` " +
      "keys; moco uses L_img alone and detcon the region contrast alone (weights unused).",
    ]
  ) out.push(fill(item, "- ", "  "));
  return out.join("\n") + "\n";
}

if (import.meta.main) {
  const path = Deno.args[0] ?? "docs/config.md";
  await Deno.writeTextFile(path, generateConfigDoc());
  console.log(`wrote ${path}`);
}
