/**
 * Import of torchvision backbones: a MoCo-style checkpoint written by torch.save (tools/make_import_fixture.py)
 * loads with its prefix found and its shape read off, and plrc's eval-mode C5 on it matches PyTorch's; plrc's
 * own exports (torchvision .pth/.safetensors, mmdet) read back bit for bit; malformed files name the problem.
 */
import assert from "node:assert/strict";
import { join } from "node:path";
import { type HostTensor, writeExport } from "../../src/export/export.ts";
import {
  findPrefix,
  ImportError,
  readTorchvisionBackbone,
  torchvisionBackbone,
  withModel,
} from "../../src/export/import.ts";
import { Recorder, sync } from "../../src/gpu/recorder.ts";
import { readSafetensors, toFloat32, writeSafetensors } from "../../src/io/safetensors.ts";
import { type PthTensor, readPth } from "../../src/io/torch_pth.ts";
import { buildResNet, type ResNetConfig, resnetSpecs } from "../../src/models/resnet.ts";
import { ParamStore } from "../../src/nn/params.ts";
import { fixtureValue, nchwToNhwc } from "../models/fixture_values.ts";
import { gpu, GPU_TEST, runCli } from "../util.ts";

const FIX = (f: string) => new URL(`../fixtures/${f}`, import.meta.url).pathname;

Deno.test({
  name: "a MoCo-style torch.save checkpoint: prefix and ResNet found, fc and extras ignored, C5 matches PyTorch",
  ...GPU_TEST,
  async fn() {
    const b = await readTorchvisionBackbone(FIX("import_resnet18_w0.0625.pth"));
    assert.equal(b.prefix, "module.encoder_q.");
    assert.deepEqual(b.model, { depth: 18, width: 0.0625 });
    const specs = resnetSpecs(b.model);
    assert.deepEqual([...b.tensors.keys()].sort(), specs.map((s) => s.name).sort());
    const fx = await readSafetensors(FIX("import_resnet18_w0.0625.safetensors"));
    const x = toFloat32(fx.tensors.get("input")!), want = toFloat32(fx.tensors.get("c5")!);
    const g = await gpu();
    const store = new ParamStore(specs).allocate(g);
    for (const s of specs) store.set(s.name, b.tensors.get(s.name)!);
    const net = await buildResNet(g, store, b.model, { batch: 1, resolution: 64, train: false, backward: false });
    net.input.upload(nchwToNhwc(x, 1, 3, 64, 64));
    new Recorder(g).runAll(net.forward).submit();
    await sync(g);
    const [, h, w, c] = net.c5Shape;
    const got = (await net.c5.read()) as Float32Array, ref = nchwToNhwc(want, 1, c, h, w);
    let num = 0, den = 0;
    for (let i = 0; i < ref.length; i++) {
      num = Math.max(num, Math.abs(got[i] - ref[i])), den = Math.max(den, Math.abs(ref[i]));
    }
    assert.ok(den > 0.1, "the reference C5 is not trivially small");
    assert.ok(num / den <= 1e-4, `C5 relative error ${num / den}`);
  },
});

function hostBackbone(cfg: ResNetConfig, prefix: string): Map<string, HostTensor> {
  const m = new Map<string, HostTensor>();
  for (const s of resnetSpecs(cfg)) {
    m.set(prefix + s.name, { shape: s.shape, data: fixtureValue(s.name, s.shape, s.kind) });
  }
  return m;
}

Deno.test("plrc's exports read back exactly: torchvision .pth and .safetensors, mmdet .pth", async () => {
  const dir = await Deno.makeTempDir();
  try {
    for (const model of [{ depth: 18, width: 0.125 }, { depth: 50, width: 0.0625 }] as ResNetConfig[]) {
      const src = hostBackbone(model, "backbone.");
      const o = { model, prefix: "backbone.", numBatchesTracked: 5 };
      const files = [
        (await writeExport(src, "torchvision", join(dir, "tv.pth"), o)).path,
        (await writeExport(src, "torchvision", join(dir, "tv.safetensors"), { ...o, safetensors: true })).path,
        (await writeExport(src, "mmdet", join(dir, "mm.pth"), o)).path,
      ];
      for (const f of files) {
        const b = await readTorchvisionBackbone(f);
        assert.deepEqual(b.model, model, f);
        assert.equal(b.prefix, "");
        assert.equal(b.tensors.size, src.size);
        for (const [name, t] of src) {
          assert.deepEqual(b.tensors.get(name.slice("backbone.".length)), t.data, `${f} ${name}`);
        }
      }
    }
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("malformed backbones are refused naming the problem", async () => {
  const m18: ResNetConfig = { depth: 18, width: 0.125 };
  // no ResNet at all
  const vgg = new Map<string, HostTensor>([["features.0.weight", { shape: [1], data: new Float32Array(1) }]]);
  assert.throws(() => torchvisionBackbone(vgg), /no torchvision ResNet in it/);
  // a missing tensor, a misshapen one, an unexpected one
  const missing = hostBackbone(m18, "");
  missing.delete("layer3.1.bn2.running_var");
  assert.throws(() => torchvisionBackbone(missing), /layer3\.1\.bn2\.running_var" is missing/);
  const bad = hostBackbone(m18, "");
  bad.set("layer2.0.conv1.weight", { shape: [16, 8, 3, 1], data: new Float32Array(16 * 8 * 3) });
  assert.throws(() => torchvisionBackbone(bad), /layer2\.0\.conv1\.weight" has shape \[16,8,3,1\]/);
  const extra = hostBackbone(m18, "");
  extra.set("layer4.0.se.weight", { shape: [1], data: new Float32Array(1) });
  assert.throws(() => torchvisionBackbone(extra), /unexpected entries.*layer4\.0\.se\.weight/);
  // a depth plrc does not build (ResNet-101's blocks)
  const deep = hostBackbone({ depth: 50, width: 0.0625 }, "");
  for (let i = 6; i < 23; i++) {
    deep.set(`layer3.${i}.conv1.weight`, { shape: [1], data: new Float32Array(1) });
  }
  assert.throws(
    () => torchvisionBackbone(deep),
    /blocks per stage 3,4,23,3 \(bottleneck\): plrc builds ResNet-18, 34 and 50/,
  );
  // the first prefix in file order wins; a prefix needs layer1 beside conv1
  assert.equal(findPrefix(["a.conv1.weight", "b.conv1.weight", "b.layer1.0.conv1.weight"]), "b.");
  // files that are not backbones
  const dir = await Deno.makeTempDir();
  try {
    await Deno.writeTextFile(join(dir, "x.pth"), "not a zip");
    await assert.rejects(readTorchvisionBackbone(join(dir, "x.pth")), ImportError);
    await assert.rejects(readTorchvisionBackbone(join(dir, "none.safetensors")), ImportError);
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("withModel adds the imported shape to the sets and refuses a conflicting one", () => {
  const m: ResNetConfig = { depth: 50, width: 1 };
  assert.deepEqual(withModel(["seed=3"], m), ["seed=3", "model.depth=50", "model.width=1"]);
  assert.deepEqual(withModel(["model.depth=50"], m), ["model.depth=50", "model.depth=50", "model.width=1"]);
  assert.throws(() => withModel(["model.depth=18"], m), /--set model\.depth=18: the imported backbone is ResNet-50 ×1/);
});

const plrc = runCli;

Deno.test({
  name: "pretrain model.init starts both encoders from a torch.save file; a wrong shape exits 2 before any work",
  ...GPU_TEST,
  async fn() {
    const dir = await Deno.makeTempDir();
    try {
      const file = join(dir, "moco.pth");
      await Deno.copyFile(FIX("import_resnet18_w0.0625.pth"), file);
      const wrong = await plrc(["pretrain", "--out", join(dir, "w"), "--set", `model.init=${file}`]);
      assert.equal(wrong.code, 2, wrong.text);
      assert.match(wrong.text, /holds a ResNet-18 ×0\.0625, but the configuration builds ResNet-18 ×0\.125: add --set/);
      assert.doesNotMatch(wrong.text, /adapter:/, "refused before the GPU was set up");
      const sets = ["--set", `model.init=${file}`, "--set", "model.width=0.0625", "--set", "train.maxSteps=1"];
      // a vanishing learning rate, so that one step leaves the weights where they started
      const run = await plrc(["pretrain", "--out", join(dir, "r"), ...sets, "--set", "optim.lr=1e-9"]);
      assert.equal(run.code, 0, run.text);
      assert.match(run.text, /both backbones start from .*moco\.pth \(names under "module\.encoder_q\."\)/);
      const b = await readTorchvisionBackbone(file);
      const ck = await readSafetensors(join(dir, "r", "checkpoints", "last.safetensors"));
      for (const enc of ["online", "momentum"]) {
        for (const name of ["conv1.weight", "layer3.1.conv2.weight", "layer4.0.downsample.1.weight"]) {
          const got = toFloat32(ck.tensors.get(`params/${enc}/backbone.${name}`)!), want = b.tensors.get(name)!;
          const err = got.reduce((m, v, i) => Math.max(m, Math.abs(v - want[i])), 0);
          assert.ok(err < 1e-6, `${enc} ${name}: off by ${err}`);
        }
      }
      // a resumed run takes everything from its checkpoint: the init file may be gone
      await Deno.remove(file);
      const again = await plrc([
        "pretrain",
        "--out",
        join(dir, "r"),
        "--auto-resume",
        ...sets.slice(0, 4),
        "--set",
        "train.maxSteps=2",
      ]);
      assert.equal(again.code, 0, again.text);
      assert.match(again.text, /auto-resume: found/);
      assert.match(again.text, /finished after 2 steps/);
    } finally {
      await Deno.remove(dir, { recursive: true });
    }
  },
});

Deno.test({
  name: "eval --ckpt FILE.pth scores an outside backbone; a conflicting --set model.depth exits 2",
  ...GPU_TEST,
  async fn() {
    const pth = FIX("import_resnet18_w0.0625.pth");
    const r = await plrc(["eval", "--ckpt", pth, "--protocol", "knn", "--train", "12", "--test", "8", "--json"]);
    assert.equal(r.code, 0, r.text);
    const rec = JSON.parse(r.text.split("\n").filter((l) => l.startsWith("{")).pop()!);
    assert.deepEqual(rec.model, { depth: 18, width: 0.0625 });
    assert.equal(rec.imported.prefix, "module.encoder_q.");
    assert.ok(rec.accuracy >= 0 && rec.accuracy <= 1);
    const bad = await plrc(["eval", "--ckpt", pth, "--protocol", "knn", "--set", "model.depth=50"]);
    assert.equal(bad.code, 2, bad.text);
    assert.match(bad.text, /--set model\.depth=50: the imported backbone is ResNet-18 ×0\.0625/);
    // a safetensors file that is neither says both
    const dir = await Deno.makeTempDir();
    try {
      await writeSafetensors(join(dir, "x.safetensors"), {
        a: { dtype: "F32", shape: [1], data: new Float32Array(1) },
      });
      const neither = await plrc(["eval", "--ckpt", join(dir, "x.safetensors"), "--protocol", "knn"]);
      assert.equal(neither.code, 2, neither.text);
      assert.match(
        neither.text,
        /not a plrc checkpoint .*; nor is it a torchvision ResNet: .*no torchvision ResNet in it/,
      );
    } finally {
      await Deno.remove(dir, { recursive: true });
    }
  },
});

Deno.test("export --ckpt FILE.pth converts an outside backbone: torchvision reads back equal, detectron2 names", async () => {
  const dir = await Deno.makeTempDir();
  try {
    const pth = FIX("import_resnet18_w0.0625.pth"), want = await readTorchvisionBackbone(pth);
    const tv = await plrc(["export", "--ckpt", pth, "--format", "torchvision", "--out", join(dir, "tv.pth")]);
    assert.equal(tv.code, 0, tv.text);
    assert.match(tv.text, /ResNet-18 ×0\.0625 from .* \(names under "module\.encoder_q\."\), torchvision, 120 tensors/);
    const back = await readTorchvisionBackbone(join(dir, "tv.pth"));
    assert.equal(back.prefix, "");
    for (const [name, v] of want.tensors) assert.deepEqual(back.tensors.get(name), v, name);
    const d2 = await plrc(["export", "--ckpt", pth, "--format", "detectron2", "--out", join(dir, "d2.pth")]);
    assert.equal(d2.code, 0, d2.text);
    const model = ((await readPth(join(dir, "d2.pth"))).value as Map<string, unknown>).get("model") as Map<
      string,
      PthTensor
    >;
    assert.deepEqual(
      model.get("res3.0.shortcut.norm.running_var")!.data,
      want.tensors.get("layer2.0.downsample.1.running_var"),
    );
    assert.deepEqual(model.get("stem.conv1.weight")!.data, want.tensors.get("conv1.weight"));
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});
