"""All LanceDB calls of bindsearch: the index directory, its tables and every read and write.

The tables and their schemas are described in :mod:`bindsearch.store.schema`. LanceDB is the
source of truth of an index; everything else (FAISS sidecars, reports) is derived from it and
keyed on the ``items.id`` column, never on LanceDB row ids.

Concurrency: one writer process at a time; readers may run concurrently. Every LanceDB write is
one commit that creates one new table version, and a ``Store`` (like any LanceDB table handle
opened without a read-consistency interval) keeps reading the version it opened, so a query
running during an ingest sees one consistent snapshot. ``optimize`` keeps old versions for
LanceDB's default retention (7 days), so readers pinned to an older version keep working.
"""

from __future__ import annotations

import datetime as dt
import logging
from collections import Counter
from collections.abc import Collection, Iterable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import asdict
from importlib import metadata
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from bindsearch.errors import ModelMismatchError, StoreError
from bindsearch.store.directory import check_is_index, prepare_directory
from bindsearch.store.fastimport import defer_rest_client
from bindsearch.store.schema import (
    ERRORS_SCHEMA,
    META_SCHEMA,
    ContentKey,
    ErrorRecord,
    FileState,
    conform_item_rows,
    items_schema,
    vectors_to_numpy,
)

defer_rest_client()  # before lancedb: ~0.5 s less import time (see bindsearch.store.fastimport)
import lancedb  # noqa: E402
from lancedb.index import BTree  # noqa: E402

logger = logging.getLogger(__name__)

ITEMS_TABLE = "items"
ERRORS_TABLE = "errors"
META_TABLE = "meta"
_OWN_TABLES = frozenset({ITEMS_TABLE, ERRORS_TABLE, META_TABLE})

#: Rows per Arrow batch when streaming a table, so no read holds a whole table in memory.
_SCAN_BATCH_ROWS = 65_536
#: Values per ``IN (...)`` list in reads. Writes never split their predicate, to stay one commit;
#: LanceDB's cost grows linearly with the list (about 50 µs per value, 200,000 values tested).
_READ_IN_CHUNK = 10_000
#: Columns of ``items`` given a BTree scalar index by ``optimize``: the merge key, and the
#: columns that writes and dedup filter on.
_INDEXED_ITEM_COLUMNS = ("id", "path", "sha256")


def _sql_literal(value: str) -> str:
    """Quote ``value`` as a SQL string literal (LanceDB/DataFusion: only ``'`` is special)."""
    if not isinstance(value, str):
        raise StoreError(f"expected a path or hash string, got {type(value).__name__}")
    return "'" + value.replace("'", "''") + "'"


def _sql_in(column: str, values: Iterable[str]) -> str:
    return f"{column} IN ({', '.join(_sql_literal(v) for v in values)})"


def _as_str_set(values: Collection[str], what: str) -> set[str]:
    if isinstance(values, (str, bytes)):
        raise StoreError(f"{what} must be a collection of strings, not a single string")
    out = set(values)
    wrong = [v for v in out if not isinstance(v, str)]
    if wrong:
        raise StoreError(f"{what} must be strings, got {type(wrong[0]).__name__}")
    return out


def _chunks(values: Collection[str], size: int) -> Iterator[list[str]]:
    ordered = sorted(values)
    for start in range(0, len(ordered), size):
        yield ordered[start : start + size]


def _bindsearch_version() -> str:
    try:
        return metadata.version("bindsearch")
    except metadata.PackageNotFoundError:
        return "unknown (not installed)"


def _utc_now() -> dt.datetime:
    return dt.datetime.now(dt.timezone.utc)


@contextmanager
def _lance_errors(action: str, directory: Path) -> Iterator[None]:
    """Re-raise LanceDB/Arrow failures as ``StoreError`` saying what was being done where."""
    try:
        yield
    except (OSError, RuntimeError, ValueError, pa.ArrowException) as exc:
        raise StoreError(f"LanceDB failed while {action} in index {directory}: {exc}") from exc


def _table_names(db: Any) -> set[str]:
    names: set[str] = set()
    token = None
    while True:
        response = db.list_tables(page_token=token)
        names.update(response.tables)
        token = response.page_token
        if not token:
            return names


class Store:
    """A bindsearch index: a LanceDB database directory with ``items``, ``errors``, ``meta``.

    Create one with :meth:`Store.open`. Methods that write make exactly one LanceDB commit
    per table they touch (see each method); methods that read stream Arrow batches.
    """

    def __init__(self, directory: Path, db: Any, table_names: set[str]) -> None:
        """Wrap an opened database; use :meth:`Store.open` instead of calling this."""
        self.directory = directory
        self._db = db
        own = table_names & _OWN_TABLES
        self._tables: dict[str, Any] = {name: db.open_table(name) for name in own}
        self._model_info: dict[str, str] | None = None  # meta is only written once, by us

    @classmethod
    def open(cls, directory: str | Path, *, create: bool = True) -> Store:
        """Open the index in ``directory``; if ``create``, make the directory an index.

        Raises ``ConfigError`` when the path is a file or unwritable, is missing or not an
        index (``create=False``), or is a non-empty directory that is not an index
        (``create=True``: bindsearch never writes tables into someone else's folder);
        ``StoreError`` when LanceDB cannot open the tables.
        """
        path = Path(directory).expanduser().resolve()
        prepare_directory(path, create)
        with _lance_errors("opening the tables", path):
            db = lancedb.connect(str(path))
            names = _table_names(db)
        check_is_index(path, names, META_TABLE, create)
        with _lance_errors("opening the tables", path):
            store = cls(path, db, names)
        if create:
            store._table(META_TABLE, create=True)
        logger.debug("opened index %s (tables: %s)", path, sorted(store._tables))
        return store

    def _table(self, name: str, *, create: bool = False) -> Any:
        """Return the cached handle of table ``name``; create it (race-free) if ``create``."""
        table = self._tables.get(name)
        if table is None and create:
            schema = {META_TABLE: META_SCHEMA, ERRORS_TABLE: ERRORS_SCHEMA}[name]
            with _lance_errors(f"creating table {name!r}", self.directory):
                table = self._db.create_table(name, schema=schema, exist_ok=True)
            self._tables[name] = table
        return table

    def model_info(self) -> dict[str, str] | None:
        """Return the ``meta`` key/values, or ``None`` if no model is recorded yet."""
        meta = self._table(META_TABLE)
        if self._model_info is not None or meta is None:
            return None if self._model_info is None else dict(self._model_info)
        info = {
            key: value
            for batch in self.scan(meta, ["key", "value"])
            for key, value in zip(batch["key"].to_pylist(), batch["value"].to_pylist(), strict=True)
        }
        if "model" not in info:
            return None
        self._model_info = info
        return dict(info)

    def ensure_model(self, model: str, weights_id: str, dim: int) -> None:
        """Record the index's model on first use; refuse a different one afterwards.

        Raises ``ModelMismatchError`` when the index already holds vectors of another
        model name, weights id or dimension.
        """
        schema = items_schema(dim)  # validates dim
        info = self.model_info()
        asked = {"model": model, "weights_id": weights_id, "dim": str(dim)}
        if info is None:
            entries = {
                **asked,
                "bindsearch_version": _bindsearch_version(),
                "created_at": _utc_now().isoformat(),
            }
            meta_rows = pa.Table.from_pylist(
                [{"key": k, "value": v} for k, v in entries.items()], schema=META_SCHEMA
            )
            meta = self._table(META_TABLE, create=True)
            with _lance_errors("recording the model", self.directory):
                merge = meta.merge_insert("key").when_matched_update_all()
                merge.when_not_matched_insert_all().execute(meta_rows)
            logger.info("index %s: recorded model %s (%s, dim %s)", self.directory, *asked.values())
        elif any(info.get(key) != value for key, value in asked.items()):
            raise ModelMismatchError(self._mismatch_message(info, asked))
        if ITEMS_TABLE not in self._tables:
            with _lance_errors("creating table 'items'", self.directory):
                self._tables[ITEMS_TABLE] = self._db.create_table(
                    ITEMS_TABLE, schema=schema, exist_ok=True
                )

    def _mismatch_message(self, info: dict[str, str], asked: dict[str, str]) -> str:
        held = (
            f"model {info.get('model')!r} (weights {info.get('weights_id')!r}, "
            f"dim {info.get('dim')})"
        )
        want = f"model {asked['model']!r} (weights {asked['weights_id']!r}, dim {asked['dim']})"
        return (
            f"index {self.directory} holds vectors of {held}, but {want} was asked for; "
            "vectors of different models cannot be mixed or compared. "
            f"Use --model {info.get('model')} with this index, or pass a new --index "
            f"directory for {asked['model']}."
        )

    def items_table(self) -> Any:
        """Return the ``items`` LanceDB table (for the search layer)."""
        table = self._tables.get(ITEMS_TABLE)
        if table is None:
            raise StoreError(
                f"index {self.directory} has no items yet: no model is recorded. "
                "Ingest files into it first (Store.ensure_model creates the table)."
            )
        return table

    def version(self) -> int:
        """Return the version of the ``items`` table this store reads and writes."""
        return int(self.items_table().version)

    @property
    def dim(self) -> int:
        """The vector dimension recorded by :meth:`ensure_model`."""
        info = self.model_info()
        if info is None:
            raise StoreError(
                f"index {self.directory} has no model recorded; call ensure_model() first"
            )
        return int(info["dim"])

    def scan(
        self, table: Any, columns: Sequence[str], where: str | None = None
    ) -> Iterator[pa.RecordBatch]:
        """Stream ``columns`` of ``table`` (rows matching the SQL ``where``) as Arrow batches."""
        query = table.search().select(list(columns)).limit(None)
        if where is not None:
            query = query.where(where)
        with _lance_errors("reading", self.directory):
            yield from query.to_batches(_SCAN_BATCH_ROWS)

    def file_states(self) -> dict[str, FileState]:
        """Return, per path in ``items``, its size, mtime, sha256 and the kinds embedded."""
        table = self._tables.get(ITEMS_TABLE)
        if table is None:
            return {}
        first: dict[str, tuple[int, float, str]] = {}
        kinds: dict[str, set[str]] = {}
        columns = ["path", "size_bytes", "mtime", "sha256", "modality"]
        for batch in self.scan(table, columns):
            for path, size, mtime, sha, kind in zip(
                *(batch[c].to_pylist() for c in columns), strict=True
            ):
                first.setdefault(path, (size, mtime, sha))
                kinds.setdefault(path, set()).add(kind)
        return {
            path: FileState(path, size, mtime, sha, frozenset(kinds[path]))
            for path, (size, mtime, sha) in first.items()
        }

    def error_states(self) -> dict[str, ErrorRecord]:
        """Return the latest recorded failure of each path in ``errors``."""
        table = self._tables.get(ERRORS_TABLE)
        if table is None:
            return {}
        latest: dict[str, tuple[dt.datetime, ErrorRecord]] = {}
        for batch in self.scan(table, ERRORS_SCHEMA.names):
            for row in batch.to_pylist():
                at = row.pop("at")
                if row["path"] not in latest or at >= latest[row["path"]][0]:
                    latest[row["path"]] = (at, ErrorRecord(**row))
        return {path: record for path, (_, record) in latest.items()}

    def find_vectors_by_sha256(self, sha256s: Collection[str]) -> dict[ContentKey, np.ndarray]:
        """Return stored vectors of items whose file has one of ``sha256s``, for content dedup.

        Keys are ``(sha256, modality, start_s, end_s)``; values are ``(dim,)`` float32 arrays.
        """
        table = self._tables.get(ITEMS_TABLE)
        wanted = _as_str_set(sha256s, "sha256s")
        if table is None or not wanted:
            return {}
        dim = self.dim
        found: dict[ContentKey, np.ndarray] = {}
        columns = ["sha256", "modality", "start_s", "end_s", "vector"]
        for chunk in _chunks(wanted, _READ_IN_CHUNK):
            for batch in self.scan(table, columns, _sql_in("sha256", chunk)):
                vectors = vectors_to_numpy(batch["vector"], dim)
                keys = zip(*(batch[c].to_pylist() for c in columns[:4]), strict=True)
                for key, vector in zip(keys, vectors, strict=True):
                    found.setdefault(key, vector.copy())
        return found

    def _present_paths(self, table: Any, paths: Collection[str]) -> set[str]:
        present: set[str] = set()
        for chunk in _chunks(paths, _READ_IN_CHUNK):
            for batch in self.scan(table, ["path"], _sql_in("path", chunk)):
                present.update(batch["path"].to_pylist())
        return present

    def replace_files(self, paths: Collection[str], rows: pa.Table) -> None:
        """Make ``rows`` the complete set of items of ``paths``, in one LanceDB commit.

        Rows of ``paths`` whose id is not in ``rows`` are deleted; ``rows`` are upserted by
        ``id``. Every row's path must be in ``paths``; a path with no rows loses all its
        items. Raises ``StoreError`` when ``rows`` break the items schema (see
        :func:`~bindsearch.store.schema.conform_item_rows`).
        """
        table = self.items_table()
        wanted = _as_str_set(paths, "paths")
        rows = conform_item_rows(rows, self.dim)
        strays = set(rows.column("path").to_pylist()) - wanted
        if strays:
            raise StoreError(f"rows hold paths not listed in paths: {sorted(strays)[:3]!r}")
        # Only files that already have rows need the delete clause: it makes LanceDB scan the
        # whole table, while a plain upsert can use the id index. One writer, so no race.
        present = self._present_paths(table, wanted)
        action = f"replacing the items of {len(wanted)} file(s)"
        with _lance_errors(action, self.directory):
            if rows.num_rows == 0:
                if present:
                    table.delete(_sql_in("path", present))
                return
            merge = table.merge_insert("id").when_matched_update_all().when_not_matched_insert_all()
            if present:
                merge = merge.when_not_matched_by_source_delete(_sql_in("path", present))
            merge.execute(rows)
        logger.debug("%s: %d row(s), now version %d", action, rows.num_rows, table.version)

    def record_errors(self, records: Sequence[ErrorRecord]) -> None:
        """Upsert failures by (path, modality) in one commit: one row per pair, ever."""
        latest = {(r.path, r.modality): r for r in records}  # the last record of a pair wins
        if not latest:
            return
        at = _utc_now()
        rows = pa.Table.from_pylist(
            [{**asdict(r), "at": at} for r in latest.values()], schema=ERRORS_SCHEMA
        )
        # NULL never equals NULL in the merge join, so rows with no modality are replaced
        # through the delete clause instead of matched; still one commit.
        null_paths = [path for path, modality in latest if modality is None]
        with _lance_errors(f"recording {len(latest)} error(s)", self.directory):
            table = self._table(ERRORS_TABLE, create=True)
            merge = table.merge_insert(["path", "modality"])
            merge = merge.when_matched_update_all().when_not_matched_insert_all()
            if null_paths:
                condition = f"modality IS NULL AND {_sql_in('path', null_paths)}"
                merge = merge.when_not_matched_by_source_delete(condition)
            merge.execute(rows)

    def clear_errors(self, paths: Collection[str]) -> None:
        """Delete every recorded failure of ``paths`` (one commit, none if nothing matches)."""
        table = self._tables.get(ERRORS_TABLE)
        wanted = _as_str_set(paths, "paths")
        if table is None or not wanted:
            return
        predicate = _sql_in("path", wanted)
        with _lance_errors("clearing errors", self.directory):
            if table.count_rows(predicate):
                table.delete(predicate)

    def delete_paths(self, paths: Collection[str]) -> int:
        """Delete all items and errors of ``paths``; return how many items were deleted."""
        wanted = _as_str_set(paths, "paths")
        table = self._tables.get(ITEMS_TABLE)
        deleted = 0
        if table is not None and wanted:
            predicate = _sql_in("path", wanted)
            with _lance_errors(f"deleting {len(wanted)} path(s)", self.directory):
                deleted = int(table.count_rows(predicate))
                if deleted:
                    table.delete(predicate)
        self.clear_errors(wanted)
        logger.debug("deleted %d item(s) of %d path(s)", deleted, len(wanted))
        return deleted

    def optimize(self) -> None:
        """Compact every table's fragments and index ``items`` on its key columns.

        Run once per ingest, not per write. Old versions are kept for LanceDB's default
        retention (7 days), so readers holding an older version are not broken.
        """
        for name, table in sorted(self._tables.items()):
            with _lance_errors(f"optimizing table {name!r}", self.directory):
                table.optimize()
        items = self._tables.get(ITEMS_TABLE)
        if items is not None and items.count_rows():
            self._ensure_scalar_indexes(items)

    def _ensure_scalar_indexes(self, items: Any) -> None:
        indexed = {column for index in items.list_indices() for column in index.columns}
        for column in _INDEXED_ITEM_COLUMNS:
            if column not in indexed:
                with _lance_errors(f"indexing items.{column}", self.directory):
                    items.create_index(column, config=BTree())
                logger.debug("created a BTree index on items.%s", column)

    def count_by_modality(self) -> dict[str, int]:
        """Return the number of items per modality."""
        table = self._tables.get(ITEMS_TABLE)
        counts: Counter[str] = Counter()
        if table is not None:
            for batch in self.scan(table, ["modality"]):
                for entry in pc.value_counts(batch["modality"]).to_pylist():
                    counts[entry["values"]] += entry["counts"]
        return dict(counts)
