"""Generate tests/fixtures/resnet*.safetensors: torchvision ResNets against which plrc's engine is checked.

Parameters are not stored: both sides fill them from a formula (mulberry32 seeded by the FNV-1a hash of
the parameter name, see `fixture_value`), which keeps the fixtures small. The fixture stores the input,
the C5 output, the loss L = sum(C5 * U) for a formula-generated U, the gradient of every trainable
parameter, and the BN running statistics after one training-mode forward. All maths in float64 from
float32-rounded values. A separate fixture checks one torch.optim.SGD step (momentum, weight decay,
with and without Nesterov) from a non-zero momentum buffer.

Run with Debian's interpreter: /usr/bin/python3 tools/make_resnet_fixtures.py
"""
import os
import sys

import torch
from torch import nn
from torchvision.models.resnet import BasicBlock, Bottleneck, ResNet

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import safetensors_io  # noqa: E402

HERE = os.path.dirname(os.path.abspath(__file__))
FIXTURES = os.path.join(HERE, "..", "tests", "fixtures")
M32 = 0xFFFFFFFF


def fnv1a(name):
    h = 0x811C9DC5
    for b in name.encode():
        h = ((h ^ b) * 0x01000193) & M32
    return h


def mulberry32(seed, n):
    s, out = seed & M32, []
    for _ in range(n):
        s = (s + 0x6D2B79F5) & M32
        t = s
        t = ((t ^ (t >> 15)) * (t | 1)) & M32
        t = (t ^ ((t + (((t ^ (t >> 7)) * (t | 61)) & M32)) & M32)) & M32
        out.append(((t ^ (t >> 14)) & M32) / 4294967296)
    return out


def fixture_value(name, shape, kind):
    """Deterministic values for one tensor (the TypeScript twin is tests/models/fixture_values.ts)."""
    n = 1
    for d in shape:
        n *= d
    u = torch.tensor(mulberry32(fnv1a(name), n), dtype=torch.float64)
    if kind == "conv":
        fan_in = shape[1] * shape[2] * shape[3]
        v = (2 * u - 1) * (3.0 / fan_in) ** 0.5
    elif kind == "linear":
        v = (2 * u - 1) * (3.0 / shape[1]) ** 0.5
    elif kind == "bn_weight":
        v = 0.5 + u
    elif kind == "bn_last_weight":
        # the last BN of each block starts near zero (torchvision zero-initialises it); with O(1) values the
        # narrow bottleneck nets are so ill-conditioned that PyTorch's own float32 gradients differ from
        # float64 by up to 20% (ReLU/max-pool decisions flip), which would make the comparison meaningless
        v = 0.1 * (0.5 + u)
    elif kind == "bn_bias":
        v = u - 0.5
    elif kind == "running_mean":
        v = 0.2 * (u - 0.5)
    elif kind == "running_var":
        v = 0.5 + u
    else:
        v = 2 * u - 1
    return v.float().double().reshape(shape)


def kind_of(name, t, last_bn):
    if t.dim() == 4:
        return "conv"
    if name.endswith("running_mean"):
        return "running_mean"
    if name.endswith("running_var"):
        return "running_var"
    if name.endswith(".weight"):
        return "bn_last_weight" if name.startswith("layer") and name.endswith(f".{last_bn}.weight") else "bn_weight"
    return "bn_bias"


class NarrowResNet(ResNet):
    """torchvision's ResNet with every width multiplied by `width` (names and blocks unchanged)."""

    def __init__(self, block, layers, width):
        nn.Module.__init__(self)
        w = [max(1, round(c * width)) for c in (64, 128, 256, 512)]
        self._norm_layer = nn.BatchNorm2d
        self.inplanes, self.dilation, self.groups, self.base_width = w[0], 1, 1, 64
        self.conv1 = nn.Conv2d(3, w[0], kernel_size=7, stride=2, padding=3, bias=False)
        self.bn1 = nn.BatchNorm2d(w[0])
        self.relu = nn.ReLU(inplace=True)
        self.maxpool = nn.MaxPool2d(kernel_size=3, stride=2, padding=1)
        self.layer1 = self._make_layer(block, w[0], layers[0])
        self.layer2 = self._make_layer(block, w[1], layers[1], stride=2)
        self.layer3 = self._make_layer(block, w[2], layers[2], stride=2)
        self.layer4 = self._make_layer(block, w[3], layers[3], stride=2)

    def c5(self, x):
        x = self.maxpool(self.relu(self.bn1(self.conv1(x))))
        return self.layer4(self.layer3(self.layer2(self.layer1(x))))


def resnet_fixture(tag, block, layers, width, batch, res):
    torch.manual_seed(0)
    model = NarrowResNet(block, layers, width).double().train()
    with torch.no_grad():
        for name, t in model.state_dict().items():
            if name.endswith("num_batches_tracked"):
                continue
            last_bn = "bn3" if block is Bottleneck else "bn2"
            t.copy_(fixture_value(name, list(t.shape), kind_of(name, t, last_bn)))
    x = fixture_value("input", [batch, 3, res, res], "other")
    c5 = model.c5(x)
    u = fixture_value("upstream", list(c5.shape), "other")
    loss = (c5 * u).sum()
    loss.backward()
    out = {"input": x.float(), "c5": c5.detach().float(), "loss": loss.detach().float()}
    for name, p in model.named_parameters():
        out["grad." + name] = p.grad.float()
    for name, t in model.state_dict().items():
        if "running" in name:
            out["stats." + name] = t.float()
    path = os.path.join(FIXTURES, f"resnet{tag}.safetensors")
    meta = {"generator": "tools/make_resnet_fixtures.py", "torch": torch.__version__,
            "depth": tag.split("_")[0], "width": str(width), "batch": str(batch), "resolution": str(res)}
    safetensors_io.save(path, out, meta)
    print(f"wrote {path}: {len(out)} tensors, {os.path.getsize(path)} bytes, loss {loss.item():.6f}")


def sgd_fixture():
    out = {}
    for nesterov in (False, True):
        gen = torch.Generator().manual_seed(1 + nesterov)
        p = torch.randn(257, generator=gen).double()
        g = torch.randn(257, generator=gen).double()
        buf = torch.randn(257, generator=gen).double()
        param = nn.Parameter(p.float().double().clone())
        opt = torch.optim.SGD([param], lr=0.05, momentum=0.9, weight_decay=1e-4, nesterov=nesterov)
        param.grad = g.float().double().clone()
        opt.state[param]["momentum_buffer"] = buf.float().double().clone()
        opt.step()
        k = "nesterov" if nesterov else "plain"
        out.update({f"sgd_{k}.p": p.float(), f"sgd_{k}.g": g.float(), f"sgd_{k}.buf": buf.float(),
                    f"sgd_{k}.p_new": param.detach().float(),
                    f"sgd_{k}.buf_new": opt.state[param]["momentum_buffer"].float()})
    path = os.path.join(FIXTURES, "sgd.safetensors")
    safetensors_io.save(path, out, {"generator": "tools/make_resnet_fixtures.py", "torch": torch.__version__,
                                    "lr": "0.05", "momentum": "0.9", "weight_decay": "0.0001"})
    print(f"wrote {path}")


if __name__ == "__main__":
    torch.set_num_threads(2)
    resnet_fixture("18_w0.125", BasicBlock, [2, 2, 2, 2], 0.125, 2, 64)
    resnet_fixture("50_w0.0625", Bottleneck, [3, 4, 6, 3], 0.0625, 2, 64)
    sgd_fixture()
