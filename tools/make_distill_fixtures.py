"""Generate tests/fixtures/distill.safetensors: point affinity distillation in the NAIVE release form.

Independent of the TypeScript code: the h x w maps (stored as NHWC rows [B*h*w, C]) are reshaped to
NCHW, upsampled with F.interpolate(bilinear, align_corners=False) to S x S, and for every matched
pair m = (b, u, v) the full student and teacher vectors of length S*S + K are gathered explicitly:
  s_m = [alpha * Zq_up[b,u] . Za_up[b,j] for all j, Lq_up[b,u]]
  t_m = [alpha * Zt_up[b,v] . Za_up[b,j] for all j, Lt_up[b,v]]
Loss (DINO CE with centre c): mean_m -sum_d softmax((t_m - c)/tau_t)[d] * log_softmax(s_m/tau_s)[d];
gradients w.r.t. Zq and Lq by autograd; centre after the EMA c' = mu*c + (1-mu)*mean_m t_m.

Inputs are stored as F32, pair indices as I64; expected values are computed in float64 from the
F32-rounded inputs. Sizes and scalars are in the metadata ("<case>.B", "<case>.tau_t", ...).
Run with Debian's interpreter: /usr/bin/python3 tools/make_distill_fixtures.py
"""
import os
import sys

import torch
import torch.nn.functional as F

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import safetensors_io  # noqa: E402

OUT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..",
                   "tests", "fixtures", "distill.safetensors")
D64 = torch.float64


def f32(t):
    """Round to float32 (what is stored), then back to float64 for the math."""
    return t.float().double()


def unit_rows(n, d):
    x = torch.randn(n, d, dtype=D64)
    return f32(x / x.norm(dim=1, keepdim=True))


def upsample(rows, B, h, w, S):
    """[B*h*w, C] NHWC rows -> [B, S*S, C] bilinearly upsampled (align_corners=False)."""
    c = rows.shape[1]
    nchw = rows.reshape(B, h, w, c).permute(0, 3, 1, 2)
    up = F.interpolate(nchw, size=(S, S), mode="bilinear", align_corners=False)
    return up.reshape(B, c, S * S).permute(0, 2, 1)


def case(name, B, h, w, S, D, K, per_image, alpha, tau_t, tau_s=0.1, mu=0.9):
    n = B * h * w
    zq, zt, za = unit_rows(n, D), unit_rows(n, D), unit_rows(n, D)
    lq = f32(torch.randn(n, K, dtype=D64) * 0.5)
    lt = f32(torch.randn(n, K, dtype=D64) * 0.5)
    center = f32(torch.randn(S * S + K, dtype=D64) * 0.2)
    img = torch.arange(B).repeat_interleave(per_image)
    pa = torch.randint(0, S * S, (B * per_image,))
    pb = torch.randint(0, S * S, (B * per_image,))

    zq_g = zq.clone().requires_grad_(True)
    lq_g = lq.clone().requires_grad_(True)
    zq_up, zt_up, za_up = (upsample(x, B, h, w, S) for x in (zq_g, zt, za))
    lq_up, lt_up = upsample(lq_g, B, h, w, S), upsample(lt, B, h, w, S)
    # explicit gathers: [M, D] point vectors against [M, S*S, D] affinity targets
    s_aff = torch.bmm(za_up[img], zq_up[img, pa].unsqueeze(2)).squeeze(2) * alpha
    t_aff = torch.bmm(za_up[img], zt_up[img, pb].unsqueeze(2)).squeeze(2) * alpha
    s = torch.cat([s_aff, lq_up[img, pa]], dim=1)
    t = torch.cat([t_aff, lt_up[img, pb]], dim=1).detach()
    p_t = F.softmax((t - center) / tau_t, dim=1)
    loss = -(p_t * F.log_softmax(s / tau_s, dim=1)).sum(dim=1).mean()
    dzq, dlq = torch.autograd.grad(loss, (zq_g, lq_g))
    new_center = mu * center + (1 - mu) * t.mean(dim=0)

    tensors = {"zq": zq, "zt": zt, "za": za, "lq": lq, "lt": lt, "center": center,
               "pair_a": pa, "pair_b": pb, "pair_image": img,
               "loss": loss.detach().reshape(1), "dzq": dzq, "dlq": dlq, "center_new": new_center}
    meta = {"B": B, "h": h, "w": w, "S": S, "D": D, "K": K,
            "alpha": repr(alpha), "tau_s": repr(tau_s), "tau_t": repr(tau_t), "mu": repr(mu)}
    return ({f"{name}.{k}": v for k, v in tensors.items()},
            {f"{name}.{k}": v for k, v in meta.items()})


def main():
    torch.manual_seed(0)
    torch.set_num_threads(2)
    out, meta = {}, {}
    for t, m in (case("a", B=2, h=3, w=4, S=12, D=8, K=10, per_image=60, alpha=0.5, tau_t=0.05),
                 case("b", B=3, h=3, w=3, S=12, D=8, K=16, per_image=40, alpha=1 / 128, tau_t=0.04)):
        out.update(t)
        meta.update(m)
    out = {k: (v.float() if v.is_floating_point() else v.long()) for k, v in out.items()}
    meta.update({"generator": "tools/make_distill_fixtures.py", "torch": torch.__version__,
                 "cases": "a,b"})
    path = os.path.normpath(OUT)
    safetensors_io.save(path, out, meta)
    back, back_meta = safetensors_io.load(path)
    assert back_meta == {k: str(v) for k, v in meta.items()}
    assert all(torch.equal(back[k], out[k]) for k in out)
    print(f"wrote {path} ({os.path.getsize(path)} bytes)")


if __name__ == "__main__":
    main()
