"""File -> model input, one module per modality.

Each loader turns one file into a tensor in the model's per-item layout and raises an
``InputError`` subclass naming the file and the reason when it cannot.
"""

from __future__ import annotations

from enum import Enum
from pathlib import Path

from torch import Tensor

from bindsearch.errors import ConfigError
from bindsearch.modality import Modality


class InputKind(str, Enum):
    """What a file holds. Images and videos both feed the vision tower."""

    IMAGE = "image"
    VIDEO = "video"
    TEXT = "text"
    AUDIO = "audio"
    DEPTH = "depth"
    THERMAL = "thermal"
    IMU = "imu"

    @property
    def modality(self) -> Modality:
        """The tower that embeds this kind of input."""
        if self in (InputKind.IMAGE, InputKind.VIDEO):
            return Modality.VISION
        return Modality(self.value)

    @classmethod
    def parse(cls, value: str | InputKind | Modality) -> InputKind:
        """Parse a kind name; the tower name ``vision`` means images."""
        if isinstance(value, InputKind):
            return value
        name = value.value if isinstance(value, Modality) else str(value).strip().lower()
        if name == "vision":
            return cls.IMAGE
        try:
            return cls(name)
        except ValueError:
            names = ", ".join(k.value for k in cls)
            raise ConfigError(f"unknown input kind {value!r}; expected one of: {names}") from None


def load_file(kind: InputKind | str, path: str | Path) -> Tensor:
    """Load one file of ``kind`` with default settings into the model's per-item layout.

    Shapes: image ``[3,224,224]``, video ``[15,3,2,224,224]``, audio ``[3,1,128,204]``,
    depth/thermal ``[1,224,224]``, IMU ``[6,2000]``, text (file contents, one row per
    77-token chunk) ``[S, 77]`` token ids.
    """
    kind = InputKind.parse(kind)
    if kind is InputKind.IMAGE:
        from bindsearch.preprocess.image import load_image

        return load_image(path)
    if kind is InputKind.VIDEO:
        from bindsearch.preprocess.video import load_video

        return load_video(path)
    if kind is InputKind.AUDIO:
        from bindsearch.preprocess.audio import load_audio

        return load_audio(path)
    if kind is InputKind.DEPTH:
        from bindsearch.preprocess.depth import load_depth

        return load_depth(path)
    if kind is InputKind.THERMAL:
        from bindsearch.preprocess.thermal import load_thermal

        return load_thermal(path)
    if kind is InputKind.IMU:
        from bindsearch.preprocess.imu import load_imu

        return load_imu(path)
    from bindsearch.preprocess.text import tokenize_text_file

    return tokenize_text_file(path)


__all__ = ["InputKind", "load_file"]
