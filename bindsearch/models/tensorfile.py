"""Writing safetensors files one tensor at a time.

``safetensors.torch.save_file`` first turns every tensor into a Python ``bytes`` object, so
saving ImageBind's vision tower (2.5 GB of fp32) would need that much extra memory on top of
the source. This writer produces the same format (an 8-byte little-endian header length, a JSON
header padded to 8 bytes, then the raw tensor bytes back to back) while streaming each tensor
straight from its (often memory-mapped) storage, so peak memory is one tensor. Files are read
back with ``safetensors.safe_open``.
"""

from __future__ import annotations

import json
import os
import struct
import sys
from collections.abc import Mapping
from pathlib import Path

import torch
from torch import Tensor

from bindsearch.errors import WeightsError

_DTYPE_NAMES: dict[torch.dtype, str] = {
    torch.float64: "F64",
    torch.float32: "F32",
    torch.float16: "F16",
    torch.bfloat16: "BF16",
    torch.int64: "I64",
    torch.int32: "I32",
    torch.int16: "I16",
    torch.int8: "I8",
    torch.uint8: "U8",
    torch.bool: "BOOL",
}
_ALIGN_BYTES = 8


def save_safetensors(
    tensors: Mapping[str, Tensor], path: Path, *, metadata: Mapping[str, str] | None = None
) -> int:
    """Write ``tensors`` to ``path`` in safetensors format; return the file size in bytes.

    Tensors are stored widest dtype first so that every tensor's data starts at a multiple of
    its element size. The file is flushed and fsynced before returning; writing under a temporary
    name and renaming it into place is the caller's job.
    """
    if sys.byteorder != "little":
        raise WeightsError("safetensors files are little-endian; big-endian hosts are unsupported")
    plain = {name: _plain(name, t) for name, t in tensors.items()}
    order = sorted(plain, key=lambda n: -plain[n].element_size())
    header: dict[str, object] = {}
    if metadata:
        header["__metadata__"] = dict(metadata)
    offset = 0
    for name in order:
        t = plain[name]
        nbytes = t.numel() * t.element_size()
        header[name] = {
            "dtype": _DTYPE_NAMES[t.dtype],
            "shape": list(t.shape),
            "data_offsets": [offset, offset + nbytes],
        }
        offset += nbytes
    encoded = json.dumps(header, separators=(",", ":")).encode("utf-8")
    encoded += b" " * (-(len(encoded)) % _ALIGN_BYTES)
    with open(path, "wb") as f:
        f.write(struct.pack("<Q", len(encoded)))
        f.write(encoded)
        for name in order:
            f.write(plain[name].reshape(-1).view(torch.uint8).numpy().data)
        f.flush()
        os.fsync(f.fileno())
    return 8 + len(encoded) + offset


def _plain(name: str, t: Tensor) -> Tensor:
    """A contiguous CPU tensor of a supported dtype, or ``WeightsError``."""
    if not isinstance(t, Tensor):
        raise WeightsError(f"checkpoint entry {name!r} is a {type(t).__name__}, not a tensor")
    if t.dtype not in _DTYPE_NAMES:
        raise WeightsError(f"checkpoint tensor {name!r} has unsupported dtype {t.dtype}")
    return t.detach().to("cpu").contiguous()
