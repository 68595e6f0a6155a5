"""CPU GEMM library choice: oneDNN and PyTorch's default give the same model, within fp32."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F
from reference import reference_and_ours
from torch.profiler import ProfilerActivity, profile

from bindsearch.errors import ConfigError
from bindsearch.models import gemm
from bindsearch.models.gemm import CPU_GEMM_ENV, CpuGemm, cpu_gemm, resolve_cpu_gemm, set_cpu_gemm

needs_onednn = pytest.mark.skipif(
    not gemm._onednn_available(), reason="this torch build has no oneDNN linear operator"
)

# Wide enough (384) that every trunk GEMM qualifies for oneDNN; shallow to stay quick.
WIDE = {
    "out_embed_dim": 64,
    "vision_embed_dim": 384, "vision_num_blocks": 2, "vision_num_heads": 6,
    "text_embed_dim": 384, "text_num_blocks": 2, "text_num_heads": 6,
    "audio_embed_dim": 384, "audio_num_blocks": 1, "audio_num_heads": 6,
    "depth_embed_dim": 384, "depth_num_blocks": 1, "depth_num_heads": 6,
    "thermal_embed_dim": 384, "thermal_num_blocks": 1, "thermal_num_heads": 6,
    "imu_embed_dim": 512, "imu_num_blocks": 1, "imu_num_heads": 8,
}  # fmt: skip
ONEDNN_OP = "mkldnn::_linear_pointwise"


@pytest.fixture
def restore_gemm():
    yield
    set_cpu_gemm(None)


def _inputs() -> dict[str, torch.Tensor]:
    g = torch.Generator().manual_seed(4)
    ids = torch.randint(1, 49000, (2, 77), generator=g)
    ids[0, 12] = 49407
    ids[1, 76] = 49407
    return {
        "vision": torch.randn(2, 3, 224, 224, generator=g),
        "text": ids,
        "audio": torch.randn(2, 1, 128, 204, generator=g),
        "depth": torch.randn(2, 1, 224, 224, generator=g),
        "thermal": torch.randn(2, 1, 224, 224, generator=g),
        "imu": torch.randn(2, 6, 2000, generator=g),
    }


def _ops_run(fn) -> set[str]:
    with profile(activities=[ProfilerActivity.CPU], acc_events=True) as prof:
        fn()
    return {event.key for event in prof.key_averages()}


def _rel(a: torch.Tensor, b: torch.Tensor) -> float:
    return float(((a - b).norm(dim=-1) / b.norm(dim=-1)).max())


@pytest.fixture(scope="module")
def wide_pair():
    return reference_and_ours(WIDE)


def test_settings_resolve_and_bad_values_name_the_variable(restore_gemm):
    assert resolve_cpu_gemm("torch") is CpuGemm.TORCH
    assert resolve_cpu_gemm(" Torch ") is CpuGemm.TORCH
    expected_onednn = CpuGemm.ONEDNN if gemm._onednn_available() else CpuGemm.TORCH
    assert resolve_cpu_gemm("onednn") is expected_onednn
    amd = gemm._cpu_vendor() == "AuthenticAMD"
    assert resolve_cpu_gemm("auto") is (expected_onednn if amd else CpuGemm.TORCH)
    assert resolve_cpu_gemm(None) is resolve_cpu_gemm("auto")
    with pytest.raises(ConfigError, match=CPU_GEMM_ENV):
        resolve_cpu_gemm("openblas")
    assert set_cpu_gemm("torch") is CpuGemm.TORCH
    assert cpu_gemm() is CpuGemm.TORCH
    assert set_cpu_gemm("auto") is resolve_cpu_gemm("auto")
    assert set_cpu_gemm(CpuGemm.TORCH) is CpuGemm.TORCH
    with pytest.raises(ConfigError, match=CPU_GEMM_ENV):
        set_cpu_gemm("fastest")


def test_environment_variable_selects_the_library(monkeypatch, restore_gemm):
    set_cpu_gemm(None)
    try:
        monkeypatch.setenv(CPU_GEMM_ENV, "torch")
        gemm._configured.cache_clear()
        assert cpu_gemm() is CpuGemm.TORCH
        monkeypatch.setenv(CPU_GEMM_ENV, "fastest")
        gemm._configured.cache_clear()
        with pytest.raises(ConfigError, match="auto, onednn or torch"):
            cpu_gemm()
    finally:
        monkeypatch.undo()
        gemm._configured.cache_clear()


@needs_onednn
@pytest.mark.parametrize("modality", ["vision", "text", "audio", "depth", "thermal", "imu"])
def test_onednn_path_matches_reference_and_torch_gemm(wide_pair, modality, restore_gemm):
    reference, ours = wide_pair
    x = _inputs()[modality]
    with torch.inference_mode():
        expected = F.normalize(reference({modality: x})[modality], dim=-1)
        set_cpu_gemm("torch")
        via_torch = ours.embed(modality, x)
        assert ONEDNN_OP not in _ops_run(lambda: ours.embed(modality, x))
        set_cpu_gemm("onednn")
        via_onednn = ours.embed(modality, x)
        assert ONEDNN_OP in _ops_run(lambda: ours.embed(modality, x))
    assert _rel(via_onednn, expected) <= 1e-5
    assert _rel(via_onednn, via_torch) <= 1e-5


@needs_onednn
def test_onednn_only_without_autograd_and_for_wide_weights(wide_pair, restore_gemm):
    _, ours = wide_pair
    set_cpu_gemm("onednn")
    x = _inputs()["depth"].requires_grad_()
    # Autograd on: the ordinary differentiable F.linear, and gradients flow to the input.
    with torch.enable_grad():
        ops = _ops_run(lambda: ours.embed("depth", x)[:, 0].sum().backward())
    assert ONEDNN_OP not in ops
    assert x.grad is not None and x.grad.abs().sum() > 0
    narrow = torch.randn(64, 64)
    wide = torch.randn(1536, 384)
    with torch.inference_mode():
        assert not gemm.uses_onednn(torch.randn(3, 64), narrow)
        assert gemm.uses_onednn(torch.randn(3, 384), wide)
        assert not gemm.uses_onednn(torch.randn(3, 384, dtype=torch.bfloat16), wide.bfloat16())
        got = gemm.linear(torch.randn(5, 384), wide, None)
    assert got.shape == (5, 1536)
