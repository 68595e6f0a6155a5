"""Typed query parts: what to search with, and with what weight."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

from bindsearch.errors import ConfigError

#: Kinds of query part: the input kinds, an ingested item's id, or a raw vector.
PART_KINDS = ("text", "image", "video", "audio", "depth", "thermal", "imu", "id", "vector")


@dataclass(frozen=True)
class QueryPart:
    """One term of a (possibly composed) query: ``weight * unit_vector(value)``.

    ``kind`` is one of :data:`PART_KINDS`; ``value`` is the text, a file path, an item id, or
    a vector (``np.ndarray``). Weights may be negative (``beach`` minus ``people``).
    """

    kind: str
    value: str | Path | np.ndarray
    weight: float = 1.0

    def __post_init__(self) -> None:
        if self.kind not in PART_KINDS:
            raise ConfigError(f"unknown query part {self.kind!r}; expected one of {PART_KINDS}")
        if not np.isfinite(self.weight):
            raise ConfigError(f"query weight must be finite, got {self.weight}")

    def describe(self) -> str:
        """Short human-readable form for tables and logs."""
        value = "<vector>" if isinstance(self.value, np.ndarray) else str(self.value)
        return f"{self.weight:+g} x {self.kind}:{value}"


def Text(text: str, weight: float = 1.0) -> QueryPart:  # noqa: N802 - reads like a type
    """A text query part."""
    return QueryPart("text", text, weight)


def File(kind: str, path: str | Path, weight: float = 1.0) -> QueryPart:  # noqa: N802
    """A media-file query part (``kind``: image, video, audio, depth, thermal, imu)."""
    return QueryPart(kind, Path(path), weight)


def Item(item_id: str, weight: float = 1.0) -> QueryPart:  # noqa: N802
    """An already ingested item, by id (query by example without re-encoding)."""
    return QueryPart("id", item_id, weight)


def Vector(vector: np.ndarray, weight: float = 1.0) -> QueryPart:  # noqa: N802
    """A raw vector in the index's space (normalised before use)."""
    return QueryPart("vector", np.asarray(vector, dtype=np.float32), weight)


def combine(vectors: np.ndarray, weights: np.ndarray) -> np.ndarray:
    """Weighted sum of unit-normalised rows, renormalised: ``[P, D]``, ``[P]`` -> ``[D]``.

    Raises ``ConfigError`` when the parts cancel out (a zero vector has no direction).
    """
    vectors = np.asarray(vectors, dtype=np.float64)
    norms = np.linalg.norm(vectors, axis=1, keepdims=True)
    if (norms == 0).any():
        raise ConfigError("a query part has a zero vector")
    summed = (np.asarray(weights, dtype=np.float64)[:, None] * vectors / norms).sum(axis=0)
    norm = np.linalg.norm(summed)
    if norm < 1e-9:
        raise ConfigError("the weighted query parts cancel out; change the weights")
    return (summed / norm).astype(np.float32)
