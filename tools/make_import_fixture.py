"""Generate tests/fixtures/import_resnet18_w0.0625.pth and import_resnet18_w0.0625.safetensors: a backbone
file as PyTorch users have them, for `plrc eval --ckpt FILE.pth` / `plrc pretrain --init FILE`.

The .pth is written by torch.save: {"state_dict": {"module.encoder_q.<torchvision name>": tensor, ...,
"module.encoder_q.fc.weight", "module.encoder_q.fc.bias", "module.queue"}, "epoch": 7}, the layout of a
MoCo checkpoint, from a width-reduced torchvision ResNet-18 with random weights, random BN affine
parameters and random running statistics. The .safetensors holds an input batch and the model's C5 in
eval mode (BN with those running statistics), so a test can load the .pth and compare plrc's C5.

usage: /usr/bin/python3 tools/make_import_fixture.py
"""
import os
import sys
from collections import OrderedDict

import torch
from torchvision.models.resnet import BasicBlock

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
sys.dont_write_bytecode = True
import safetensors_io  # noqa: E402
from make_resnet_fixtures import NarrowResNet  # noqa: E402

FIXTURES = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "tests", "fixtures")
WIDTH = 0.0625


def main():
    torch.manual_seed(1234)
    model = NarrowResNet(BasicBlock, [2, 2, 2, 2], WIDTH)
    model.fc = torch.nn.Linear(round(512 * WIDTH), 10)
    with torch.no_grad():
        for name, t in model.state_dict().items():
            if name.endswith("running_mean"):
                t.copy_(torch.randn_like(t) * 0.3)
            elif name.endswith("running_var"):
                t.copy_(torch.rand_like(t) * 1.5 + 0.25)
            elif name.endswith("num_batches_tracked"):
                t.fill_(1000)
            elif "bn" in name or "downsample.1" in name:
                t.copy_(torch.randn_like(t) * 0.2 + (1.0 if name.endswith("weight") else 0.0))
    model.eval()
    x = torch.randn(1, 3, 64, 64)
    with torch.no_grad():
        c5 = model.c5(x)
    sd = OrderedDict(("module.encoder_q." + k, v) for k, v in model.state_dict().items())
    sd["module.queue"] = torch.randn(4, 8)
    pth = os.path.join(FIXTURES, "import_resnet18_w0.0625.pth")
    torch.save({"state_dict": sd, "epoch": 7}, pth)
    out = os.path.join(FIXTURES, "import_resnet18_w0.0625.safetensors")
    safetensors_io.save(out, {"input": x, "c5": c5}, {
        "generator": "tools/make_import_fixture.py", "torch": torch.__version__, "depth": "18", "width": str(WIDTH)})
    print(f"wrote {pth} ({os.path.getsize(pth)} bytes) and {out} ({os.path.getsize(out)} bytes)")


if __name__ == "__main__":
    main()
