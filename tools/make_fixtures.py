"""Generate tests/fixtures/foundation.safetensors with PyTorch reference values.

Inputs are stored as F32; expected outputs are computed in float64 from the
F32-rounded inputs (so the only error in the fixture is the final F32 store).
Run with Debian's interpreter: /usr/bin/python3 tools/make_fixtures.py
"""
import os
import sys

import torch
import torch.nn.functional as F

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import safetensors_io  # noqa: E402

OUT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..",
                   "tests", "fixtures", "foundation.safetensors")


def f32(t):
    """Round to float32 (what is stored), then back to float64 for the math."""
    return t.float().double()


def grad_of(fn, x, dy=None):
    """Return (y, dL/dx) with L = y if dy is None else sum(y * dy)."""
    x = x.clone().requires_grad_(True)
    y = fn(x)
    loss = y if dy is None else (y * dy).sum()
    (dx,) = torch.autograd.grad(loss, x)
    return y.detach(), dx


def main():
    torch.manual_seed(0)
    d = torch.float64
    out = {}

    # Hard-target cross-entropy (mean over the batch).
    logits = f32(torch.randn(16, 10, dtype=d) * 3)
    target = torch.randint(0, 10, (16,))
    loss, grad = grad_of(lambda x: F.cross_entropy(x, target), logits)
    out.update({"ce.logits": logits, "ce.target": target,
                "ce.loss": loss, "ce.grad": grad})

    # Soft-target cross-entropy: mean over rows of -sum(p * log_softmax).
    logits = f32(torch.randn(8, 12, dtype=d) * 2)
    target = f32(torch.softmax(torch.randn(8, 12, dtype=d) * 2, dim=1))
    loss, grad = grad_of(
        lambda x: -(target * F.log_softmax(x, dim=1)).sum(dim=1).mean(), logits)
    out.update({"ce_soft.logits": logits, "ce_soft.target": target,
                "ce_soft.loss": loss, "ce_soft.grad": grad})

    # Row-wise L2 normalisation, with tiny and huge rows to stress scaling.
    x = torch.randn(12, 32, dtype=d)
    x[3] *= 1e-3
    x[7] *= 1e3
    x = f32(x)
    dy = f32(torch.randn(12, 32, dtype=d))
    y, dx = grad_of(lambda t: F.normalize(t, dim=1), x, dy)
    out.update({"l2.x": x, "l2.dy": dy, "l2.y": y, "l2.dx": dx})

    for name, fn in (("softmax", torch.softmax),
                     ("log_softmax", torch.log_softmax)):
        x = f32(torch.randn(9, 17, dtype=d) * 4)
        dy = f32(torch.randn(9, 17, dtype=d))
        y, dx = grad_of(lambda t: fn(t, dim=1), x, dy)
        out.update({f"{name}.x": x, f"{name}.dy": dy,
                    f"{name}.y": y, f"{name}.dx": dx})

    # Store floats as F32, integer targets as I64.
    out = {k: (v.float() if v.is_floating_point() else v.long())
           for k, v in out.items()}
    meta = {"generator": "tools/make_fixtures.py", "torch": torch.__version__}
    path = os.path.normpath(OUT)
    safetensors_io.save(path, out, meta)

    back, back_meta = safetensors_io.load(path)
    assert back_meta == meta
    assert all(torch.equal(back[k], out[k]) for k in out)
    print(f"wrote {path} ({os.path.getsize(path)} bytes, {len(out)} tensors)")
    for k in sorted(out):
        v = out[k]
        extra = f" = {v.item():.9g}" if v.dim() == 0 else ""
        print(f"  {k:20s} {str(v.dtype):14s} {list(v.shape)}{extra}")


if __name__ == "__main__":
    main()
