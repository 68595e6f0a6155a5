"""Architecture configuration of the ImageBind model."""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import Any

from bindsearch.errors import ConfigError

#: CLIP BPE vocabulary size and text context length (fixed by the tokenizer and checkpoint).
TEXT_VOCAB_SIZE = 49408
TEXT_CONTEXT_LENGTH = 77

# Constructor defaults of the reference ``ImageBindModel`` (an unreleased smaller config); a
# reference-format config is these with the caller's keyword overrides applied.
_REFERENCE_DEFAULTS: dict[str, Any] = {
    "video_frames": 2,
    "kernel_size": (2, 14, 14),
    "audio_kernel_size": 16,
    "audio_stride": 10,
    "out_embed_dim": 768,
    "vision_embed_dim": 1024,
    "vision_num_blocks": 24,
    "vision_num_heads": 16,
    "audio_embed_dim": 768,
    "audio_num_blocks": 12,
    "audio_num_heads": 12,
    "audio_num_mel_bins": 128,
    "audio_target_len": 204,
    "audio_drop_path": 0.1,
    "text_embed_dim": 768,
    "text_num_blocks": 12,
    "text_num_heads": 12,
    "depth_embed_dim": 384,
    "depth_kernel_size": 16,
    "depth_num_blocks": 12,
    "depth_num_heads": 8,
    "depth_drop_path": 0.0,
    "thermal_embed_dim": 768,
    "thermal_kernel_size": 16,
    "thermal_num_blocks": 12,
    "thermal_num_heads": 12,
    "thermal_drop_path": 0.0,
    "imu_embed_dim": 512,
    "imu_kernel_size": 8,
    "imu_num_blocks": 6,
    "imu_num_heads": 8,
    "imu_drop_path": 0.7,
}


@dataclass(frozen=True)
class ImageBindConfig:
    """Widths, depths and input geometry of all six towers.

    Field names are the reference constructor's keyword names, so a reference-format config maps
    over one to one (see :meth:`from_reference`). Defaults describe ``imagebind_huge``.
    """

    video_frames: int = 2
    kernel_size: tuple[int, int, int] = (2, 14, 14)
    audio_kernel_size: int = 16
    audio_stride: int = 10
    out_embed_dim: int = 1024
    vision_embed_dim: int = 1280
    vision_num_blocks: int = 32
    vision_num_heads: int = 16
    audio_embed_dim: int = 768
    audio_num_blocks: int = 12
    audio_num_heads: int = 12
    audio_num_mel_bins: int = 128
    audio_target_len: int = 204
    audio_drop_path: float = 0.1
    text_embed_dim: int = 1024
    text_num_blocks: int = 24
    text_num_heads: int = 16
    depth_embed_dim: int = 384
    depth_kernel_size: int = 16
    depth_num_blocks: int = 12
    depth_num_heads: int = 8
    depth_drop_path: float = 0.0
    thermal_embed_dim: int = 768
    thermal_kernel_size: int = 16
    thermal_num_blocks: int = 12
    thermal_num_heads: int = 12
    thermal_drop_path: float = 0.0
    imu_embed_dim: int = 512
    imu_kernel_size: int = 8
    imu_num_blocks: int = 6
    imu_num_heads: int = 8
    imu_drop_path: float = 0.7
    # Input geometry the reference hard-codes (not constructor arguments there).
    image_size: int = 224
    imu_channels: int = 6
    imu_length: int = 2000

    def __post_init__(self) -> None:
        for tower in ("vision", "audio", "text", "depth", "thermal", "imu"):
            dim = getattr(self, f"{tower}_embed_dim")
            heads = getattr(self, f"{tower}_num_heads")
            if dim <= 0 or heads <= 0 or dim % heads:
                raise ConfigError(
                    f"{tower}_embed_dim={dim} must be a positive multiple of "
                    f"{tower}_num_heads={heads}"
                )
        if self.video_frames != self.kernel_size[0]:
            raise ConfigError(
                f"video_frames={self.video_frames} must equal the temporal kernel "
                f"{self.kernel_size[0]}: the vision stem makes one token time step per clip"
            )
        if self.image_size % self.kernel_size[1] or self.imu_length % self.imu_kernel_size:
            raise ConfigError("image_size and imu_length must be multiples of their kernels")

    @classmethod
    def from_reference(cls, **kwargs: Any) -> ImageBindConfig:
        """Build from the reference ``ImageBindModel(**kwargs)`` keyword arguments.

        Unspecified arguments take the reference constructor's defaults (not huge's), exactly as
        the reference would. Unknown names raise ``ConfigError``.
        """
        unknown = sorted(set(kwargs) - set(_REFERENCE_DEFAULTS))
        if unknown:
            raise ConfigError(f"unknown reference config keys: {', '.join(unknown)}")
        merged = {**_REFERENCE_DEFAULTS, **kwargs}
        merged["kernel_size"] = tuple(merged["kernel_size"])
        return cls(**merged)

    def to_reference(self) -> dict[str, Any]:
        """The reference constructor's keyword arguments for this config."""
        values = dataclasses.asdict(self)
        return {key: values[key] for key in _REFERENCE_DEFAULTS}

    def vision_grid(self) -> tuple[int, int]:
        """Patch grid (rows, cols) of the vision tower."""
        side = self.image_size // self.kernel_size[1]
        return side, side

    def audio_grid(self) -> tuple[int, int]:
        """Patch grid (freq, time) of the audio tower: a strided conv over the mel spectrogram."""
        k, s = self.audio_kernel_size, self.audio_stride
        return (
            (self.audio_num_mel_bins - k) // s + 1,
            (self.audio_target_len - k) // s + 1,
        )
