"""A search result (torch-free, shared by the local search and the HTTP client)."""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any


@dataclass(frozen=True)
class Hit:
    """One search result. ``score`` is the cosine similarity to the query vector."""

    rank: int
    id: str
    path: str
    modality: str
    score: float
    start_s: float | None = None
    end_s: float | None = None
    text: str | None = None
    duration_s: float | None = None
    width: int | None = None
    height: int | None = None

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready dict."""
        return asdict(self)
