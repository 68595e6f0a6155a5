"""Arrow schemas of the index's tables, their Python records, the stable item id, row checks.

An index directory is a LanceDB database (``lancedb.connect(directory)`` opens it) with three
tables. Any LanceDB or Arrow user can read them; bindsearch writes them only through
:class:`bindsearch.store.Store`.

``items`` — one row per embedded item (a whole file, or one segment of a long file):

=============  ==============================  ========  =========================================
column         Arrow type                      nullable  meaning
=============  ==============================  ========  =========================================
id             string                          no        :func:`make_item_id` of the next 4 fields;
                                                         stable across runs, the key of every
                                                         upsert and of derived (FAISS) indexes
path           string                          no        absolute path of the source file
modality       string                          no        kind of input: one of :data:`ITEM_KINDS`
start_s        float64                         yes       segment start in seconds; null = whole file
end_s          float64                         yes       segment end in seconds; null = whole file
sha256         string                          no        hex sha256 of the file's bytes
size_bytes     int64                           no        file size when it was embedded
mtime          float64                         no        file mtime (epoch seconds) when embedded
duration_s     float64                         yes       media duration (audio, video)
width          int32                           yes       pixels (image, video, depth, thermal)
height         int32                           yes       pixels (image, video, depth, thermal)
text           string                          yes       snippet of the text that was embedded
vector         fixed_size_list<float32>[dim]   no        float32 unit vector (L2 norm 1)
ingested_at    timestamp[us, tz=UTC]           no        when the row was written
=============  ==============================  ========  =========================================

``errors`` — one row per failing (path, modality); ``modality`` is null when the failure happened
before the kind was known. ``size_bytes``/``mtime`` are the file's state when it failed, so an
unchanged broken file is not retried on every run: ``path`` string, ``modality`` string (null),
``stage`` string, ``error`` string, ``at`` timestamp[us, tz=UTC], ``size_bytes`` int64 (null),
``mtime`` float64 (null).

``meta`` — key/value strings: ``model``, ``weights_id``, ``dim``, ``bindsearch_version``,
``created_at`` (ISO 8601, UTC). Its presence is what marks a directory as a bindsearch index.

LanceDB's own row ids are not stable (compaction renumbers them); nothing outside a single query
may depend on them.
"""

from __future__ import annotations

import hashlib
import math
import os
from dataclasses import dataclass

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from bindsearch.errors import StoreError

#: Values of ``items.modality``: the kinds of input bindsearch embeds. Images and videos share
#: the vision tower but are kept apart so that searches can filter on them. These are the values
#: of ``bindsearch.preprocess.InputKind`` (which imports torch, so it is not imported here; a
#: test keeps the two equal).
ITEM_KINDS: frozenset[str] = frozenset(
    {"image", "video", "audio", "text", "depth", "thermal", "imu"}
)

#: How far a stored vector's L2 norm may stray from 1 (float32 rounding of a normalized vector).
UNIT_NORM_TOLERANCE = 1e-3

#: Key of :meth:`bindsearch.store.Store.find_vectors_by_sha256`: (sha256, modality, start_s, end_s).
ContentKey = tuple[str, str, float | None, float | None]


@dataclass(frozen=True)
class FileState:
    """What the index knows about one file: its state when embedded and its item kinds."""

    path: str
    size_bytes: int
    mtime: float
    sha256: str
    modalities: frozenset[str]


@dataclass(frozen=True)
class ErrorRecord:
    """One failure to embed a file, kept as data in the ``errors`` table."""

    path: str
    modality: str | None
    stage: str
    error: str
    size_bytes: int | None
    mtime: float | None


_TIMESTAMP = pa.timestamp("us", tz="UTC")

ERRORS_SCHEMA = pa.schema(
    [
        pa.field("path", pa.string(), nullable=False),
        pa.field("modality", pa.string()),
        pa.field("stage", pa.string(), nullable=False),
        pa.field("error", pa.string(), nullable=False),
        pa.field("at", _TIMESTAMP, nullable=False),
        pa.field("size_bytes", pa.int64()),
        pa.field("mtime", pa.float64()),
    ]
)

META_SCHEMA = pa.schema(
    [
        pa.field("key", pa.string(), nullable=False),
        pa.field("value", pa.string(), nullable=False),
    ]
)


def items_schema(dim: int) -> pa.Schema:
    """Return the Arrow schema of the ``items`` table for ``dim``-dimensional vectors."""
    if isinstance(dim, bool) or not isinstance(dim, int) or dim <= 0:
        raise StoreError(f"vector dimension must be a positive integer, got {dim!r}")
    return pa.schema(
        [
            pa.field("id", pa.string(), nullable=False),
            pa.field("path", pa.string(), nullable=False),
            pa.field("modality", pa.string(), nullable=False),
            pa.field("start_s", pa.float64()),
            pa.field("end_s", pa.float64()),
            pa.field("sha256", pa.string(), nullable=False),
            pa.field("size_bytes", pa.int64(), nullable=False),
            pa.field("mtime", pa.float64(), nullable=False),
            pa.field("duration_s", pa.float64()),
            pa.field("width", pa.int32()),
            pa.field("height", pa.int32()),
            pa.field("text", pa.string()),
            pa.field("vector", pa.list_(pa.float32(), dim), nullable=False),
            pa.field("ingested_at", _TIMESTAMP, nullable=False),
        ]
    )


def _seconds_key(value: float | None) -> str:
    if value is None:
        return ""
    seconds = float(value)
    if not math.isfinite(seconds):
        raise StoreError(f"segment bounds must be finite seconds, got {value!r}")
    return repr(seconds + 0.0)  # + 0.0 folds -0.0 into 0.0, so both give one id


def make_item_id(path: str, modality: str, start_s: float | None, end_s: float | None) -> str:
    """Return the stable id of an item: 32 hex chars of BLAKE2b over its identifying fields.

    Equal inputs give equal ids across runs, processes and machines; ``1`` and ``1.0`` (and
    ``-0.0`` and ``0.0``) are the same second. Paths may hold any character but NUL.
    """
    fields = (path, modality, _seconds_key(start_s), _seconds_key(end_s))
    payload = "\0".join(fields).encode("utf-8", "surrogateescape")
    return hashlib.blake2b(payload, digest_size=16).hexdigest()


def conform_item_rows(rows: pa.Table, dim: int) -> pa.Table:
    """Return ``rows`` cast to ``items_schema(dim)`` after checking every table invariant.

    Raises ``StoreError`` naming the column and the problem when a column is missing, extra,
    of an uncastable type or null where it may not be; a modality is unknown; a path is not
    absolute; segment bounds are half-set or reversed; ids repeat or are not
    :func:`make_item_id` of their row; or a vector is not a finite unit vector.
    """
    if not isinstance(rows, pa.Table):
        raise StoreError(f"item rows must be a pyarrow.Table, got {type(rows).__name__}")
    schema = items_schema(dim)
    missing = [name for name in schema.names if name not in rows.column_names]
    extra = [name for name in rows.column_names if name not in schema.names]
    if missing or extra:
        raise StoreError(
            f"item rows do not match the items schema: missing columns {missing}, "
            f"unexpected columns {extra}; build them with items_schema({dim})"
        )
    columns = [_cast_column(rows.column(field.name), field) for field in schema]
    table = pa.Table.from_arrays(columns, schema=schema)
    _check_values(table)
    _check_ids(table)
    _check_vectors(table, dim)
    return table


def _cast_column(column: pa.ChunkedArray, field: pa.Field) -> pa.ChunkedArray:
    if not field.nullable and column.null_count:
        raise StoreError(f"item column {field.name!r} holds {column.null_count} null(s)")
    try:
        return column.cast(field.type)
    except (pa.ArrowInvalid, pa.ArrowNotImplementedError, pa.ArrowTypeError) as exc:
        raise StoreError(
            f"item column {field.name!r} has type {column.type}, which cannot be cast to "
            f"{field.type}: {exc}"
        ) from exc


def _check_values(table: pa.Table) -> None:
    kinds = set(pc.unique(table.column("modality")).to_pylist())
    unknown = sorted(kinds - ITEM_KINDS)
    if unknown:
        raise StoreError(f"unknown item modality {unknown}; expected one of {sorted(ITEM_KINDS)}")
    relative = [p for p in table.column("path").to_pylist() if not os.path.isabs(p)]
    if relative:
        raise StoreError(f"item paths must be absolute, got {relative[:3]!r}")
    start, end = table.column("start_s"), table.column("end_s")
    half_set = pc.xor(pc.is_null(start), pc.is_null(end))
    if pc.any(half_set).as_py():
        raise StoreError("start_s and end_s must both be set (a segment) or both null")
    reversed_rows = pc.fill_null(pc.greater(start, end), False)
    if pc.any(reversed_rows).as_py():
        raise StoreError("a segment has start_s after end_s")


def _check_ids(table: pa.Table) -> None:
    ids = table.column("id").to_pylist()
    if len(set(ids)) != len(ids):
        raise StoreError("item ids repeat within one write; each (path, modality, segment) once")
    keys = zip(
        table.column("path").to_pylist(),
        table.column("modality").to_pylist(),
        table.column("start_s").to_pylist(),
        table.column("end_s").to_pylist(),
        strict=True,
    )
    for item_id, (path, modality, start_s, end_s) in zip(ids, keys, strict=True):
        if item_id != make_item_id(path, modality, start_s, end_s):
            raise StoreError(
                f"item id {item_id!r} is not make_item_id() of its row "
                f"({path!r}, {modality!r}, {start_s!r}, {end_s!r})"
            )


def vectors_to_numpy(column: pa.ChunkedArray | pa.Array, dim: int) -> np.ndarray:
    """Return a fixed-size-list vector column as a ``(rows, dim)`` float32 array."""
    chunks = column.chunks if isinstance(column, pa.ChunkedArray) else [column]
    parts = [chunk.flatten().to_numpy(zero_copy_only=False) for chunk in chunks]
    flat = np.concatenate(parts) if parts else np.empty(0, dtype=np.float32)
    return flat.astype(np.float32, copy=False).reshape(-1, dim)


def _check_vectors(table: pa.Table, dim: int) -> None:
    vectors = vectors_to_numpy(table.column("vector"), dim)
    if not np.isfinite(vectors).all():
        raise StoreError("item vectors hold NaN or infinite values")
    norms = np.linalg.norm(vectors, axis=1)
    off = np.abs(norms - 1.0) > UNIT_NORM_TOLERANCE
    if off.any():
        row = int(np.argmax(off))
        raise StoreError(
            f"item vectors must be unit vectors; row {row} has L2 norm {norms[row]:.6f} "
            "(normalize in the encoder before storing)"
        )
