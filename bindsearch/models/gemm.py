"""Which library runs the trunks' fp32 GEMMs on the CPU.

PyTorch sends a CPU ``F.linear`` to MKL's sgemm. oneDNN's matmul, which PyTorch also ships
(as the ``mkldnn::_linear_pointwise`` operator its compiler uses), runs the trunks faster on
the AMD CPU we measured: on a Zen 3 EPYC the huge vision tower at batch 2 ran 1.11x and 1.18x
faster than with MKL in two interleaved runs of ``benchmarks/encode.py`` (text 1.09x, audio
1.14x; figures in ``benchmarks/RESULTS.md``); at batch 8 the two were about equal. Both are plain fp32 GEMMs;
only the summation order differs (outputs agree to ~1e-6 relative).

The choice, ``BINDSEARCH_CPU_GEMM``:

- ``auto`` (default): oneDNN on AMD x86-64 CPUs where the operator exists, PyTorch's default
  (MKL) elsewhere, where we have no measurement saying otherwise;
- ``onednn``: oneDNN wherever the operator exists (falls back to PyTorch's default if not);
- ``torch``: always PyTorch's default.

oneDNN is used only for inference (autograd off), fp32, CPU tensors, outside autocast; every other
call is the ordinary ``F.linear``.
"""

from __future__ import annotations

import functools
import os
from enum import Enum
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import Tensor

from bindsearch.errors import ConfigError

#: Environment variable selecting the CPU GEMM library: auto, onednn or torch.
CPU_GEMM_ENV = "BINDSEARCH_CPU_GEMM"

#: oneDNN only for weights at least this wide in both dimensions and with at least
#: ``ONEDNN_MIN_WEIGHT_SIZE`` elements. Below that its per-call overhead (~25 us) outweighs the
#: kernel, and on the Zen 3 EPYC some K=256 shapes ran at a third of MKL's speed; at the huge
#: towers' shapes (K, N >= 384, more than 384 x 1152 elements) it was as fast or faster.
ONEDNN_MIN_WEIGHT_DIM = 384
ONEDNN_MIN_WEIGHT_SIZE = 1 << 18


class CpuGemm(str, Enum):
    """Library for the trunks' fp32 CPU GEMMs."""

    TORCH = "torch"
    ONEDNN = "onednn"


def _onednn_available() -> bool:
    if not torch.backends.mkldnn.is_available():
        return False
    try:
        torch.ops.mkldnn._linear_pointwise.default  # noqa: B018 - resolving the op is the check
    except (AttributeError, RuntimeError):
        return False
    return True


def _cpu_vendor() -> str | None:
    """``vendor_id`` of the first CPU (``AuthenticAMD``, ``GenuineIntel``), Linux only."""
    try:
        with Path("/proc/cpuinfo").open(encoding="ascii", errors="replace") as f:
            for line in f:
                if line.startswith("vendor_id"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        return None
    return None


def resolve_cpu_gemm(setting: str | None) -> CpuGemm:
    """The library a setting (``auto``, ``onednn``, ``torch``; None means auto) selects here."""
    value = (setting or "auto").strip().lower()
    if value not in ("auto", "onednn", "torch"):
        raise ConfigError(
            f"{CPU_GEMM_ENV}={setting!r} is not a CPU GEMM choice; use auto, onednn or torch"
        )
    if value == "torch" or not _onednn_available():
        return CpuGemm.TORCH
    if value == "onednn" or _cpu_vendor() == "AuthenticAMD":
        return CpuGemm.ONEDNN
    return CpuGemm.TORCH


@functools.cache
def _configured() -> CpuGemm:
    return resolve_cpu_gemm(os.environ.get(CPU_GEMM_ENV))


_override: CpuGemm | None = None


def cpu_gemm() -> CpuGemm:
    """The library in use: :func:`set_cpu_gemm`'s choice, else ``BINDSEARCH_CPU_GEMM``'s."""
    return _override if _override is not None else _configured()


def set_cpu_gemm(setting: str | CpuGemm | None) -> CpuGemm:
    """Select the CPU GEMM library for this process (None: back to the environment's choice).

    Returns the library now in use (``onednn`` resolves to ``torch`` where oneDNN is missing).
    """
    global _override
    if setting is None:
        _override = None
    else:
        _override = resolve_cpu_gemm(setting.value if isinstance(setting, CpuGemm) else setting)
    return cpu_gemm()


def uses_onednn(x: Tensor, weight: Tensor) -> bool:
    """Whether :func:`linear` runs ``x`` against ``weight`` through oneDNN."""
    out_features, in_features = weight.shape
    return (
        min(out_features, in_features) >= ONEDNN_MIN_WEIGHT_DIM
        and out_features * in_features >= ONEDNN_MIN_WEIGHT_SIZE
        and x.device.type == "cpu"
        and x.dtype == torch.float32
        and weight.dtype == torch.float32
        and not torch.is_grad_enabled()
        and not torch.is_autocast_enabled("cpu")
        and cpu_gemm() is CpuGemm.ONEDNN
    )


def onednn_linear(x: Tensor, weight: Tensor, bias: Tensor | None) -> Tensor:
    """``x @ weight.T + bias`` by oneDNN, unchecked: for callers that asked :func:`uses_onednn`."""
    return torch.ops.mkldnn._linear_pointwise(x, weight, bias, "none", [], "")


def linear(x: Tensor, weight: Tensor, bias: Tensor | None) -> Tensor:
    """``F.linear(x, weight, bias)``, through oneDNN where :func:`uses_onednn` says so."""
    if uses_onednn(x, weight):
        return onednn_linear(x, weight, bias)
    return F.linear(x, weight, bias)
