"""Minimal safetensors reader/writer (Debian ships no safetensors package).

Supports F32, F64, F16 and I64, which is all the fixtures need.
"""
import json
import struct

import torch

_DTYPES = {"F32": torch.float32, "F64": torch.float64,
           "F16": torch.float16, "I64": torch.int64}
_NAMES = {v: k for k, v in _DTYPES.items()}


def save(path, tensors, metadata=None):
    """Write `tensors` (name -> tensor); deterministic bytes.

    Larger element types go first (then by name), as in the reference
    implementation, so every tensor is aligned to its element size.
    """
    header, chunks, offset = {}, [], 0
    if metadata is not None:
        header["__metadata__"] = {k: str(v) for k, v in metadata.items()}
    order = sorted(tensors, key=lambda k: (-tensors[k].element_size(), k))
    for name in order:
        t = tensors[name].detach().contiguous().cpu()
        # numpy gives raw little-endian bytes on every host we run on.
        data = t.numpy().tobytes()
        header[name] = {"dtype": _NAMES[t.dtype], "shape": list(t.shape),
                        "data_offsets": [offset, offset + len(data)]}
        chunks.append(data)
        offset += len(data)
    js = json.dumps(header, separators=(",", ":")).encode()
    js += b" " * (-len(js) % 8)
    with open(path, "wb") as f:
        f.write(struct.pack("<Q", len(js)) + js + b"".join(chunks))


def load(path):
    """Return (dict name -> tensor, metadata dict)."""
    with open(path, "rb") as f:
        raw = f.read()
    (n,) = struct.unpack("<Q", raw[:8])
    header = json.loads(raw[8:8 + n])
    metadata = header.pop("__metadata__", {})
    out = {}
    for name, info in header.items():
        b, e = info["data_offsets"]
        dtype = _DTYPES[info["dtype"]]
        buf = bytearray(raw[8 + n + b:8 + n + e])
        t = torch.frombuffer(buf, dtype=dtype) if buf else torch.empty(0, dtype=dtype)
        out[name] = t.reshape(info["shape"])
    return out, metadata
