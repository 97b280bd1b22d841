"""Check plrc's exported backbones with PyTorch itself.

usage:
  /usr/bin/python3 tools/verify_export.py DIR
      DIR holds manifest.json and the files it names, as written by tests/export/export_test.ts with
      PLRC_EXPORT_DIR=DIR. For every model: plrc's input and C5 (NCHW, eval-mode BN) and one export per
      format. Each export is loaded with torch.load (and torch.load(weights_only=True) for .pth), checked
      for its format's structure, loaded with load_state_dict(strict=True) into a torchvision ResNet of the
      same width (detectron2's names mapped back with the inverse of the export's renames), run forward
      in eval mode on the same input, and compared with plrc's C5. Exit code 1 on any failure.
  /usr/bin/python3 tools/verify_export.py --make-fixture OUT.pth
      writes the small torch.save file (a dict of two tensors) that tests/io/pth_test.ts parses.
"""
import json
import os
import sys

import torch
import torchvision
from torchvision.models.resnet import BasicBlock, Bottleneck

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
sys.dont_write_bytecode = True
import safetensors_io  # noqa: E402
from make_resnet_fixtures import NarrowResNet  # noqa: E402

ARCH = {18: (BasicBlock, [2, 2, 2, 2]), 34: (BasicBlock, [3, 4, 6, 3]), 50: (Bottleneck, [3, 4, 6, 3])}

def d2_name(k):
    """detectron2's name for a torchvision name (detectron2's convert-torchvision-to-d2 renames)."""
    if "layer" not in k:
        k = "stem." + k
    for t in [1, 2, 3, 4]:
        k = k.replace(f"layer{t}", f"res{t + 1}")
    for t in [1, 2, 3]:
        k = k.replace(f"bn{t}", f"conv{t}.norm")
    return k.replace("downsample.0", "shortcut").replace("downsample.1", "shortcut.norm")

def same(a, b):
    if isinstance(a, torch.Tensor):
        return isinstance(b, torch.Tensor) and a.dtype == b.dtype and a.shape == b.shape and torch.equal(a, b)
    if isinstance(a, dict):
        return isinstance(b, dict) and list(a) == list(b) and all(same(a[k], b[k]) for k in a)
    return a == b

def state_dict_of(path, fmt, tv_names):
    """Loads one export; returns the state dict under torchvision's names and notes on the structure."""
    notes = []
    if path.endswith(".safetensors"):
        sd, meta = safetensors_io.load(path)
        notes.append(f"safetensors, metadata {meta}")
        return sd, notes
    obj = torch.load(path)
    obj_w = torch.load(path, weights_only=True)
    assert same(obj, obj_w), "torch.load and torch.load(weights_only=True) differ"
    notes.append("torch.load and weights_only=True agree")
    if fmt == "torchvision":
        assert type(obj) is __import__("collections").OrderedDict, f"top level is {type(obj)}"
        return obj, notes
    if fmt == "mmdet":
        assert set(obj) == {"state_dict"}, f"keys {list(obj)}"
        return obj["state_dict"], notes
    assert fmt == "detectron2"
    assert obj.get("__author__") == "plrc" and obj.get("matching_heuristics") is True, str(
        {k: v for k, v in obj.items() if k != "model"})
    model = obj["model"]
    want = {d2_name(k): k for k in tv_names}
    assert set(model) == set(want), f"detectron2 names differ: {sorted(set(model) ^ set(want))[:6]}"
    notes.append(f"{len(model)} detectron2 names as expected, e.g. {list(model)[:2]}")
    return {want[k]: v for k, v in model.items()}, notes

def verify(folder):
    with open(os.path.join(folder, "manifest.json")) as f:
        manifest = json.load(f)
    failures = 0
    print(f"torch {torch.__version__}, torchvision {torchvision.__version__}")
    for m in manifest["models"]:
        depth, width = m["depth"], m["width"]
        block, layers = ARCH[depth]
        ref, _ = safetensors_io.load(os.path.join(folder, m["c5"]))
        x, c5_plrc = ref["input"], ref["c5"]
        for e in m["exports"]:
            path, fmt = os.path.join(folder, e["file"]), e["format"]
            model = NarrowResNet(block, layers, width).eval()
            tv_names = list(model.state_dict())
            try:
                sd, notes = state_dict_of(path, fmt, tv_names)
                if path.endswith(".safetensors"):  # safetensors orders by dtype size, then name
                    assert set(sd) == set(tv_names), f"names differ: {sorted(set(sd) ^ set(tv_names))[:6]}"
                    sd = {k: sd[k] for k in tv_names}
                assert list(sd) == tv_names, "names or order differ from torchvision's state_dict()"
                for k, v in sd.items():
                    if k.endswith("num_batches_tracked"):
                        assert v.dtype == torch.int64 and v.dim() == 0, f"{k}: {v.dtype} {tuple(v.shape)}"
                        assert v.item() == m["num_batches_tracked"], f"{k} = {v.item()}"
                    else:
                        assert v.dtype == torch.float32, f"{k}: {v.dtype}"
                model.load_state_dict(sd, strict=True)
                if width == 1:
                    full = getattr(torchvision.models, f"resnet{depth}")()
                    r = full.load_state_dict(sd, strict=False)
                    assert sorted(r.missing_keys) == ["fc.bias", "fc.weight"] and not r.unexpected_keys, str(r)
                    notes.append(f"stock torchvision resnet{depth}: only fc missing")
                with torch.no_grad():
                    y = model.c5(x)
                    y64 = model.double().c5(x.double()).float()
                diff = (y - c5_plrc).abs().max().item()
                scale = c5_plrc.abs().max().item()
                diff64 = (y64 - c5_plrc).abs().max().item()
                ok = diff <= 1e-3 * scale
                failures += not ok
                print(f"{'ok  ' if ok else 'FAIL'} ResNet-{depth} x{width} {fmt:11s} {e['file']}: strict load ok, "
                      f"C5 {tuple(y.shape)} max |torch f32 - plrc| = {diff:.3e} (float64 torch: {diff64:.3e}; "
                      f"max |C5| = {scale:.3f})")
                for n in notes:
                    print(f"       {n}")
            except Exception as ex:  # noqa: BLE001 - report every export
                failures += 1
                print(f"FAIL ResNet-{depth} x{width} {fmt} {e['file']}: {type(ex).__name__}: {ex}")
    print(f"{failures} failure(s)")
    return 1 if failures else 0

def make_fixture(out):
    sd = {"weight": torch.arange(6, dtype=torch.float32).reshape(2, 3) / 4,
          "num_batches_tracked": torch.tensor(7, dtype=torch.int64)}
    torch.save(sd, out)
    print(f"wrote {out} ({os.path.getsize(out)} bytes) with torch {torch.__version__}")

if __name__ == "__main__":
    if len(sys.argv) == 3 and sys.argv[1] == "--make-fixture":
        make_fixture(sys.argv[2])
    elif len(sys.argv) == 2:
        sys.exit(verify(sys.argv[1]))
    else:
        print(__doc__)
        sys.exit(2)
