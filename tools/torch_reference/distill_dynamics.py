"""PyTorch twin of a plrc run with only the distillation term, on the batches plrc itself trains on.

Question it answers: when plrc's point affinity distillation collapses to uniform (loss at log(S² + K)), is that
the objective's dynamics at this size, or something plrc's kernels do? The twin is written from the method
(the release's naive form, as tools/torch_reference/plrc_step.py), not from plrc's code:
torchvision-layout ResNet, DINO head (trunc-normal 0.02 MLP, BN1d, weight-normalised prototypes with gain 1),
ghost BN in groups of `bnGroup` images, shuffle-BN for the key encoder, SGD with momentum and weight decay
and a per-step cosine learning rate, EMA key encoder, centre with momentum, teacher temperature warm-up.

usage:
  deno run -A tools/dump_batches.ts --out /tmp/batches --steps 128      # plrc's first 128 batches (cpu-tiny)
  /usr/bin/python3 tools/torch_reference/distill_dynamics.py /tmp/batches [--seed 0] [--lr 0.05] > twin.jsonl

Prints one JSON line per step: step, loss_distill, and mean_cos (mean cosine between the teacher's B0
bottleneck vectors and the A1 anchors of the same image, which is 1 when the bottleneck has collapsed).
"""
import argparse
import json
import math
import os
import sys

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))
sys.dont_write_bytecode = True
from make_resnet_fixtures import NarrowResNet  # noqa: E402
from torchvision.models.resnet import BasicBlock, Bottleneck  # noqa: E402

ARCH = {18: (BasicBlock, [2, 2, 2, 2]), 34: (BasicBlock, [3, 4, 6, 3]), 50: (Bottleneck, [3, 4, 6, 3])}


class Ghost:
    """Ghost-BN context: every BN splits its batch into `groups` equal chunks (rows are ordered by image)."""

    groups = 1


class GhostBN2d(nn.BatchNorm2d):
    def forward(self, x):
        if Ghost.groups == 1:
            return super().forward(x)
        return torch.cat([super(GhostBN2d, self).forward(c) for c in x.chunk(Ghost.groups)])


class GhostBN1d(nn.BatchNorm1d):
    def forward(self, x):
        if Ghost.groups == 1:
            return super().forward(x)
        return torch.cat([super(GhostBN1d, self).forward(c) for c in x.chunk(Ghost.groups)])


def build(cfg):
    m = cfg["model"]
    block, layers = ARCH[m["depth"]]
    backbone = NarrowResNet(block, layers, m["width"])
    for mod in list(backbone.modules()):
        for cname, child in list(mod.named_children()):
            if isinstance(child, nn.BatchNorm2d):
                setattr(mod, cname, GhostBN2d(child.num_features))
    for mod in backbone.modules():  # torchvision's init
        if isinstance(mod, nn.Conv2d):
            nn.init.kaiming_normal_(mod.weight, mode="fan_out", nonlinearity="relu")
    c5 = backbone.layer4[-1].conv3.out_channels if block is Bottleneck else backbone.layer4[-1].conv2.out_channels
    hidden = c5 if m["dinoHidden"] == "auto" else m["dinoHidden"]
    dino = nn.Sequential(nn.Linear(c5, hidden), GhostBN1d(hidden), nn.ReLU(), nn.Linear(hidden, hidden),
                         GhostBN1d(hidden), nn.ReLU(), nn.Linear(hidden, m["bottleneck"]))
    for mod in dino:
        if isinstance(mod, nn.Linear):
            nn.init.trunc_normal_(mod.weight, std=0.02, a=-0.04, b=0.04)
            nn.init.zeros_(mod.bias)
    protos = nn.utils.weight_norm(nn.Linear(m["bottleneck"], m["prototypes"], bias=False))
    protos.weight_g.data.fill_(1)
    protos.weight_g.requires_grad = False
    return nn.ModuleDict({"backbone": backbone, "dino": dino, "protos": protos})


def heads(enc, x):
    c5 = enc["backbone"].c5(x)
    b, c, h, w = c5.shape
    z = F.normalize(enc["dino"](c5.permute(0, 2, 3, 1).reshape(b * h * w, c)), dim=1)
    return z, enc["protos"](z), (h, w)


def upsample(rows, b, h, w, s):
    up = F.interpolate(rows.reshape(b, h, w, -1).permute(0, 3, 1, 2), size=(s, s), mode="bilinear",
                       align_corners=False)
    return up.reshape(b, rows.shape[1], s * s).permute(0, 2, 1)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("batches")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--lr", type=float, default=None)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--freeze-prototypes", type=int, default=0, metavar="N",
                    help="leave the prototypes untrained for the first N steps (DINO's freeze_last_layer)")
    ap.add_argument("--parts", choices=["both", "prototypes", "affinity"], default="both",
                    help="which entries the distilled vectors hold (both: the method; the others: to isolate one)")
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    idx = json.load(open(os.path.join(args.batches, "index.json")))
    cfg, B, R, S = idx["config"], idx["batch"], idx["resolution"], idx["maskSize"]
    dist, opt_cfg = cfg["loss"]["distill"], cfg["optim"]
    Ghost.groups = max(1, B // cfg["model"]["bnGroup"])
    torch.manual_seed(args.seed)
    q, k = build(cfg).train(), build(cfg).train()
    k.load_state_dict(q.state_dict())
    for p in k.parameters():
        p.requires_grad = False
    lr0 = args.lr if args.lr is not None else opt_cfg["lr"]
    opt = torch.optim.SGD([p for p in q.parameters() if p.requires_grad], lr=lr0, momentum=opt_cfg["momentum"],
                          weight_decay=opt_cfg["weightDecay"])
    spe = cfg["data"]["scenes"]["count"] // B
    total = spe * cfg["train"]["epochs"]
    warm_t = max(1, round(total * dist["teacherWarmup"]))
    K = cfg["model"]["prototypes"]
    center = torch.zeros(S * S + K)
    ema = cfg["ema"]["momentum"]

    def view(step, name):
        a = np.fromfile(os.path.join(args.batches, f"step_{step:04d}.{name}.f32"), dtype="<f4")
        return torch.from_numpy(a.reshape(B, R, R, 3).copy()).permute(0, 3, 1, 2).contiguous()

    def keyed(x):  # shuffle-BN: the key encoder sees its batch in a random order
        perm = torch.randperm(B)
        z, lg, hw = heads(k, x[perm])
        inv = torch.argsort(perm)
        h, w = hw
        z = z.reshape(B, h * w, -1)[inv].reshape(B * h * w, -1)
        lg = lg.reshape(B, h * w, -1)[inv].reshape(B * h * w, -1)
        return z, lg

    for step in range(len(idx["steps"])):
        for g in opt.param_groups:
            g["lr"] = lr0 * 0.5 * (1 + math.cos(math.pi * step / total))
        tau_t = dist["teacherTemperature"] if step >= warm_t else dist["teacherStartTemperature"] + (
            dist["teacherTemperature"] - dist["teacherStartTemperature"]) * step / warm_t
        a0, a1, b0 = view(step, "a0"), view(step, "a1"), view(step, "b0")
        M = idx["steps"][step]["pairs"]
        pairs = np.fromfile(os.path.join(args.batches, f"step_{step:04d}.pairs.u32"), dtype="<u4").astype(np.int64)
        pa, pb, img = (torch.from_numpy(pairs[i * M:(i + 1) * M]) for i in range(3))
        zq, lq, (h, w) = heads(q, a0)
        with torch.no_grad():
            za, _ = keyed(a1)
            zt, lt = keyed(b0)
        zq_up, zt_up, za_up = (upsample(x, B, h, w, S) for x in (zq, zt, za))
        lq_up, lt_up = upsample(lq, B, h, w, S), upsample(lt, B, h, w, S)
        alpha = dist["affinityScale"]
        s_aff = (torch.bmm(zq_up, za_up.transpose(1, 2)) * alpha)[img, pa]
        t_aff = (torch.bmm(zt_up, za_up.transpose(1, 2)) * alpha)[img, pb]
        keep = {"both": slice(None), "prototypes": slice(S * S, None), "affinity": slice(0, S * S)}[args.parts]
        sv = torch.cat([s_aff, lq_up[img, pa]], 1)[:, keep]
        tv = torch.cat([t_aff, lt_up[img, pb]], 1).detach()[:, keep]
        loss = -(F.softmax((tv - center[keep]) / tau_t, 1) * F.log_softmax(sv / dist["studentTemperature"], 1)).sum(1).mean()
        opt.zero_grad(set_to_none=True)
        (cfg["loss"]["distill"]["weight"] * loss).backward()
        if step < args.freeze_prototypes:
            q["protos"].weight_v.grad = None
        opt.step()
        with torch.no_grad():
            for pk, pq in zip(k.parameters(), q.parameters()):
                pk.mul_(ema).add_(pq.detach(), alpha=1 - ema)
            center[keep] = dist["centerMomentum"] * center[keep] + (1 - dist["centerMomentum"]) * tv.mean(0)
            mean_cos = (zt.reshape(B, h * w, -1) @ za.reshape(B, h * w, -1).transpose(1, 2)).mean().item()
        print(json.dumps({"step": step, "loss_distill": loss.item(), "mean_cos": mean_cos,
                          "uniform": math.log(tv.shape[1])}), flush=True)


if __name__ == "__main__":
    main()
