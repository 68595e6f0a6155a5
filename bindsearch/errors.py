"""The one error root of bindsearch and its subclasses.

Library code raises these with messages that say what went wrong, what was expected and how
to fix it. It never prints or exits: the CLI renders them at a single boundary.
"""

from __future__ import annotations

from pathlib import Path


class BindsearchError(Exception):
    """Root of every error bindsearch raises on purpose."""


class ConfigError(BindsearchError):
    """A setting, argument or model name is invalid."""


class UnknownModelError(ConfigError):
    """A model name is not in the registry."""


class WeightsError(BindsearchError):
    """Model weights are missing, unreadable or do not fit the architecture."""


class DownloadError(WeightsError):
    """Weights could not be downloaded (no network, HTTP error, disk full, cut connection)."""


class ChecksumError(WeightsError):
    """A weights file does not match its recorded or expected sha256."""


class InputError(BindsearchError):
    """A media file or value cannot be turned into model input.

    Carries the offending ``path`` (when there is one) and a short ``reason`` so that ingest can
    record the failure as data.
    """

    def __init__(self, path: str | Path | None, reason: str) -> None:
        self.path = None if path is None else str(path)
        self.reason = reason
        where = f"{self.path}: " if self.path else ""
        super().__init__(f"{where}{reason}")


class DecodeError(InputError):
    """The file could not be read or decoded (missing, corrupt, truncated, unsupported)."""


class EmptyInputError(InputError):
    """The file decoded but holds no usable content (zero pixels, no samples, empty text)."""


class ShapeError(InputError):
    """The decoded content has the wrong shape or layout for its modality."""


class NonFiniteError(InputError):
    """The decoded content contains NaN or infinite values."""


class DecompressionBombError(InputError):
    """The file would decode to an unreasonably large buffer and was refused."""


class ModelMismatchError(ConfigError):
    """An index holds vectors of another model, weights or dimension than the one asked for."""


class StoreError(BindsearchError):
    """The index's LanceDB tables cannot be read or written, or rows do not fit their schema."""


class VectorIndexError(BindsearchError):
    """A FAISS sidecar index cannot be built, read or searched as asked."""


class DatasetError(BindsearchError):
    """A benchmark dataset is missing, malformed, or not laid out as distributed."""
