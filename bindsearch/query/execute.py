"""Run a query: encode and combine its parts, find the nearest rows, attach their metadata."""

from __future__ import annotations

import heapq
import logging
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from bindsearch.errors import ConfigError
from bindsearch.query.filters import Filters
from bindsearch.query.hit import Hit
from bindsearch.query.parts import QueryPart, combine
from bindsearch.store import Store
from bindsearch.store.queries import (
    count_rows,
    ids_matching,
    rows_by_ids,
    scan_vectors,
    vectors_by_ids,
)

if TYPE_CHECKING:
    from bindsearch.encode import Encoder
    from bindsearch.indexes.search import SidecarCache

logger = logging.getLogger(__name__)


def embed_parts(store: Store, encoder: Encoder | None, parts: Sequence[QueryPart]) -> np.ndarray:
    """Each part as a unit vector ``[P, D]`` (files and texts encoded, ids looked up)."""
    if not parts:
        raise ConfigError("a query needs at least one part (--text, --image, --audio, --id ...)")
    stored = vectors_by_ids(store, [str(p.value) for p in parts if p.kind == "id"])
    rows = []
    for part in parts:
        if part.kind == "id":
            if str(part.value) not in stored:
                raise ConfigError(f"no item with id {part.value!r} in index {store.directory}")
            rows.append(stored[str(part.value)])
        elif part.kind == "vector":
            rows.append(_checked_vector(np.asarray(part.value, dtype=np.float32), store.dim))
        else:
            if encoder is None:
                raise ConfigError(f"a {part.kind} part needs the model; open the index with one")
            value = part.value if part.kind == "text" else Path(str(part.value))
            rows.append(encoder.encode(part.kind, [value])[0])
    return np.stack(rows).astype(np.float32)


def _checked_vector(vector: np.ndarray, dim: int) -> np.ndarray:
    if vector.shape != (dim,) or not np.isfinite(vector).all():
        raise ConfigError(f"a query vector must be {dim} finite floats, got shape {vector.shape}")
    return vector


def query_vector(store: Store, encoder: Encoder | None, parts: Sequence[QueryPart]) -> np.ndarray:
    """The unit query vector: the weighted sum of the parts' unit vectors, renormalised."""
    vectors = embed_parts(store, encoder, parts)
    return combine(vectors, np.array([p.weight for p in parts]))


def exact_top_k(
    store: Store, query: np.ndarray, k: int, where: str | None
) -> list[tuple[str, float]]:
    """Brute-force inner product over the rows matching ``where``, streamed in batches."""
    heap: list[tuple[float, str]] = []
    for ids, vectors in scan_vectors(store, where):
        scores = vectors @ query
        top = (
            np.argpartition(-scores, min(k, len(ids)) - 1)[:k] if len(ids) > k else range(len(ids))
        )
        for i in top:
            item = (float(scores[i]), ids[i])
            if len(heap) < k:
                heapq.heappush(heap, item)
            elif item > heap[0]:
                heapq.heapreplace(heap, item)
    return [(i, s) for s, i in sorted(heap, reverse=True)]


def nearest(
    store: Store, query: np.ndarray, k: int, filters: Filters,
    sidecar: SidecarCache | None = None,
) -> list[tuple[str, float]]:  # fmt: skip
    """Top-``k`` ``(id, score)`` among rows passing ``filters``, through the FAISS sidecar when
    one exists (never stale, k results whenever k rows match), else exactly.

    ``sidecar`` keeps the loaded FAISS index between calls (see
    :class:`~bindsearch.indexes.search.SidecarCache`); without it the index is loaded for this
    call only.
    """
    where = filters.predicate()
    from bindsearch.indexes.search import load_index

    index = sidecar.get(store) if sidecar is not None else load_index(store)
    if index is None:
        return exact_top_k(store, query, k, where)
    allowed = None
    if where is not None and count_rows(store, where) < count_rows(store):
        allowed = ids_matching(store, where)
    return index.search(query[None, :], k, allowed_ids=allowed)[0]


def search(
    store: Store,
    encoder: Encoder | None,
    parts: Sequence[QueryPart],
    *,
    filters: Filters | None = None,
    k: int = 10,
    sidecar: SidecarCache | None = None,
) -> list[Hit]:
    """Search ``store`` with the (composed) query ``parts``; ``k`` best hits, best first.

    ``sidecar``: a cache of the loaded FAISS index, kept by the caller across searches.
    """
    if k < 1:
        raise ConfigError(f"top-k must be at least 1, got {k}")
    query = query_vector(store, encoder, parts)
    found = nearest(store, query, k, filters or Filters(), sidecar)
    meta = rows_by_ids(store, [i for i, _ in found])
    hits = []
    for rank, (item_id, score) in enumerate(found, start=1):
        row = meta.get(item_id)
        if row is None:  # deleted between the search and the metadata read
            continue
        fields = {
            key: row.get(key)
            for key in ("start_s", "end_s", "text", "duration_s", "width", "height")
        }
        hits.append(Hit(rank, item_id, row["path"], row["modality"], score, **fields))
    return hits
