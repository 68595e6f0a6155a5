"""The encoder on a CUDA device agrees with the CPU: fp32 closely, the default bf16 autocast
within bf16 tolerance, for every tower and for 6-D video. Skipped without a CUDA device.

Inputs are random tensors in the model's layout, so the file needs only torch (it also runs on
a device machine that lacks the media libraries).
"""

from __future__ import annotations

import numpy as np
import pytest
import torch

from bindsearch import create_encoder
from bindsearch.modality import Modality
from bindsearch.models import get_model_entry

pytestmark = [
    pytest.mark.gpu,
    pytest.mark.skipif(not torch.cuda.is_available(), reason="no CUDA device"),
]

EOT = 49407


def model_input(modality: Modality, batch: int = 3, video: bool = False) -> torch.Tensor:
    """A random batch in the reference layout of ``modality`` (imagebind-tiny geometry)."""
    cfg = get_model_entry("imagebind-tiny").config
    gen = torch.Generator().manual_seed(7)
    size = cfg.image_size
    if modality is Modality.VISION:
        shape = (batch, 2, 3, 2, size, size) if video else (batch, 3, size, size)
        return torch.randn(*shape, generator=gen)
    if modality is Modality.TEXT:
        ids = torch.randint(1, EOT, (batch, 77), generator=gen)
        for row in range(batch):
            end = 5 + 7 * row
            ids[row, end], ids[row, end + 1 :] = EOT, 0
        return ids
    if modality is Modality.AUDIO:
        mel = (batch, 3, 1, cfg.audio_num_mel_bins, cfg.audio_target_len)
        return torch.randn(*mel, generator=gen)
    if modality is Modality.IMU:
        return torch.randn(batch, cfg.imu_channels, cfg.imu_length, generator=gen)
    return torch.randn(batch, 1, size, size, generator=gen)


@pytest.fixture(scope="module")
def encoders() -> dict[str, object]:
    return {
        "cpu": create_encoder("imagebind-tiny", device="cpu"),
        "fp32": create_encoder("imagebind-tiny", device="cuda", dtype="fp32"),
        "bf16": create_encoder("imagebind-tiny", device="cuda"),
    }


def test_cuda_defaults_to_bf16(encoders) -> None:
    assert encoders["bf16"].device.type == "cuda"
    assert encoders["bf16"].dtype == torch.bfloat16


@pytest.mark.parametrize(
    ("modality", "video"),
    [(m, False) for m in Modality] + [(Modality.VISION, True)],
    ids=[m.value for m in Modality] + ["video"],
)
def test_cuda_matches_cpu(encoders, modality: Modality, video: bool) -> None:
    x = model_input(modality, video=video)
    on_cpu = encoders["cpu"].embed_tensor(modality, x)
    fp32 = encoders["fp32"].embed_tensor(modality, x)
    bf16 = encoders["bf16"].embed_tensor(modality, x)
    for out in (fp32, bf16):
        assert out.dtype == np.float32 and out.shape == on_cpu.shape
        np.testing.assert_allclose(np.linalg.norm(out, axis=1), 1.0, atol=1e-5)
    np.testing.assert_allclose(fp32, on_cpu, atol=2e-4)
    cosine = (bf16 * on_cpu).sum(axis=1)
    assert cosine.min() >= 0.99, cosine
    # Rows stay distinguishable: bf16 does not collapse the batch.
    assert not np.allclose(bf16[0], bf16[1], atol=1e-3)


def test_cuda_file_encoding_matches_cpu(encoders) -> None:
    texts = ["a dog barking", "rain on a tin roof", "an engine starting"]
    on_cpu = encoders["cpu"].encode("text", texts)
    on_gpu = encoders["bf16"].encode("text", texts)
    assert ((on_cpu * on_gpu).sum(axis=1) >= 0.99).all()
