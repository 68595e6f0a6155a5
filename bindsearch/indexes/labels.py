"""The label map of a FAISS sidecar, reads of the ``items`` table, and staleness diffs.

FAISS labels are int64 positions ``0..n_labels-1`` assigned at build time and appended to by
refreshes; the label map (``ids.arrow``) turns them into bindsearch's stable ``id``. LanceDB row
ids are never used: they change on compaction.

A row's *version key* is ``(id, ingested_at)``: ingest stamps ``ingested_at`` on every write, and
a changed file keeps its id but gets a new vector and a new stamp. A label is current when its
version key is still in the table; a table row is covered when a live label has its version key.
Everything else is the difference between the index and the table: labels to exclude (rows
deleted or rewritten since the build) and rows to search exactly (added or rewritten since).

Label states: ``LIVE`` (in FAISS, returned), ``TOMBSTONE`` (still in the FAISS structure but its
row is gone: excluded at search time by an id selector), ``REMOVED`` (taken out of FAISS with
``remove_ids``; kept in the map so that labels stay positions).
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from bindsearch.errors import StoreError, VectorIndexError

LIVE, TOMBSTONE, REMOVED = 0, 1, 2
#: Rows per Arrow batch when streaming the items table.
SCAN_BATCH_ROWS = 65_536
#: Ids per ``IN (...)`` list when reading rows by id.
_IN_CHUNK = 10_000
_KEY_COLUMNS = ["id", "ingested_at"]
#: Columns read for rows that go into an index or an exact search.
ROW_COLUMNS = ["id", "ingested_at", "vector"]


@dataclass
class LabelMap:
    """Label → (id, ingested_at in µs, state); row ``i`` describes FAISS label ``i``."""

    ids: pa.Array
    ingested_us: np.ndarray
    state: np.ndarray

    def __len__(self) -> int:
        return len(self.ids)

    @classmethod
    def from_keys(cls, ids: pa.Array, ingested_us: np.ndarray) -> LabelMap:
        """A map of live labels ``0..len(ids)-1``."""
        return cls(ids, ingested_us.astype(np.int64), np.zeros(len(ids), dtype=np.int8))

    def extend(self, ids: pa.Array, ingested_us: np.ndarray) -> LabelMap:
        """A new map with live labels appended for ``ids``."""
        return LabelMap(
            pa.concat_arrays([self.ids, ids.cast(pa.string())]),
            np.concatenate([self.ingested_us, ingested_us.astype(np.int64)]),
            np.concatenate([self.state, np.zeros(len(ids), dtype=np.int8)]),
        )

    def with_state(self, labels: np.ndarray, state: int) -> LabelMap:
        """A new map with ``labels`` set to ``state``."""
        new_state = self.state.copy()
        new_state[labels] = state
        return LabelMap(self.ids, self.ingested_us, new_state)

    def live_labels(self) -> np.ndarray:
        """Labels whose rows are current, ascending."""
        return np.flatnonzero(self.state == LIVE).astype(np.int64)

    def tombstones(self) -> np.ndarray:
        """Labels still inside FAISS that must never be returned."""
        return np.flatnonzero(self.state == TOMBSTONE).astype(np.int64)

    def save(self, path: Path) -> None:
        """Write the map as an Arrow IPC file (columns id, ingested_at, state)."""
        table = pa.table(
            {
                "id": self.ids.cast(pa.string()),
                "ingested_at": pa.array(self.ingested_us, pa.int64()),
                "state": pa.array(self.state, pa.int8()),
            }
        )
        with pa.OSFile(str(path), "wb") as sink, pa.ipc.new_file(sink, table.schema) as writer:
            writer.write_table(table)

    @classmethod
    def load(cls, path: Path) -> LabelMap:
        """Read a map written by :meth:`save`."""
        try:
            with pa.memory_map(str(path), "r") as source:
                table = pa.ipc.open_file(source).read_all()
        except (OSError, pa.ArrowException) as exc:
            raise VectorIndexError(f"cannot read the FAISS label map {path}: {exc}") from exc
        ids = table.column("id").combine_chunks()
        return cls(
            ids,
            table.column("ingested_at").to_numpy().astype(np.int64),
            table.column("state").to_numpy().astype(np.int8),
        )


@dataclass
class TableDiff:
    """How the current table differs from a label map."""

    dead_labels: np.ndarray
    new_ids: pa.Array
    n_rows: int

    @property
    def is_empty(self) -> bool:
        """True when the index covers the table exactly."""
        return len(self.dead_labels) == 0 and len(self.new_ids) == 0


def diff_table(labels: LabelMap, keys: pa.Table) -> TableDiff:
    """Compare live labels with the current table's version keys (``read_keys``)."""
    live = labels.live_labels()
    indexed = pa.table(
        {
            "id": labels.ids.take(pa.array(live)),
            "ingested_at": pa.array(labels.ingested_us[live], pa.int64()),
            "label": pa.array(live, pa.int64()),
        }
    )
    matched = keys.join(indexed, keys=_KEY_COLUMNS, join_type="inner")
    covered_labels = matched.column("label").to_numpy()
    dead = np.setdiff1d(live, covered_labels, assume_unique=True)
    new_mask = pc.invert(pc.is_in(keys.column("id"), value_set=matched.column("id")))
    new_ids = keys.column("id").filter(new_mask).combine_chunks()
    return TableDiff(dead.astype(np.int64), new_ids, keys.num_rows)


def ingested_to_us(column: pa.ChunkedArray | pa.Array) -> np.ndarray:
    """``ingested_at`` timestamps as int64 microseconds since the epoch."""
    return np.asarray(pc.cast(column, pa.int64()).to_numpy(zero_copy_only=False), dtype=np.int64)


def scan(table: Any, columns: Sequence[str], where: str | None = None) -> Iterator[pa.RecordBatch]:
    """Stream ``columns`` of the items table (at the version its handle reads) in batches."""
    query = table.search().select(list(columns)).limit(None)
    if where is not None:
        query = query.where(where)
    try:
        yield from query.to_batches(SCAN_BATCH_ROWS)
    except (OSError, RuntimeError, ValueError, pa.ArrowException) as exc:
        raise StoreError(f"LanceDB failed while reading the items table: {exc}") from exc


def read_keys(table: Any) -> pa.Table:
    """The version keys of every row: ``id`` (string) and ``ingested_at`` (int64 µs)."""
    ids: list[pa.Array] = []
    stamps: list[np.ndarray] = []
    for batch in scan(table, _KEY_COLUMNS):
        ids.append(batch.column("id"))
        stamps.append(ingested_to_us(batch.column("ingested_at")))
    id_array = pa.concat_arrays(ids) if ids else pa.array([], pa.string())
    stamp_array = np.concatenate(stamps) if stamps else np.empty(0, np.int64)
    return pa.table({"id": id_array.cast(pa.string()), "ingested_at": pa.array(stamp_array)})


def read_rows_by_id(table: Any, ids: pa.Array | Sequence[str], dim: int) -> RowBlock:
    """Read ids, version keys and vectors of the rows with ``ids`` (missing ids are skipped)."""
    wanted = ids.to_pylist() if isinstance(ids, pa.Array) else list(ids)
    blocks: list[RowBlock] = []
    for start in range(0, len(wanted), _IN_CHUNK):
        chunk = wanted[start : start + _IN_CHUNK]
        where = "id IN (" + ", ".join(_sql_literal(v) for v in chunk) + ")"
        blocks.extend(RowBlock.from_batch(b, dim) for b in scan(table, ROW_COLUMNS, where))
    return RowBlock.concat(blocks, dim)


@dataclass
class RowBlock:
    """Some rows of the items table: ``ids``, ``ingested_us`` and ``(n, dim)`` ``vectors``."""

    ids: pa.Array
    ingested_us: np.ndarray
    vectors: np.ndarray

    def __len__(self) -> int:
        return len(self.ids)

    @classmethod
    def from_batch(cls, batch: pa.RecordBatch, dim: int) -> RowBlock:
        """Convert a batch with :data:`ROW_COLUMNS`."""
        column = batch.column("vector")
        flat = column.flatten().to_numpy(zero_copy_only=False)
        vectors = np.ascontiguousarray(flat, dtype=np.float32).reshape(-1, dim)
        return cls(
            batch.column("id").cast(pa.string()),
            ingested_to_us(batch.column("ingested_at")),
            vectors,
        )

    @classmethod
    def concat(cls, blocks: Sequence[RowBlock], dim: int) -> RowBlock:
        """Concatenate blocks (an empty block for none)."""
        if not blocks:
            return cls(pa.array([], pa.string()), np.empty(0, np.int64), np.empty((0, dim), "f4"))
        return cls(
            pa.concat_arrays([b.ids for b in blocks]),
            np.concatenate([b.ingested_us for b in blocks]),
            np.concatenate([b.vectors for b in blocks]),
        )


def _sql_literal(value: str) -> str:
    return "'" + str(value).replace("'", "''") + "'"
