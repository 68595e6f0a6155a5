"""Write stage: finished files -> Arrow rows -> one LanceDB commit per chunk of files."""

from __future__ import annotations

import time
from collections import OrderedDict
from collections.abc import Callable
from datetime import datetime, timezone

import numpy as np
import pyarrow as pa

from bindsearch.ingest.batcher import EncodeBatcher
from bindsearch.ingest.prepare import PreparedFile, PreparedItem
from bindsearch.ingest.report import Failure, IngestReport
from bindsearch.store import ErrorRecord, Store, items_schema, make_item_id

_Key = tuple[str, str, float | None, float | None]  # sha256, modality, start_s, end_s


class _FileInProgress:
    """A prepared file whose item vectors are still being encoded."""

    def __init__(self, prepared: PreparedFile) -> None:
        self.prepared = prepared
        self.vectors: list[np.ndarray | None] = [None] * len(prepared.items)
        self.missing = len(prepared.items)

    def key(self, slot: int) -> _Key | None:
        sha = self.prepared.sha256
        item = self.prepared.items[slot]
        return None if sha is None else (sha, item.modality, item.start_s, item.end_s)

    def set(self, slot: int, vector: np.ndarray) -> bool:
        """Store one vector and drop the item's model input; True when the file is complete."""
        self.vectors[slot] = vector
        self.prepared.items[slot].clips = _NO_CLIPS  # only the vector is needed from here on
        self.missing -= 1
        return self.missing == 0


_NO_CLIPS = np.empty((0,), dtype=np.float32)

#: Vectors kept in memory for content de-duplication (older ones are re-read from the store).
_CACHE_ENTRIES = 10_000


class RowWriter:
    """Collects finished files and commits them in chunks of ``commit_files`` files.

    Per commit, in this order: clear the files' old error rows, record their new failures,
    then replace their item rows in one atomic commit (see ``pipeline``'s crash-safety note).
    Identical content (same sha256) reuses vectors already stored, made in this run, or being
    made (a duplicate waits for the first copy's vector instead of being encoded again).
    """

    def __init__(
        self,
        store: Store,
        report: IngestReport,
        commit_files: int,
        on_progress: Callable[[IngestReport], None] | None,
    ) -> None:
        self.store = store
        self.report = report
        self.commit_files = commit_files
        self.on_progress = on_progress
        self.known_sha = {_short(s.sha256) for s in store.file_states().values()}
        self.cache: OrderedDict[_Key, np.ndarray] = OrderedDict()
        self.inflight: dict[_Key, list[tuple[_FileInProgress, int]]] = {}
        self.ready: list[_FileInProgress] = []

    def accept(self, prepared: PreparedFile, batcher: EncodeBatcher) -> None:
        """Take a prepared file: reuse known vectors or queue its items for encoding."""
        entry = _FileInProgress(prepared)
        if prepared.sha256 is not None and _short(prepared.sha256) in self.known_sha:
            self._load_stored(entry)
        to_encode = []
        for slot in range(len(prepared.items)):
            key = entry.key(slot)
            if key is not None and key in self.cache:
                entry.set(slot, self.cache[key])
            elif key is not None and key in self.inflight:
                self.inflight[key].append((entry, slot))
            else:
                if key is not None:
                    self.inflight[key] = []
                to_encode.append(slot)
        if prepared.items and not to_encode:
            self.report.files_deduplicated += 1
        if entry.missing == 0:
            self._finish(entry)
        for slot in to_encode:
            item = prepared.items[slot]
            batcher.add(entry, slot, item.modality, item.clips)

    def _load_stored(self, entry: _FileInProgress) -> None:
        keys = [entry.key(slot) for slot in range(len(entry.prepared.items))]
        if all(k in self.cache for k in keys):
            return
        assert entry.prepared.sha256 is not None
        for key, vector in self.store.find_vectors_by_sha256([entry.prepared.sha256]).items():
            self._remember(key, vector)

    def _remember(self, key: _Key, vector: np.ndarray) -> None:
        self.cache[key] = vector
        self.cache.move_to_end(key)
        while len(self.cache) > _CACHE_ENTRIES:
            self.cache.popitem(last=False)

    def deliver(self, owner: object, slot: int, vector: np.ndarray) -> None:
        """Receive one encoded item vector (called by the batcher); also feeds waiting copies."""
        assert isinstance(owner, _FileInProgress)
        key = owner.key(slot)
        if owner.set(slot, vector):
            self._finish(owner)
        if key is None:
            return
        self._remember(key, vector)
        for waiting, waiting_slot in self.inflight.pop(key, []):
            if waiting.set(waiting_slot, vector):
                self._finish(waiting)

    def _finish(self, entry: _FileInProgress) -> None:
        self.ready.append(entry)
        if len(self.ready) >= self.commit_files:
            self.commit()

    def commit(self) -> None:
        """Write all finished files (no-op when none)."""
        if not self.ready:
            return
        started = time.perf_counter()
        batch, self.ready = self.ready, []
        paths = [e.prepared.job.path for e in batch]
        failures = [(e.prepared, f) for e in batch for f in e.prepared.failures]
        self.store.clear_errors(paths)
        if failures:
            self.store.record_errors([_error_record(p, f) for p, f in failures])
        table = _rows(batch, self.store.dim)
        self.store.replace_files(paths, table)
        self._account(batch, failures, table)
        self.report.seconds_by_stage["write"] += time.perf_counter() - started
        if self.on_progress is not None:
            self.on_progress(self.report)

    def _account(self, batch: list[_FileInProgress], failures: list, table: pa.Table) -> None:
        r = self.report
        r.rows_written += table.num_rows
        for modality in table.column("modality").to_pylist():
            r.rows_by_modality[modality] += 1
        for prepared, f in failures:
            r.failures.append(Failure(prepared.job.path, f.modality, f.stage, f.error))
        r.files_failed += sum(1 for e in batch if not e.prepared.items)
        r.files_ingested += sum(1 for e in batch if e.prepared.items)
        self.known_sha.update(_short(e.prepared.sha256) for e in batch if e.prepared.sha256)


def _short(sha256: str) -> bytes:
    """16-byte digest prefix: enough to find candidates, a quarter of the hex string's memory."""
    return bytes.fromhex(sha256[:32])


def _error_record(prepared: PreparedFile, failure) -> ErrorRecord:
    job = prepared.job
    return ErrorRecord(
        path=job.path,
        modality=failure.modality,
        stage=failure.stage,
        error=failure.error,
        size_bytes=job.size_bytes,
        mtime=job.mtime,
    )


def _rows(batch: list[_FileInProgress], dim: int) -> pa.Table:
    now = datetime.now(timezone.utc)
    columns: dict[str, list] = {name: [] for name in items_schema(dim).names}
    for entry in batch:
        p = entry.prepared
        for item, vector in zip(p.items, entry.vectors, strict=True):
            _append_row(columns, p, item, vector, now)
    schema = items_schema(dim)
    vectors = columns.pop("vector")
    flat = np.asarray(vectors, dtype=np.float32).reshape(-1)
    arrays = [pa.array(columns[name], type=schema.field(name).type) for name in columns]
    vector_type = schema.field("vector").type
    arrays.append(
        pa.FixedSizeListArray.from_arrays(pa.array(flat, pa.float32()), dim).cast(vector_type)
    )
    return pa.Table.from_arrays(arrays, names=[*columns, "vector"]).select(schema.names)


def _append_row(columns: dict[str, list], p: PreparedFile, item: PreparedItem, vector, now) -> None:
    job = p.job
    values = {
        "id": make_item_id(job.path, item.modality, item.start_s, item.end_s),
        "path": job.path,
        "modality": item.modality,
        "start_s": item.start_s,
        "end_s": item.end_s,
        "sha256": p.sha256,
        "size_bytes": job.size_bytes,
        "mtime": job.mtime,
        "duration_s": item.duration_s,
        "width": item.width,
        "height": item.height,
        "text": item.text,
        "vector": vector,
        "ingested_at": now,
    }
    for name, value in values.items():
        columns[name].append(value)
