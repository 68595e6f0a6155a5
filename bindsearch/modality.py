"""The modalities of the ImageBind embedding space."""

from __future__ import annotations

from enum import Enum

from bindsearch.errors import ConfigError


class Modality(str, Enum):
    """One encoder tower of the model. Images and video clips both use ``VISION``."""

    VISION = "vision"
    TEXT = "text"
    AUDIO = "audio"
    DEPTH = "depth"
    THERMAL = "thermal"
    IMU = "imu"

    def __str__(self) -> str:
        return self.value

    @classmethod
    def parse(cls, value: str | Modality) -> Modality:
        """Return the modality named ``value`` (case-insensitive), or raise ``ConfigError``."""
        if isinstance(value, Modality):
            return value
        try:
            return cls(str(value).strip().lower())
        except ValueError:
            names = ", ".join(m.value for m in cls)
            raise ConfigError(f"unknown modality {value!r}; expected one of: {names}") from None


#: All towers, in the reference model's order.
MODALITIES: tuple[Modality, ...] = tuple(Modality)
