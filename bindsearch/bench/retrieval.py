"""Ranks of ground-truth items through the search layer, and A+V fusion of stored vectors.

Every text query goes through :meth:`bindsearch.Index.search` with a ``Vector`` part, the
gallery's result modality and a path restriction, exactly as a user's query would. The search
returns the top ``k`` hits with their cosine scores; the rank of the paired item follows the
tie rule of :mod:`bindsearch.bench.metrics`. Only ranks below ``max_k`` are needed, so a query
asks for ``max_k + 1`` hits (enough to see whether a tie crosses the cut) and asks again with
twice as many only when a tie group straddles the cut (optimistic ties).
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from bindsearch.bench.metrics import TieRule, best_ranks, rank_among, ranks_from_matrix
from bindsearch.errors import StoreError
from bindsearch.index import Index
from bindsearch.query.filters import Filters, sql_string
from bindsearch.query.parts import Vector
from bindsearch.store import Store

#: The reference audio postprocessor's fixed scale (unit vector x 20); vision is x 1.
AUDIO_RAW_SCALE = 20.0
#: Paper Appendix D: A+V = 0.95 x video + 0.05 x audio, on the raw model outputs.
DEFAULT_FUSION = (0.95, 0.05)


@dataclass(frozen=True)
class Scope:
    """Which rows one benchmark query may return.

    ``where`` is an exact ``path IN (...)`` restriction, used only when the index holds other
    rows of ``modality`` under ``root`` than the gallery's. ``fixed`` gives gallery items
    without a row of ``modality`` a constant score (0 for the zero audio vector of a video
    without sound).
    """

    modality: str
    root: Path
    where: str | None = None
    fixed: Mapping[str, float] = field(default_factory=dict)


def whole_file_rows(store: Store, modality: str, root: Path) -> dict[str, str]:
    """``path -> id`` of the whole-file rows of ``modality`` under ``root``."""
    predicate = Filters((modality,), str(root)).predicate()
    try:
        table = store.items_table()
    except StoreError:
        return {}
    out: dict[str, str] = {}
    for batch in store.scan(table, ["id", "path"], predicate):
        out.update(zip(batch["path"].to_pylist(), batch["id"].to_pylist(), strict=True))
    return out


def make_scope(
    modality: str,
    root: Path,
    gallery_paths: Sequence[str],
    rows_under_root: int,
    fixed: Mapping[str, float] | None = None,
) -> Scope:
    """A scope over exactly ``gallery_paths`` (a ``path IN`` predicate only when needed)."""
    where = None
    if rows_under_root > len(gallery_paths):
        listed = ", ".join(sql_string(p) for p in gallery_paths)
        where = f"path IN ({listed})" if listed else "path IS NULL"  # no row matches
    return Scope(modality, root, where, dict(fixed or {}))


def search_rank(
    index: Index, vector: np.ndarray, target: str, scope: Scope, max_k: int, ties: TieRule
) -> float:
    """0-based rank of the gallery item at path ``target`` for query ``vector`` (``inf``
    when it is ``max_k`` or worse), ranked by the search layer."""
    k = max_k + 1
    while True:
        hits = index.search(
            Vector(vector), modalities=[scope.modality], path=str(scope.root),
            where=scope.where, k=k,
        )  # fmt: skip
        found = {h.path: h.score for h in hits}
        full = len(hits) == k
        candidates = {**scope.fixed, **found}
        if target in candidates:
            score = candidates.pop(target)
            rank = rank_among(np.fromiter(candidates.values(), float), score, ties)
            return float(rank) if rank < max_k else math.inf
        if not full:
            raise StoreError(f"{target} is not a row of {scope.modality} in {index.directory}")
        last = hits[-1].score
        above = sum(1 for s in candidates.values() if s > last)
        if ties == "pessimistic" or above >= max_k:
            return math.inf  # at least max_k items rank before it
        k *= 2  # a tie group crosses the cut and the target may be inside it


def fused_ranks(
    text: np.ndarray,
    video: np.ndarray,
    audio: np.ndarray,
    targets: Sequence[int],
    weights: tuple[float, float],
    ties: TieRule,
) -> np.ndarray:
    """Ranks of ``targets`` with A+V gallery vectors ``wv * video + wa * 20 * audio``,
    renormalised, ranked by cosine (``inf`` never: every rank is exact).

    ``video``/``audio`` are unit rows (a zero audio row for a video without sound); the x 20
    restores the reference's raw audio scale, so ``(0.95, 0.05)`` weighs the two almost
    equally, as on the raw model outputs the paper combined. Weights ``(a, b / 20)`` fuse the
    unit vectors with weights ``(a, b)``.
    """
    wv, wa = weights
    fused = wv * video.astype(np.float64) + wa * AUDIO_RAW_SCALE * audio.astype(np.float64)
    norms = np.linalg.norm(fused, axis=1, keepdims=True)
    fused = fused / np.where(norms > 0, norms, 1.0)
    similarity = text.astype(np.float64) @ fused.T
    return best_ranks(ranks_from_matrix(similarity, list(targets), ties))


__all__ = [
    "AUDIO_RAW_SCALE",
    "DEFAULT_FUSION",
    "Scope",
    "fused_ranks",
    "make_scope",
    "search_rank",
    "whole_file_rows",
]
