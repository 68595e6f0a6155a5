"""Searching a FAISS sidecar: never stale, filtered without starvation, GPU when it can.

**Staleness.** When the store's ``items`` version differs from the manifest's, the current
version keys (``id``, ``ingested_at`` — two narrow columns) are diffed against the label map
(:func:`~bindsearch.indexes.labels.diff_table`): labels whose row was deleted or rewritten are
excluded with an ``IDSelectorNot(IDSelectorBatch)``; rows not covered by the index (added or
rewritten since the build) are read by id and searched exactly, and the two ranked lists are
merged. The overlay is computed once per table version and cached in the object.

**Filters.** ``allowed_ids`` is turned into the labels of live rows (an ``is_in`` over the label
map) plus allowed rows of the overlay:

* at most :data:`DIRECT_EXACT_MAX` allowed ids: their rows are read from LanceDB and searched
  exactly (a very selective filter gains nothing from ANN and would starve it);
* otherwise the CPU index searches with an ``IDSelectorBatch`` over the allowed labels; queries
  that get fewer than ``min(k, allowed rows)`` hits are searched again completely — an IVF
  index with ``nprobe = nlist`` (the selector skips non-allowed vectors before any distance is
  computed), any other index exactly over the allowed rows' vectors.

So a filtered search returns ``k`` hits whenever ``k`` allowed rows exist.

**GPU.** GPU FAISS ignores id selectors and caps ``k`` at 2048, so the GPU copy serves
unfiltered searches with ``k + excluded ≤ 2048`` (over-fetching and dropping excluded labels);
everything else runs on the CPU index, which is always kept.
"""

from __future__ import annotations

import json
import logging
import threading
from collections.abc import Collection
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import faiss
import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from bindsearch.errors import ModelMismatchError, VectorIndexError
from bindsearch.indexes import manifest as mf
from bindsearch.indexes.exact import Hits, as_queries, exact_search, merge_hits
from bindsearch.indexes.gpu import GpuIndex, index_to_gpu, resolve_use_gpu
from bindsearch.indexes.labels import (
    REMOVED,
    LabelMap,
    RowBlock,
    diff_table,
    read_keys,
    read_rows_by_id,
)
from bindsearch.indexes.tune import search_parameters, tuning_knob
from bindsearch.store import Store

logger = logging.getLogger(__name__)

#: Filters with at most this many allowed ids are answered exactly from LanceDB rows.
DIRECT_EXACT_MAX = 2_048


@dataclass
class Overlay:
    """The difference between the index and one table version, ready for searching.

    ``excluded``: labels never to return (tombstones and rows deleted or rewritten since the
    manifest's version); ``extra``: rows no live label covers, searched exactly;
    ``live_labels``: labels that may be returned; ``selector``: FAISS selector excluding
    ``excluded`` (``None`` when nothing is excluded).
    """

    table_version: int
    excluded: np.ndarray
    extra: RowBlock
    live_labels: np.ndarray
    selector: Any = field(init=False)

    def __post_init__(self) -> None:
        self.selector = (
            faiss.IDSelectorNot(faiss.IDSelectorBatch(self.excluded))
            if len(self.excluded)
            else None
        )


class VectorIndex:
    """A loaded FAISS sidecar over a store's ``items`` table. Use :func:`load_index`."""

    def __init__(
        self, store: Store, manifest: mf.IndexManifest, index: Any, labels: LabelMap,
        gpu: GpuIndex | None = None,
    ) -> None:  # fmt: skip
        """Wrap a loaded index; use :func:`load_index` instead of calling this."""
        self.manifest = manifest
        self._store = store
        self._index = index
        self._labels = labels
        self._gpu = gpu
        self._overlay: Overlay | None = None

    @property
    def on_gpu(self) -> bool:
        """Whether unfiltered searches run on a GPU copy."""
        return self._gpu is not None

    def search(self, xq: np.ndarray, k: int, *, allowed_ids: Collection[str] | None = None) -> Hits:
        """The ``k`` best ``(id, score)`` per query row of ``xq``, best first.

        Scores are inner products of unit vectors (cosine). Rows added since the build are
        found, rows deleted since are never returned, and with ``allowed_ids`` only those rows
        are returned — ``k`` of them whenever ``k`` exist.
        """
        if isinstance(k, bool) or not isinstance(k, (int, np.integer)) or k < 1:
            raise VectorIndexError(f"k must be a positive integer, got {k!r}")
        k = int(k)
        queries = as_queries(xq, self.manifest.dim)
        overlay = self.overlay()
        if allowed_ids is None:
            hits = self._search_ann(queries, k, overlay)
            if len(overlay.extra):
                extra = exact_search(
                    overlay.extra.vectors, overlay.extra.ids.to_pylist(), queries, k
                )
                hits = merge_hits(hits, extra, k)
            # An ANN index tuned for k = 10 can come back short for a large k (an IVF's
            # probed lists hold fewer than k rows): those queries are completed exhaustively.
            want = min(k, len(overlay.live_labels) + len(overlay.extra))
            everything = np.ones(len(overlay.extra), dtype=bool)
            return self._fill_short(
                queries, hits, k, want, overlay.live_labels, overlay.selector, everything, overlay
            )
        return self._search_allowed(queries, k, _as_id_array(allowed_ids), overlay)

    def overlay(self) -> Overlay:
        """The exclusions and extra rows for the store's current table version (cached)."""
        version = self._store.version()
        if self._overlay is not None and self._overlay.table_version == version:
            return self._overlay
        tombstones = self._labels.tombstones()
        live = self._labels.live_labels()
        dim = self.manifest.dim
        if version == self.manifest.table_version:
            extra = RowBlock.concat([], dim)
            excluded = tombstones
        else:
            table = self._store.items_table()
            diff = diff_table(self._labels, read_keys(table))
            extra = read_rows_by_id(table, diff.new_ids, dim)
            excluded = np.union1d(tombstones, diff.dead_labels).astype(np.int64)
            live = np.setdiff1d(live, diff.dead_labels, assume_unique=True)
            logger.debug(
                "table version %d vs index %d: %d new row(s), %d dead label(s)",
                version, self.manifest.table_version, len(extra), len(diff.dead_labels),
            )  # fmt: skip
        self._overlay = Overlay(version, excluded, extra, live)
        return self._overlay

    def _search_ann(self, xq: np.ndarray, k: int, overlay: Overlay) -> Hits:
        n_excluded = len(overlay.excluded)
        if self._gpu is not None and k + n_excluded <= self._gpu.max_k():
            scores, labels = self._gpu.search(xq, k + n_excluded)
            if n_excluded:
                labels = np.where(np.isin(labels, overlay.excluded), -1, labels)
            return self._to_hits(scores, labels, k)
        return self._search_cpu(xq, k, overlay.selector, self.manifest.search_params)

    def _search_cpu(self, xq: np.ndarray, k: int, selector: Any, params: dict[str, int]) -> Hits:
        search_params = search_parameters(self._index, params, selector)
        scores, labels = self._index.search(xq, k, params=search_params)
        return self._to_hits(scores, labels, k)

    def _to_hits(self, scores: np.ndarray, labels: np.ndarray, k: int) -> Hits:
        """Labels → ids; ``-1`` (no result) and excluded (``-1`` too) are dropped."""
        valid = labels >= 0
        ids = self._labels.ids.take(pa.array(labels[valid])).to_pylist()
        found = list(zip(ids, scores[valid].tolist(), strict=True))
        ends = np.cumsum(valid.sum(axis=1)).tolist()
        starts = [0, *ends][: len(ends)]
        return [found[start:end][:k] for start, end in zip(starts, ends, strict=True)]

    def _search_allowed(self, xq: np.ndarray, k: int, allowed: pa.Array, overlay: Overlay) -> Hits:
        table = self._store.items_table()
        dim = self.manifest.dim
        if len(allowed) <= DIRECT_EXACT_MAX:
            rows = read_rows_by_id(table, allowed, dim)
            return exact_search(rows.vectors, rows.ids.to_pylist(), xq, k)
        live_ids = self._labels.ids.take(pa.array(overlay.live_labels))
        mask = pc.is_in(live_ids, value_set=allowed).to_numpy(zero_copy_only=False)
        allowed_labels = overlay.live_labels[mask]
        extra_mask = pc.is_in(overlay.extra.ids, value_set=allowed).to_numpy(zero_copy_only=False)
        want = min(k, len(allowed_labels) + int(extra_mask.sum()))
        hits: Hits = [[] for _ in range(len(xq))]
        selector = faiss.IDSelectorBatch(allowed_labels)
        if len(allowed_labels):
            hits = self._search_cpu(xq, k, selector, self.manifest.search_params)
        if extra_mask.any():
            extra_ids = overlay.extra.ids.filter(pa.array(extra_mask)).to_pylist()
            extra_hits = exact_search(overlay.extra.vectors[extra_mask], extra_ids, xq, k)
            hits = merge_hits(hits, extra_hits, k)
        return self._fill_short(xq, hits, k, want, allowed_labels, selector, extra_mask, overlay)

    def _fill_short(
        self, xq: np.ndarray, hits: Hits, k: int, want: int, allowed_labels: np.ndarray,
        selector: Any, extra_mask: np.ndarray, overlay: Overlay,
    ) -> Hits:  # fmt: skip
        """Redo, over every allowed row, the queries that came back with fewer than ``want``.

        ``selector`` passes exactly ``allowed_labels`` (``None``: every label of the index).
        """
        short = [i for i, row in enumerate(hits) if len(row) < want]
        if short:
            logger.debug("ANN search came back short for %d query(ies)", len(short))
            complete = self._complete(xq[short], k, allowed_labels, selector, extra_mask, overlay)
            for position, row in zip(short, complete, strict=True):
                hits[position] = row
        return hits

    def _complete(
        self, xq: np.ndarray, k: int, allowed_labels: np.ndarray, selector: Any,
        extra_mask: np.ndarray, overlay: Overlay,
    ) -> Hits:  # fmt: skip
        """Search ``xq`` over every allowed row: exhaustive IVF, else exact on their vectors."""
        if not len(allowed_labels):
            hits: Hits = [[] for _ in range(len(xq))]
        elif tuning_knob(self._index) == "nprobe":
            ivf = faiss.extract_index_ivf(self._index)
            params = {**self.manifest.search_params, "nprobe": int(ivf.nlist)}
            hits = self._search_cpu(xq, k, selector, params)
        else:
            ids = self._labels.ids.take(pa.array(allowed_labels))
            rows = read_rows_by_id(self._store.items_table(), ids, self.manifest.dim)
            hits = exact_search(rows.vectors, rows.ids.to_pylist(), xq, k)
        if extra_mask.any():
            extra_ids = overlay.extra.ids.filter(pa.array(extra_mask)).to_pylist()
            hits = merge_hits(
                hits, exact_search(overlay.extra.vectors[extra_mask], extra_ids, xq, k), k
            )
        return hits


def _as_id_array(allowed_ids: Collection[str]) -> pa.Array:
    if isinstance(allowed_ids, (str, bytes)):
        raise VectorIndexError("allowed_ids must be a collection of ids, not a single string")
    values = allowed_ids if isinstance(allowed_ids, (set, frozenset)) else set(allowed_ids)
    try:
        return pa.array(sorted(values), pa.string())
    except (pa.ArrowInvalid, pa.ArrowTypeError, TypeError) as exc:
        raise VectorIndexError(f"allowed_ids must be strings: {exc}") from exc


def index_info(store: Store) -> mf.IndexManifest | None:
    """The manifest of ``store``'s FAISS sidecar, or ``None`` if none was built."""
    return mf.read_manifest(store.directory)


#: ``faiss.read_index`` flags of a search-only load: map the file instead of copying it.
MMAP_FLAGS = faiss.IO_FLAG_MMAP | faiss.IO_FLAG_READ_ONLY


def read_index_file(path: Path, *, mmap: bool = True) -> Any:
    """Read a FAISS index file; memory-mapped read-only when ``mmap`` and the type allows it.

    A mapped index shares the page cache instead of copying the file into the process (a
    100k x 1024 IVF-Flat index is 410 MB), so a cold process starts searching at once and
    only touches the lists it probes. Every index type bindsearch builds reads this way in
    FAISS 1.15 with identical results; a type that refuses it is read normally. Only for
    searching: the result must not be modified (refresh reads its own copy).
    """
    if mmap:
        try:
            return faiss.read_index(str(path), MMAP_FLAGS)
        except RuntimeError as exc:
            logger.debug("memory-mapped read of %s failed (%s); reading it", path, exc)
    return faiss.read_index(str(path))


def load_index(
    store: Store, *, use_gpu: bool | None = None, manifest: mf.IndexManifest | None = None,
    mmap: bool = True,
) -> VectorIndex | None:  # fmt: skip
    """Load ``store``'s FAISS sidecar (``None`` if never built), on the GPU when there is one.

    ``manifest``: the current manifest if already read. ``mmap``: map the index file
    read-only (see :func:`read_index_file`). Raises ``ModelMismatchError`` when the sidecar was
    built for another model or dimension than the table now holds (rebuild it),
    ``VectorIndexError`` when its files are unreadable.
    """
    if manifest is None:
        manifest = mf.read_manifest(store.directory)
    if manifest is None:
        return None
    problem = mf.incompatibility(manifest, store.model_info())
    if problem is not None:
        raise ModelMismatchError(f"{problem}; rebuild it with `bindsearch index build`")
    directory = mf.generation_dir(store.directory, manifest)
    try:
        index = read_index_file(directory / mf.INDEX_FILE, mmap=mmap)
    except RuntimeError as exc:
        raise VectorIndexError(
            f"cannot read FAISS index {directory / mf.INDEX_FILE}: {exc}; rebuild it"
        ) from exc
    labels = LabelMap.load(directory / mf.LABELS_FILE)
    present = int(np.count_nonzero(labels.state != REMOVED))
    if int(index.ntotal) != present or len(labels) != manifest.n_labels:
        raise VectorIndexError(
            f"FAISS sidecar {directory} is inconsistent ({index.ntotal} vectors, {present} "
            f"labels present, manifest says {manifest.n_labels}); rebuild it"
        )
    gpu = index_to_gpu(index, manifest.search_params) if resolve_use_gpu(use_gpu) else None
    return VectorIndex(store, manifest, index, labels, gpu)


class SidecarCache:
    """The loaded :class:`VectorIndex` of one store, reloaded only when its manifest changes.

    :meth:`get` re-reads ``manifest.json`` (a small file) on every call and loads the index
    again only when the manifest differs from the one loaded (a rebuild, a refresh, a new
    generation) or the sidecar is gone; a changed ``items`` table version with the same
    manifest is handled by the loaded index itself (its overlay). Thread-safe.
    """

    def __init__(self, *, use_gpu: bool | None = None) -> None:
        self._use_gpu = use_gpu
        self._lock = threading.Lock()
        self._key: str | None = None
        self._index: VectorIndex | None = None
        self.loads = 0

    def get(self, store: Store) -> VectorIndex | None:
        """The current sidecar of ``store`` (``None`` when none is built)."""
        manifest = mf.read_manifest(store.directory)
        with self._lock:
            if manifest is None:
                self._key, self._index = None, None
                return None
            key = json.dumps(manifest.to_dict(), sort_keys=True)
            cached = self._index
            if cached is None or key != self._key or cached._store is not store:
                cached = load_index(store, use_gpu=self._use_gpu, manifest=manifest)
                self._key, self._index = key, cached
                self.loads += 1
            return cached

    def clear(self) -> None:
        """Forget the loaded index (the next :meth:`get` loads it again)."""
        with self._lock:
            self._key, self._index = None, None
