"""Generate tests/fixtures/losses.safetensors: PyTorch references of the two PLRC losses (the release's forms).

- Point-level region contrast (labels (image, region), -1 = invalid):
  F.grid_sample (bilinear, zeros padding, align_corners=False) of the NCHW maps made from the NHWC rows,
  F.normalize, and an explicit SupCon over the points of both views (A1 detached).
- Image-level InfoNCE (section 4.3): MoCo with a queue, target 0 (F.cross_entropy).

Inputs are stored as F32; losses and gradients w.r.t. the A0 rows are computed in float64 from the
F32-rounded inputs. Run with Debian's interpreter: /usr/bin/python3 tools/make_loss_fixtures.py
"""
import os
import sys

import torch
import torch.nn.functional as F

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import safetensors_io  # noqa: E402

OUT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..",
                   "tests", "fixtures", "losses.safetensors")
D64 = torch.float64


def f32(t):
    """Round to float32 (what is stored), then back to float64 for the math."""
    return t.float().double()


def sample_points(rows, pts, b, h, w):
    """Bilinear samples [P, D] of NHWC rows [b*h*w, D] at feature-grid points (x, y) [P, 2]."""
    d = rows.shape[1]
    p = pts.shape[0]
    maps = rows.view(b, h, w, d).permute(0, 3, 1, 2)  # NCHW
    grid = torch.stack([2 * pts[:, 0] / w - 1, 2 * pts[:, 1] / h - 1], dim=1)
    grid = grid.view(b, 1, p // b, 2)
    out = F.grid_sample(maps, grid, mode="bilinear", padding_mode="zeros",
                        align_corners=False)  # [b, D, 1, ppi]
    return out[:, :, 0, :].permute(0, 2, 1).reshape(p, d)


def supcon(feats, labels, tau, scale):
    """SupCon over rows of `feats` [N, D]; label -1 rows take no part."""
    n = feats.shape[0]
    f = F.normalize(feats, dim=1)
    sim = f @ f.t() / tau
    valid = labels >= 0
    others = valid[None, :] & ~torch.eye(n, dtype=torch.bool, device=feats.device)
    pos = (labels[:, None] == labels[None, :]) & others & valid[:, None]
    npos = pos.sum(1)
    anchors = npos > 0
    sim_a, others_a, pos_a = sim[anchors], others[anchors], pos[anchors]
    log_z = torch.logsumexp(sim_a.masked_fill(~others_a, float("-inf")), dim=1, keepdim=True)
    log_prob = sim_a - log_z
    mean_pos = torch.where(pos_a, log_prob, torch.zeros_like(log_prob)).sum(1) / npos[anchors]
    return -scale * mean_pos.mean()


def point_case(out, b, h, w, d, regions, points, invalid):
    ppi = regions * points
    p = b * ppi
    y0 = f32(torch.randn(b * h * w, d, dtype=D64))
    y1 = f32(torch.randn(b * h * w, d, dtype=D64))

    def coords():
        xy = torch.rand(p, 2, dtype=D64) * torch.tensor([w + 0.6, h + 0.6], dtype=D64) - 0.3
        centre = torch.rand(p) < 0.2  # some points exactly on cell centres
        cells = torch.stack([torch.randint(0, w, (p,)), torch.randint(0, h, (p,))], 1).double() + 0.5
        xy[centre] = cells[centre]
        return f32(xy)

    a0, a1 = coords(), coords()
    labels = torch.tensor([i // points for i in range(p)])  # slot index b*regions + s
    for slot in invalid:
        labels[labels == slot] = -1
    tau, scale = 0.2, 0.2 / 0.07
    x = y0.clone().requires_grad_(True)
    feats = torch.cat([sample_points(x, a0, b, h, w), sample_points(y1, a1, b, h, w).detach()])
    loss = supcon(feats, torch.cat([labels, labels]), tau, scale)
    (grad,) = torch.autograd.grad(loss, x)
    out.update({"point.y1A0": y0, "point.y1A1": y1, "point.a0": a0, "point.a1": a1,
                "point.labels": labels, "point.loss": loss.detach().reshape(1), "point.dY1": grad,
                "point.dims": torch.tensor([b, h, w, d, ppi]),
                "point.params": torch.tensor([tau, scale], dtype=D64)})


def image_case(out, b, hw, d, q, temp):
    y0 = f32(torch.randn(b * hw, d, dtype=D64))
    y1 = f32(torch.randn(b * hw, d, dtype=D64) + y0)  # correlated views
    s = 1 / (d / 3) ** 0.5
    queue = f32((torch.rand(q, d, dtype=D64) * 2 - 1) * s)
    x = y0.clone().requires_grad_(True)
    qv = F.normalize(x.view(b, hw, d).mean(1), dim=1)
    kv = F.normalize(y1.view(b, hw, d).mean(1), dim=1).detach()
    l_pos = (qv * kv).sum(1, keepdim=True)
    l_neg = qv @ queue.t()
    logits = torch.cat([l_pos, l_neg], dim=1) / temp
    loss = F.cross_entropy(logits, torch.zeros(b, dtype=torch.long))
    (grad,) = torch.autograd.grad(loss, x)
    out.update({"image.y1A0": y0, "image.y1A1": y1, "image.queue": queue,
                "image.loss": loss.detach().reshape(1), "image.dY1": grad, "image.keys": kv,
                "image.dims": torch.tensor([b, hw, d, q]),
                "image.params": torch.tensor([temp], dtype=D64)})


def main():
    torch.manual_seed(0)
    out = {}
    point_case(out, b=3, h=3, w=4, d=16, regions=2, points=4, invalid=[3])
    image_case(out, b=4, hw=9, d=16, q=40, temp=0.2)
    out = {k: (v.float() if v.is_floating_point() else v.long()) for k, v in out.items()}
    meta = {"generator": "tools/make_loss_fixtures.py", "torch": torch.__version__}
    path = os.path.normpath(OUT)
    safetensors_io.save(path, out, meta)
    back, back_meta = safetensors_io.load(path)
    assert back_meta == meta
    assert all(torch.equal(back[k], out[k]) for k in out)
    print(f"wrote {path} ({os.path.getsize(path)} bytes): point loss {out['point.loss'].item():.6f}, "
          f"image loss {out['image.loss'].item():.6f}")


if __name__ == "__main__":
    main()
