"""Reads of the ``items`` table for the search layer: vectors, ids and row metadata."""

from __future__ import annotations

from collections.abc import Collection, Iterator, Sequence
from typing import Any

import numpy as np

from bindsearch.errors import StoreError
from bindsearch.store.lance import Store, _chunks, _sql_in
from bindsearch.store.schema import vectors_to_numpy

#: Columns of a search hit (everything but the vector).
HIT_COLUMNS = (
    "id",
    "path",
    "modality",
    "start_s",
    "end_s",
    "duration_s",
    "width",
    "height",
    "text",
)


def _items(store: Store) -> Any | None:
    try:
        return store.items_table()
    except StoreError:  # no items table yet: no rows
        return None


def scan_vectors(store: Store, where: str | None = None) -> Iterator[tuple[list[str], np.ndarray]]:
    """Stream ``(ids, vectors [n, dim] float32)`` of rows matching ``where``."""
    table = _items(store)
    if table is None:
        return
    dim = store.dim
    for batch in store.scan(table, ["id", "vector"], where):
        if batch.num_rows:
            yield batch["id"].to_pylist(), vectors_to_numpy(batch["vector"], dim)


def ids_matching(store: Store, where: str | None) -> set[str]:
    """Ids of rows matching ``where`` (all rows when ``None``)."""
    table = _items(store)
    if table is None:
        return set()
    return {i for batch in store.scan(table, ["id"], where) for i in batch["id"].to_pylist()}


def count_rows(store: Store, where: str | None = None) -> int:
    """Number of rows matching ``where``."""
    table = _items(store)
    if table is None:
        return 0
    return int(table.count_rows(where)) if where else int(table.count_rows())


def vectors_by_ids(store: Store, ids: Collection[str]) -> dict[str, np.ndarray]:
    """Stored vectors of the given ids (missing ids are absent from the result)."""
    out: dict[str, np.ndarray] = {}
    for chunk in _chunks(set(ids), 10_000):
        for batch_ids, vectors in scan_vectors(store, _sql_in("id", chunk)):
            out.update(zip(batch_ids, vectors, strict=True))
    return out


def rows_by_ids(store: Store, ids: Sequence[str]) -> dict[str, dict[str, Any]]:
    """Metadata (:data:`HIT_COLUMNS`) of the given ids."""
    table = _items(store)
    if table is None or not ids:
        return {}
    out: dict[str, dict[str, Any]] = {}
    for chunk in _chunks(set(ids), 10_000):
        for batch in store.scan(table, list(HIT_COLUMNS), _sql_in("id", chunk)):
            for row in batch.to_pylist():
                out[row["id"]] = row
    return out
