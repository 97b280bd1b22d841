"""The PLRC training step in PyTorch, at the sizes `plrc bench step --json` reports, for a side-by-side ratio.

Same work as plrc's step: three backbone+head forwards (A0 with gradients; A1 and B0 through the momentum
encoder without), point-level region contrast (grid_sample points, SupCon), image-level InfoNCE against a
queue, point affinity distillation in the release's naive form (upsampled maps, materialised [M, S²+K]
vectors), one backward, SGD with momentum and weight decay, EMA, queue write and centre update. fp32,
TF32 off. Ghost BN: the batch is split into groups of `bnGroupSize` images for every BN.

usage: plrc bench step --json [...] | /usr/bin/python3 tools/torch_reference/plrc_step.py [--steps N] [--threads T]
Prints one JSON object: {"suite": "step-torch", msPerStep, imagesPerS, ...}. Not part of CI.
"""
import argparse
import json
import os
import sys
import time

import torch
import torch.nn.functional as F
from torch import nn
from torchvision.models.resnet import BasicBlock, Bottleneck

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))
sys.dont_write_bytecode = True
from make_loss_fixtures import sample_points, supcon  # noqa: E402
from make_resnet_fixtures import NarrowResNet  # noqa: E402

ARCH = {18: (BasicBlock, [2, 2, 2, 2]), 34: (BasicBlock, [3, 4, 6, 3]), 50: (Bottleneck, [3, 4, 6, 3])}


class GhostBN(nn.BatchNorm2d):
    """BatchNorm over groups of `images` images (the one-device stand-in for per-GPU BN)."""

    images = 32

    def forward(self, x):
        g = max(1, x.shape[0] // self.images)
        if g == 1 or not self.training:
            return super().forward(x)
        return torch.cat([super(GhostBN, self).forward(c) for c in x.chunk(g)])


def encoder(cfg, s):
    block, layers = ARCH[cfg["depth"]]
    backbone = NarrowResNet(block, layers, cfg["width"])
    for name, m in list(backbone.named_modules()):
        for cname, child in list(m.named_children()):
            if isinstance(child, nn.BatchNorm2d):
                setattr(m, cname, GhostBN(child.num_features))
    c5 = backbone.layer4[-1].conv3.out_channels if block is Bottleneck else backbone.layer4[-1].conv2.out_channels
    point = nn.Sequential(nn.Linear(c5, s["pointHidden"]), nn.ReLU(), nn.Linear(s["pointHidden"], s["pointDim"]))
    dino = nn.Sequential(nn.Linear(c5, s["dinoHidden"]), nn.BatchNorm1d(s["dinoHidden"]), nn.ReLU(),
                         nn.Linear(s["dinoHidden"], s["dinoHidden"]), nn.BatchNorm1d(s["dinoHidden"]), nn.ReLU(),
                         nn.Linear(s["dinoHidden"], s["bottleneck"]))
    protos = nn.utils.weight_norm(nn.Linear(s["bottleneck"], s["prototypes"], bias=False))
    protos.weight_g.data.fill_(1)
    protos.weight_g.requires_grad = False
    return nn.ModuleDict({"backbone": backbone, "point": point, "dino": dino, "protos": protos})


def run(enc, x):
    c5 = enc["backbone"].c5(x)  # NCHW
    b, c, h, w = c5.shape
    rows = c5.permute(0, 2, 3, 1).reshape(b * h * w, c)
    y1 = enc["point"](rows)
    z = F.normalize(enc["dino"](rows), dim=1)
    return y1, z, enc["protos"](z), (h, w)


def upsample(rows, b, h, w, s):
    c = rows.shape[1]
    up = F.interpolate(rows.reshape(b, h, w, c).permute(0, 3, 1, 2), size=(s, s), mode="bilinear",
                       align_corners=False)
    return up.reshape(b, c, s * s).permute(0, 2, 1)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--steps", type=int, default=5)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    args = ap.parse_args()
    plrc = json.loads([line for line in sys.stdin.read().splitlines() if line.startswith("{")][-1])
    torch.set_num_threads(args.threads)
    torch.backends.cuda.matmul.allow_tf32 = False
    torch.backends.cudnn.allow_tf32 = False
    dev = torch.device(args.device)
    s = plrc["sizes"]
    GhostBN.images = s["bnGroupSize"]
    B, R = plrc["batch"], plrc["resolution"]
    if plrc.get("accumulate", 1) != 1:
        sys.exit("plrc_step.py: this twin runs one pass per step; measure plrc with accumulation 1 "
                 "(plrc bench step --batch B, or --set train.accumulate=1)")
    S = R // 4
    torch.manual_seed(0)
    q_enc = encoder(plrc, s).to(dev).train()
    k_enc = encoder(plrc, s).to(dev).train()
    k_enc.load_state_dict(q_enc.state_dict())
    for p in k_enc.parameters():
        p.requires_grad = False
    params = [p for p in q_enc.parameters() if p.requires_grad]
    opt = torch.optim.SGD(params, lr=0.05, momentum=0.9, weight_decay=1e-4)
    D = s["pointDim"]
    queue = F.normalize(torch.rand(s["queue"], D, device=dev) * 2 - 1, dim=1)
    center = torch.zeros(S * S + s["prototypes"], device=dev)
    P = B * s["regions"] * s["points"]
    M = B * s["pairsPerImage"]

    def step(i):
        nonlocal queue, center
        a0, a1, b0 = (torch.randn(B, 3, R, R, device=dev) for _ in range(3))
        y1q, zq, lq, (h, w) = run(q_enc, a0)
        with torch.no_grad():
            y1k, za, _, _ = run(k_enc, a1)
            _, zt, lt, _ = run(k_enc, b0)
        pts_q = torch.rand(P, 2, device=dev) * torch.tensor([w, h], device=dev)
        pts_k = torch.rand(P, 2, device=dev) * torch.tensor([w, h], device=dev)
        labels = torch.arange(B * s["regions"], device=dev).repeat_interleave(s["points"])
        feats = torch.cat([sample_points(y1q, pts_q, B, h, w), sample_points(y1k, pts_k, B, h, w)])
        l_point = supcon(feats, torch.cat([labels, labels]), 0.2, 0.2 / 0.07)
        qv = F.normalize(y1q.reshape(B, h * w, D).mean(1), dim=1)
        kv = F.normalize(y1k.reshape(B, h * w, D).mean(1), dim=1)
        logits = torch.cat([(qv * kv).sum(1, keepdim=True), qv @ queue.t()], 1) / 0.2
        l_img = F.cross_entropy(logits, torch.zeros(B, dtype=torch.long, device=dev))
        img = torch.arange(B, device=dev).repeat_interleave(s["pairsPerImage"])
        pa = torch.randint(0, S * S, (M,), device=dev)
        pb = torch.randint(0, S * S, (M,), device=dev)
        zq_up, zt_up, za_up = (upsample(x, B, h, w, S) for x in (zq, zt, za))
        lq_up, lt_up = upsample(lq, B, h, w, S), upsample(lt, B, h, w, S)
        # as released: per-image affinity maps [B, S², S²] by batched GEMM, then row gathers [M, S²]
        s_aff = (torch.bmm(zq_up, za_up.transpose(1, 2)) / 128)[img, pa]
        t_aff = (torch.bmm(zt_up, za_up.transpose(1, 2)) / 128)[img, pb]
        sv = torch.cat([s_aff, lq_up[img, pa]], 1)
        tv = torch.cat([t_aff, lt_up[img, pb]], 1).detach()
        l_dist = -(F.softmax((tv - center) / 0.07, 1) * F.log_softmax(sv / 0.1, 1)).sum(1).mean()
        loss = 0.7 * l_img + 0.3 * l_point + 0.3 * l_dist
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        with torch.no_grad():
            for pk, pq in zip(k_enc.parameters(), q_enc.parameters()):
                pk.mul_(0.999).add_(pq.detach(), alpha=0.001)
            queue = torch.cat([kv, queue[:-B]])
            center = 0.9 * center + 0.1 * tv.mean(0)
        return loss.item()

    for i in range(2):
        step(i)
    if dev.type == "cuda":
        torch.cuda.synchronize()
        torch.cuda.reset_peak_memory_stats()
    t0 = time.perf_counter()
    for i in range(args.steps):
        step(i)
    if dev.type == "cuda":
        torch.cuda.synchronize()
    ms = (time.perf_counter() - t0) * 1000 / args.steps
    out = {"suite": "step-torch", "device": str(dev), "threads": args.threads, "torch": torch.__version__,
           "batch": B, "resolution": R, "depth": plrc["depth"], "width": plrc["width"], "steps": args.steps,
           "msPerStep": ms, "imagesPerS": B / (ms / 1000),
           "peakGpuMiB": torch.cuda.max_memory_allocated() / 2**20 if dev.type == "cuda" else None,
           "plrcMsPerStep": plrc["msPerStep"], "plrcOverTorchSpeed": (B / (plrc["msPerStep"] / 1000)) / (B / (ms / 1000))}
    print(json.dumps(out))


if __name__ == "__main__":
    main()
