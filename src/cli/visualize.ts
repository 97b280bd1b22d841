/**
 * `plrc visualize sample|curves`: PNG pictures of a training sample (views, region masks, points, matched
 * positions) and of training curves from a run's metrics.jsonl.
 *
 * @module
 */
import { makeBatch } from "../data/batch.ts";
import { dataConfigOf, readConfigFile, resolveConfig } from "../train/config.ts";
import { folderSource, scenesSource } from "../train/sources.ts";
import { renderCurves, renderSample } from "../viz/pictures.ts";
import { parseOptions, UsageError } from "./usage.ts";

export const VISUALIZE_HELP =
  `plrc visualize sample [--config FILE] [--data DIR|scenes] [--set k=v ...] [--index I] [--out FILE.png]
plrc visualize curves --metrics RUN/metrics.jsonl [--out FILE.png]

sample   one training sample as the trainer makes it: views A0 | A1 | B0, region masks tinted on A0 and
         A1, each region slot's points in its colour (same colour in both views), and a few matched A0/B0
         positions (white-ringed squares, one colour per pair). plrc pretrain writes this picture as
         sample.png at the start of every run.
curves   the loss terms over the steps (each scaled to its own range): loss, loss_image, loss_point,
         loss_distill in that colour order.`;

/** Runs `plrc visualize`. */
export async function visualizeCommand(argv: string[]): Promise<number> {
  const { values, positionals } = parseOptions(
    argv,
    {
      config: { type: "string" },
      data: { type: "string" },
      set: { type: "string", multiple: true },
      index: { type: "string" },
      metrics: { type: "string" },
      out: { type: "string" },
      help: { type: "boolean", short: "h" },
    },
    VISUALIZE_HELP,
    true,
  );
  if (values.help) return console.log(VISUALIZE_HELP), 0;
  const kind = positionals[0];
  if (kind === "curves") {
    if (!values.metrics) throw new UsageError("curves needs --metrics RUN/metrics.jsonl", VISUALIZE_HELP);
    const text = await Deno.readTextFile(values.metrics).catch((e) => {
      throw new UsageError(`cannot read ${values.metrics}: ${(e as Error).message}`, VISUALIZE_HELP);
    });
    const records = text.trim().split("\n").filter(Boolean).map((l) => JSON.parse(l));
    if (!records.length) throw new UsageError(`${values.metrics} holds no records`, VISUALIZE_HELP);
    const out = values.out ?? "curves.png";
    await Deno.writeFile(out, renderCurves(records, ["loss", "loss_image", "loss_point", "loss_distill"]).png());
    console.log(`wrote ${out} (${records.length} steps)`);
    return 0;
  }
  if (kind !== "sample") throw new UsageError(`visualize what? allowed: sample, curves`, VISUALIZE_HELP);
  const file = values.config ? await readConfigFile(values.config) : undefined;
  const cfg = resolveConfig({
    file: file ?? undefined,
    fileName: values.config,
    sets: values.set ?? [],
    overrides: values.data ? [{ path: "data.source", value: values.data, origin: "--data" }] : [],
  });
  const source = cfg.data.source === "scenes"
    ? scenesSource({ ...cfg.data.scenes })
    : await folderSource(cfg.data.source, { maxShort: cfg.data.cacheShortSide, workers: 1 });
  const index = Number(values.index ?? 0);
  if (!(Number.isInteger(index) && index >= 0 && index < source.count)) {
    throw new UsageError(`--index must be an image index below ${source.count}`, VISUALIZE_HELP);
  }
  const data = dataConfigOf(cfg);
  const batch = makeBatch([{ ...(await source.get(index)), key: index }], data);
  const out = values.out ?? "sample.png";
  await Deno.writeFile(out, renderSample(batch, 0, { mean: data.mean, std: data.std }).png());
  console.log(`wrote ${out}`);
  return 0;
}
