"""Minimal .safetensors reader/writer (F32, F16, BF16), so the tool needs only torch and numpy."""
import json
import struct

import numpy as np
import torch

_DTYPES = {"F32": (torch.float32, 4), "F16": (torch.float16, 2), "BF16": (torch.bfloat16, 2)}


def load(path):
    """name → float32 tensor."""
    with open(path, "rb") as f:
        data = f.read()
    (n,) = struct.unpack("<Q", data[:8])
    header = json.loads(data[8:8 + n])
    start = 8 + n
    out = {}
    for name, info in header.items():
        if name == "__metadata__":
            continue
        dtype, size = _DTYPES[info["dtype"]]
        a, b = info["data_offsets"]
        raw = bytearray(data[start + a:start + b])
        if info["dtype"] == "BF16":
            bits = torch.frombuffer(raw, dtype=torch.int16).to(torch.int32) << 16
            t = bits.view(torch.float32)
        else:
            t = torch.frombuffer(raw, dtype=dtype).to(torch.float32)
        out[name] = t.reshape(info["shape"]).clone()
    return out


def save(path, tensors, metadata=None, half=True):
    """Writes name → tensor (sorted by name) as F16 (or F32) with optional string metadata."""
    header = {}
    blobs = []
    offset = 0
    for name in sorted(tensors):
        t = tensors[name].detach().cpu()
        arr = t.to(torch.float16 if half else torch.float32).numpy()
        raw = arr.astype("<f2" if half else "<f4").tobytes()
        header[name] = {"dtype": "F16" if half else "F32", "shape": list(t.shape), "data_offsets": [offset, offset + len(raw)]}
        blobs.append(raw)
        offset += len(raw)
    if metadata:
        header["__metadata__"] = {k: str(v) for k, v in metadata.items()}
    h = json.dumps(header, separators=(",", ":")).encode()
    h += b" " * ((8 - len(h) % 8) % 8)
    with open(path, "wb") as f:
        f.write(struct.pack("<Q", len(h)))
        f.write(h)
        for raw in blobs:
            f.write(raw)
