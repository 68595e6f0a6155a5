"""Test-only access to the reference ImageBind (``imagebind-unofficial``, CC BY-NC-SA 4.0).

bindsearch never imports the reference; tests compare against it. Nothing here is copied
from it. See /work/shared/docs/reference-setup.md for what these shims work around.
"""

from __future__ import annotations

import sys
import warnings
from fractions import Fraction
from types import ModuleType

import numpy as np
import pytest


def _alias_functional_tensor() -> None:
    """PyPI pytorchvideo 0.1.5 imports a torchvision module removed in torchvision 0.17."""
    import torchvision.transforms.functional as F

    sys.modules.setdefault("torchvision.transforms.functional_tensor", F)


def import_reference() -> ModuleType:
    """Return the reference's ``imagebind.data`` module, or skip the calling test."""
    try:
        _alias_functional_tensor()
        with warnings.catch_warnings():  # its dependencies' import-time deprecation notices
            warnings.simplefilter("ignore", DeprecationWarning)
            import imagebind.data as data
    except Exception as exc:  # any import failure means "reference unavailable": skip
        pytest.skip(f"reference imagebind not importable: {type(exc).__name__}: {exc}")
    return data


def import_reference_model() -> ModuleType:
    """Return the reference's ``imagebind.models.imagebind_model`` module, or skip."""
    import_reference()
    try:
        import imagebind.models.imagebind_model as model
    except Exception as exc:
        pytest.skip(f"reference imagebind model not importable: {type(exc).__name__}: {exc}")
    return model


def reference_and_ours(config: dict) -> tuple:
    """The reference ImageBind at ``config`` (seeded random init, non-trivial norms and biases)
    and ours loaded from its state_dict, both in eval mode."""
    import torch

    from bindsearch.models import ImageBindConfig, create_model

    torch.manual_seed(0)
    reference = import_reference_model().ImageBindModel(**config).eval()
    # Non-trivial values for parameters the reference initialises to zero or one.
    with torch.no_grad():
        for name, p in reference.named_parameters():
            if "norm" in name or name.endswith(("bias_k", "bias_v", "bias")):
                p.add_(0.05 * torch.randn_like(p))
    ours = create_model(ImageBindConfig.from_reference(**config), checkpoint=reference.state_dict())
    return reference, ours


def soundfile_load(path, *args, **kwargs):
    """Stand-in for ``torchaudio.load``: float32 ``[C, N]`` tensor and sample rate via soundfile.

    torchaudio 2.9+ decodes through TorchCodec + system FFmpeg, which the test box lacks; for
    WAV/FLAC this returns the same samples ``torchaudio.load`` would.
    """
    import soundfile
    import torch

    data, sample_rate = soundfile.read(str(path), dtype="float32", always_2d=True)  # [N, C]
    return torch.from_numpy(np.ascontiguousarray(data.T)), sample_rate


def pinned_clip_sampler_class() -> type:
    """``ConstantClipsPerVideoSampler`` as at the pytorchvideo commit upstream ImageBind pins.

    PyPI pytorchvideo 0.1.5 spaces clip starts by ``max_start / clips``; the pinned git commit
    (28fe037d) by ``max_start / max(clips - 1, 1)``, so the last clip ends at the end of the
    media. Only audio/video longer than one clip is affected.
    """
    _alias_functional_tensor()
    from pytorchvideo.data.clip_sampling import ClipInfo, ConstantClipsPerVideoSampler

    class PinnedConstantClipsPerVideoSampler(ConstantClipsPerVideoSampler):
        def __call__(self, last_clip_time, video_duration, annotation):
            slack = Fraction(max(video_duration - self._clip_duration, 0))
            step = Fraction(slack, max(self._clips_per_video - 1, 1))
            index = self._current_clip_index
            self._current_clip_index += 1
            is_last = self._current_clip_index >= self._clips_per_video
            if is_last:
                self.reset()
            start = step * index
            return ClipInfo(start, start + self._clip_duration, index, 0, is_last)

    return PinnedConstantClipsPerVideoSampler


def patch_reference_audio(monkeypatch: pytest.MonkeyPatch, data: ModuleType) -> None:
    """Make the reference audio loader run here: soundfile decode, pinned clip sampler."""
    monkeypatch.setattr(data.torchaudio, "load", soundfile_load)
    monkeypatch.setattr(data, "ConstantClipsPerVideoSampler", pinned_clip_sampler_class())
