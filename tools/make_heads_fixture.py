"""Generate tests/fixtures/heads.safetensors: PLRC's point head and DINO head in PyTorch (float64).

Point head: Linear → ReLU → Linear. DINO head: Linear → BN1d → ReLU → Linear → BN1d → ReLU → Linear,
L2-normalised, then a weight-normalised prototype layer with the gain fixed at 1. Parameters and the loss
gradients (dY1, dZ, dLogits) come from the same name-seeded formula as tools/make_resnet_fixtures.py, so
only the input, the outputs and the gradients are stored.

Run with Debian's interpreter: /usr/bin/python3 tools/make_heads_fixture.py
"""
import os
import sys

import torch
import torch.nn.functional as F
from torch import nn

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import safetensors_io  # noqa: E402
from make_resnet_fixtures import FIXTURES, fixture_value  # noqa: E402

N, C, PH, PD, DH, BOT, K = 24, 16, 12, 8, 20, 10, 14


def main():
    point = nn.Sequential(nn.Linear(C, PH), nn.ReLU(), nn.Linear(PH, PD)).double()
    dino = nn.Sequential(nn.Linear(C, DH), nn.BatchNorm1d(DH), nn.ReLU(), nn.Linear(DH, DH), nn.BatchNorm1d(DH),
                         nn.ReLU(), nn.Linear(DH, BOT)).double().train()
    v = nn.Parameter(torch.zeros(K, BOT, dtype=torch.float64))
    named = {**{f"point_head.{k}": p for k, p in point.state_dict().items()},
             **{f"dino_head.mlp.{k}": p for k, p in dino.state_dict().items()}}
    with torch.no_grad():
        for name, t in named.items():
            if name.endswith("num_batches_tracked"):
                continue
            kind = "linear" if name.endswith("weight") and t.dim() == 2 else (
                "bn_weight" if name.endswith("weight") else "running_var" if "running_var" in name else
                "running_mean" if "running_mean" in name else "bn_bias")
            t.copy_(fixture_value(name, list(t.shape), kind))
        v.copy_(fixture_value("dino_head.last_layer.weight_v", [K, BOT], "linear"))
    x = fixture_value("heads.c5", [N, C], "other").requires_grad_(True)
    y1 = point(x)
    z = F.normalize(dino(x), dim=1)
    logits = z @ F.normalize(v, dim=1).t()
    dy1 = fixture_value("heads.dy1", [N, PD], "other")
    dz = fixture_value("heads.dz", [N, BOT], "other")
    dl = fixture_value("heads.dlogits", [N, K], "other")
    ((y1 * dy1).sum() + (z * dz).sum() + (logits * dl).sum()).backward()
    out = {"y1": y1, "z": z, "logits": logits, "dc5": x.grad}
    for k, p in point.named_parameters():
        out[f"grad.point_head.{k}"] = p.grad
    for k, p in dino.named_parameters():
        out[f"grad.dino_head.mlp.{k}"] = p.grad
    out["grad.dino_head.last_layer.weight_v"] = v.grad
    for k, t in dino.state_dict().items():
        if "running" in k:
            out[f"stats.dino_head.mlp.{k}"] = t
    out = {k: t.detach().float() for k, t in out.items()}
    path = os.path.join(FIXTURES, "heads.safetensors")
    safetensors_io.save(path, out, {"generator": "tools/make_heads_fixture.py", "torch": torch.__version__,
                                    "sizes": f"{N},{C},{PH},{PD},{DH},{BOT},{K}"})
    print(f"wrote {path}")


if __name__ == "__main__":
    main()
