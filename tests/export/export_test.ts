/**
 * Exports for PyTorch: names, order, shapes and values of the torchvision, detectron2 and mmdetection
 * files (host-only tests), the `plrc export` command's options, and an end-to-end run on the GPU:
 * formula-filled ResNets in ParamStores → eval-mode C5 → training checkpoint → `plrc export` in every
 * format. With `PLRC_EXPORT_DIR=DIR` the exports, plrc's C5 and a manifest are kept in DIR for
 * `/usr/bin/python3 tools/verify_export.py DIR`, which loads them into torchvision with PyTorch and compares
 * C5 (`PLRC_EXPORT_FULL=1` adds a full-width ResNet-18).
 */
import assert from "node:assert/strict";
import { join } from "node:path";
import { exportCommand } from "../../src/cli/export.ts";
import { UsageError } from "../../src/cli/usage.ts";
import {
  detectron2Config,
  detectron2Name,
  ExportError,
  type ExportFormat,
  type HostTensor,
  torchvisionStateDict,
  writeExport,
} from "../../src/export/export.ts";
import { Recorder, sync } from "../../src/gpu/recorder.ts";
import { readSafetensors, writeSafetensors } from "../../src/io/safetensors.ts";
import { readPth } from "../../src/io/torch_pth.ts";
import type { PthTensor } from "../../src/io/torch_pth.ts";
import {
  buildResNet,
  lastBnNames,
  type ResNetConfig,
  resnetOutChannels,
  resnetSpecs,
} from "../../src/models/resnet.ts";
import { ParamStore } from "../../src/nn/params.ts";
import { saveCheckpoint } from "../../src/train/checkpoint.ts";
import { gpu, GPU_TEST } from "../util.ts";
import { fixtureValue, nchwToNhwc } from "../models/fixture_values.ts";

/** Formula-filled tensors of a backbone, keyed with `prefix`. */
function hostBackbone(cfg: ResNetConfig, prefix: string, salt = ""): Map<string, HostTensor> {
  const last = new Set(lastBnNames(cfg));
  const m = new Map<string, HostTensor>();
  for (const s of resnetSpecs(cfg)) {
    m.set(prefix + s.name, {
      shape: s.shape,
      data: fixtureValue(s.name + salt, s.shape, last.has(s.name) ? "bn_last_weight" : s.kind),
    });
  }
  return m;
}

/** torchvision's state_dict() names without fc: the specs with num_batches_tracked after running_var. */
function torchvisionNames(cfg: ResNetConfig): string[] {
  return resnetSpecs(cfg).flatMap((s) =>
    s.name.endsWith(".running_var") ? [s.name, s.name.replace("running_var", "num_batches_tracked")] : [s.name]
  );
}

Deno.test("torchvision state dict: prefix stripped, torchvision's names and order, num_batches_tracked as 0-d I64", () => {
  for (const cfg of [{ depth: 18, width: 0.125 }, { depth: 50, width: 0.0625 }] as ResNetConfig[]) {
    const src = hostBackbone(cfg, "online.backbone.");
    src.set("online.head.w", { shape: [1], data: new Float32Array(1) }); // other prefixes are ignored
    const sd = torchvisionStateDict(src, { model: cfg, prefix: "online.backbone.", numBatchesTracked: 4321 });
    assert.deepEqual([...sd.keys()], torchvisionNames(cfg));
    if (cfg.depth === 50) assert.equal(sd.size, 318, "ResNet-50 without fc has 318 entries (torchvision's)");
    if (cfg.depth === 18) assert.equal(sd.size, 120);
    for (const [k, t] of sd) {
      if (k.endsWith("num_batches_tracked")) {
        assert.deepEqual(t.shape, []);
        assert.deepEqual([...(t.data as BigInt64Array)], [4321n]);
      } else assert.equal(t.data, src.get("online.backbone." + k)!.data, k);
    }
  }
});

Deno.test("torchvision state dict: per-BN counters, fc kept when present, clear errors", () => {
  const cfg: ResNetConfig = { depth: 18, width: 0.125 };
  const src = hostBackbone(cfg, "");
  const counts = Object.fromEntries(
    resnetSpecs(cfg).filter((s) => s.name.endsWith("running_var")).map((s, i) => [s.name.slice(0, -12), i]),
  );
  const sd = torchvisionStateDict(src, { model: cfg, numBatchesTracked: counts });
  assert.deepEqual([...(sd.get("layer1.0.bn2.num_batches_tracked")!.data as BigInt64Array)], [2n]); // bn1, layer1.0.bn1, …
  const c5 = resnetOutChannels(cfg).c5;
  src.set("fc.weight", { shape: [10, c5], data: new Float32Array(10 * c5) });
  src.set("fc.bias", { shape: [10], data: new Float32Array(10) });
  assert.deepEqual([...torchvisionStateDict(src, { model: cfg, numBatchesTracked: 0 }).keys()].slice(-2), [
    "fc.weight",
    "fc.bias",
  ]);
  const o = { model: cfg, numBatchesTracked: 0 };
  const without = (n: string) => new Map([...hostBackbone(cfg, "")].filter(([k]) => k !== n));
  assert.throws(
    () => torchvisionStateDict(without("layer3.1.bn1.running_mean"), o),
    /layer3\.1\.bn1\.running_mean" is missing/,
  );
  const bad = hostBackbone(cfg, "");
  bad.set("layer2.0.conv1.weight", { shape: [16, 8, 3, 1], data: new Float32Array(384) });
  assert.throws(() => torchvisionStateDict(bad, o), /layer2\.0\.conv1\.weight" has shape \[16,8,3,1\]/);
  const extra = hostBackbone(cfg, "");
  extra.set("layer5.0.conv1.weight", { shape: [1], data: new Float32Array(1) });
  assert.throws(() => torchvisionStateDict(extra, o), /unexpected entries.*layer5/);
  assert.throws(() => torchvisionStateDict(hostBackbone(cfg, ""), { ...o, prefix: "x." }), ExportError);
  assert.throws(
    () => torchvisionStateDict(hostBackbone(cfg, ""), { ...o, model: { depth: 34, width: 0.125 } }),
    /missing/,
  );
});

Deno.test("detectron2 names follow its renames of torchvision's (stem, res2–res5, shortcut, convN.norm)", () => {
  const cases: [string, string][] = [
    ["conv1.weight", "stem.conv1.weight"],
    ["bn1.running_mean", "stem.conv1.norm.running_mean"],
    ["bn1.num_batches_tracked", "stem.conv1.norm.num_batches_tracked"],
    ["layer1.0.conv1.weight", "res2.0.conv1.weight"],
    ["layer1.1.bn2.weight", "res2.1.conv2.norm.weight"],
    ["layer3.5.bn3.bias", "res4.5.conv3.norm.bias"],
    ["layer2.0.downsample.0.weight", "res3.0.shortcut.weight"],
    ["layer4.0.downsample.1.running_var", "res5.0.shortcut.norm.running_var"],
  ];
  for (const [tv, d2] of cases) assert.equal(detectron2Name(tv), d2);
  const lines = detectron2Config({ depth: 50, width: 1 }, "/x.pth");
  for (
    const want of [
      "MODEL.WEIGHTS /x.pth",
      "INPUT.FORMAT RGB",
      "MODEL.PIXEL_MEAN [123.675, 116.28, 103.53]",
      "MODEL.PIXEL_STD [58.395, 57.12, 57.375]",
      "MODEL.RESNETS.STRIDE_IN_1X1 False",
      "MODEL.RESNETS.NORM SyncBN",
      "MODEL.BACKBONE.FREEZE_AT 0",
    ]
  ) assert.ok(lines.includes(want), want);
  assert.ok(detectron2Config({ depth: 18, width: 1 }, "x").includes("MODEL.RESNETS.RES2_OUT_CHANNELS 64"));
});

Deno.test("export files: torchvision .pth/.safetensors, detectron2 and mmdet payloads", async () => {
  const cfg: ResNetConfig = { depth: 18, width: 0.125 };
  const src = hostBackbone(cfg, "backbone.");
  const dir = await Deno.makeTempDir();
  try {
    const o = { model: cfg, prefix: "backbone.", numBatchesTracked: 77 };
    const names = torchvisionNames(cfg);
    const tv = await readPth((await writeExport(src, "torchvision", join(dir, "tv.pth"), o)).path);
    assert.ok(tv.value instanceof Map);
    assert.deepEqual([...(tv.value as Map<string, unknown>).keys()], names);
    const w = (tv.value as Map<string, PthTensor>).get("layer2.0.conv2.weight")!;
    assert.deepEqual(w.shape, src.get("backbone.layer2.0.conv2.weight")!.shape);
    assert.deepEqual(w.data, src.get("backbone.layer2.0.conv2.weight")!.data);
    const nbt = (tv.value as Map<string, PthTensor>).get("bn1.num_batches_tracked")!;
    assert.equal(nbt.dtype, "I64");
    assert.deepEqual(nbt.shape, []);

    const st = await readSafetensors(
      (await writeExport(src, "torchvision", join(dir, "tv.safetensors"), { ...o, safetensors: true })).path,
    );
    assert.deepEqual([...st.tensors.keys()].sort(), [...names].sort());
    assert.equal(st.tensors.get("bn1.num_batches_tracked")!.dtype, "I64");
    assert.deepEqual(st.tensors.get("bn1.num_batches_tracked")!.shape, []);
    assert.equal(st.metadata.format, "pt");

    const d2 = await writeExport(src, "detectron2", join(dir, "d2.pth"), o);
    const d2v = (await readPth(d2.path)).value as Map<string, unknown>;
    assert.deepEqual([...d2v.keys()], ["model", "__author__", "matching_heuristics"]);
    assert.equal(d2v.get("__author__"), "plrc");
    assert.equal(d2v.get("matching_heuristics"), true);
    assert.deepEqual([...(d2v.get("model") as Map<string, unknown>).keys()], names.map(detectron2Name));
    assert.ok(d2.config.includes("MODEL.RESNETS.STEM_OUT_CHANNELS 8"), d2.config.join("\n"));

    const mm = (await readPth((await writeExport(src, "mmdet", join(dir, "mm.pth"), o)).path)).value as Map<
      string,
      unknown
    >;
    assert.deepEqual([...mm.keys()], ["state_dict"]);
    assert.deepEqual([...(mm.get("state_dict") as Map<string, unknown>).keys()], names);
    await assert.rejects(
      writeExport(src, "mmdet", join(dir, "mm.safetensors"), { ...o, safetensors: true }),
      ExportError,
    );
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("plrc export: --help, and usage errors for bad options", async () => {
  const log = console.log;
  console.log = () => {};
  try {
    assert.equal(await exportCommand(["--help"]), 0);
  } finally {
    console.log = log;
  }
  await assert.rejects(exportCommand([]), (e: Error) => e instanceof UsageError && /--ckpt/.test(e.message));
  await assert.rejects(exportCommand(["--ckpt", "x", "--format", "onnx"]), /--format must be one of/);
  await assert.rejects(exportCommand(["--ckpt", "x", "--encoder", "key"]), /--encoder must be online or momentum/);
  await assert.rejects(exportCommand(["--ckpt", "x", "--format", "mmdet", "--safetensors"]), UsageError);
  // the file is what its name says
  await assert.rejects(exportCommand(["--ckpt", "x", "--out", "y.pth", "--safetensors"]), /torch\.load cannot read/);
  await assert.rejects(
    exportCommand(["--ckpt", "x", "--format", "detectron2", "--out", "z.safetensors"]),
    /--out z\.safetensors is for --format torchvision only/,
  );
  await assert.rejects(exportCommand(["--ckpt", "/nonexistent/c.safetensors"]), /no such file/);
  await assert.rejects(exportCommand(["--ckpt", "x", "--bogus"]), UsageError);
});

Deno.test("plrc export: a checkpoint without a usable config is a clear error", async () => {
  const dir = await Deno.makeTempDir();
  try {
    const p = join(dir, "c.safetensors");
    await writeSafetensors(p, { a: { dtype: "F32", shape: [1], data: new Float32Array(1) } });
    const err = console.error;
    const msgs: string[] = [];
    console.error = (m: string) => msgs.push(m);
    try {
      assert.equal(await exportCommand(["--ckpt", p]), 1);
    } finally {
      console.error = err;
    }
    assert.match(msgs.join("\n"), /not a plrc checkpoint/);
    await writeSafetensors(p, { a: { dtype: "F32", shape: [1], data: new Float32Array(1) } }, {
      "plrc.format": "plrc-checkpoint/1",
      config: JSON.stringify({ model: {} }),
    });
    await assert.rejects(exportCommand(["--ckpt", p]), /model\.depth/);
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

// ---------------------------------------------------------------------------------------------------------
// End to end on the GPU

const KEEP = Deno.env.get("PLRC_EXPORT_DIR");
const MODELS: ResNetConfig[] = [
  ...(Deno.env.get("PLRC_EXPORT_FULL") ? [{ depth: 18, width: 1 } as ResNetConfig] : []),
  { depth: 18, width: 0.25 },
  { depth: 50, width: 0.125 },
];

function nhwcToNchw(x: Float32Array, n: number, h: number, w: number, c: number): Float32Array {
  const out = new Float32Array(x.length);
  for (let a = 0; a < n; a++) {
    for (let y = 0; y < h; y++) {
      for (let xx = 0; xx < w; xx++) {
        for (let ch = 0; ch < c; ch++) out[((a * c + ch) * h + y) * w + xx] = x[((a * h + y) * w + xx) * c + ch];
      }
    }
  }
  return out;
}

Deno.test({
  name: "end to end: ParamStores → eval C5 → checkpoint → plrc export in every format (kept for verify_export.py)",
  ...GPU_TEST,
  async fn() {
    const g = await gpu();
    const dir = KEEP ?? await Deno.makeTempDir();
    await Deno.mkdir(dir, { recursive: true });
    const manifest: { models: unknown[] } = { models: [] };
    const B = 2, R = 64, NBT = 1234;
    const log = console.log;
    try {
      for (const cfg of MODELS) {
        const tag = `resnet${cfg.depth}_w${cfg.width}`;
        const c5ch = resnetOutChannels(cfg).c5;
        const specs = [
          ...resnetSpecs(cfg, "backbone."),
          { name: "head.fc.weight", shape: [4, c5ch], kind: "linear_weight" as const },
        ];
        const online = new ParamStore(specs).allocate(g), momentum = new ParamStore(specs).allocate(g);
        const srcOnline = hostBackbone(cfg, "backbone."), srcMomentum = hostBackbone(cfg, "backbone.", "#momentum");
        for (const [store, src] of [[online, srcOnline], [momentum, srcMomentum]] as const) {
          for (const [k, t] of src) store.set(k, t.data as Float32Array);
          store.set("head.fc.weight", fixtureValue("head", [4, c5ch], "other"));
        }
        const net = await buildResNet(
          g,
          online,
          cfg,
          { batch: B, resolution: R, train: false, backward: false },
          "backbone.",
        );
        const input = fixtureValue("input", [B, 3, R, R], "other");
        net.input.upload(nchwToNhwc(input, B, 3, R, R));
        new Recorder(g).runAll(net.forward).submit();
        await sync(g);
        const [, h5, w5] = net.c5Shape;
        const c5 = nhwcToNchw((await net.c5.read()) as Float32Array, B, h5, w5, c5ch);
        net.dispose();
        await writeSafetensors(join(dir, `${tag}.c5.safetensors`), {
          input: { dtype: "F32", shape: [B, 3, R, R], data: input },
          c5: { dtype: "F32", shape: [B, c5ch, h5, w5], data: c5 },
        });

        const ckpt = join(dir, `${tag}.ckpt.safetensors`);
        await saveCheckpoint(ckpt, {
          stores: { online, momentum },
          tensors: {},
          meta: {
            step: NBT,
            config: `model:\n  depth: ${cfg.depth}\n  width: ${cfg.width}\n`,
            num_batches_tracked: { online: NBT, momentum: NBT },
          },
        });
        const exports: { format: ExportFormat; file: string }[] = [];
        console.log = () => {};
        for (
          const [format, ext] of [["torchvision", "pth"], ["torchvision", "safetensors"], ["detectron2", "pth"], [
            "mmdet",
            "pth",
          ]] as const
        ) {
          const file = `${tag}.${format}.${ext}`;
          const args = ["--ckpt", ckpt, "--format", format, "--out", join(dir, file)];
          // a .safetensors name alone makes safetensors (no --safetensors)
          assert.equal(await exportCommand(args), 0);
          exports.push({ format, file });
        }
        // the momentum encoder's backbone, exported by name
        const mfile = join(dir, `${tag}.momentum.pth`);
        assert.equal(await exportCommand(["--ckpt", ckpt, "--encoder", "momentum", "--out", mfile]), 0);
        console.log = log;

        // values survive GPU layout → checkpoint → export exactly
        for (const [file, src] of [[join(dir, `${tag}.torchvision.pth`), srcOnline], [mfile, srcMomentum]] as const) {
          const sd = (await readPth(file)).value as Map<string, PthTensor>;
          assert.deepEqual([...sd.keys()], torchvisionNames(cfg));
          for (const [k, t] of sd) {
            if (k.endsWith("num_batches_tracked")) assert.deepEqual([...(t.data as BigInt64Array)], [BigInt(NBT)]);
            else assert.deepEqual(t.data, src.get("backbone." + k)!.data, `${file}: ${k}`);
          }
        }
        // the .safetensors export is safetensors (named so, without --safetensors)
        const st = await readSafetensors(join(dir, `${tag}.torchvision.safetensors`));
        assert.deepEqual([...st.tensors.keys()].sort(), [...torchvisionNames(cfg)].sort());
        manifest.models.push({ ...cfg, c5: `${tag}.c5.safetensors`, num_batches_tracked: NBT, exports });
        for (const s of [online, momentum]) for (const b of Object.values(s.flat())) b.buffer.destroy();
      }
      await Deno.writeTextFile(join(dir, "manifest.json"), JSON.stringify(manifest, null, 2));
    } finally {
      console.log = log;
      if (!KEEP) await Deno.remove(dir, { recursive: true });
    }
  },
});
