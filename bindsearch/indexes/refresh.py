"""Keeping a FAISS sidecar up to date after ingest commits.

:func:`refresh_index` is what ingest calls after writing. With no sidecar it does nothing;
otherwise it diffs the table against the label map (see :mod:`bindsearch.indexes.labels`) and

* **rebuilds** (same factory if one was given, else a fresh automatic choice for the new size;
  same recall target and memory budget) when the *stale share* — rows not covered plus labels
  deleted or rewritten, including earlier tombstones, over the table's row count — exceeds
  ``rebuild_threshold``, or when the model changed;
* otherwise **updates incrementally**: new and rewritten rows are added under new labels
  (appended to the label map), and labels of deleted or rewritten rows are taken out with
  ``remove_ids`` on a plain IVF index, or tombstoned (excluded at search time) for index types
  whose ``remove_ids`` is missing or would renumber labels (Flat, HNSW, refined indexes).

The search parameters and recorded recall stay those measured at build time; added rows are
assigned to the trained IVF lists, which keeps recall close as long as the data distribution
holds — the threshold bounds the drift.
"""

from __future__ import annotations

import logging
import time
from dataclasses import replace

import faiss

from bindsearch.errors import VectorIndexError
from bindsearch.indexes import manifest as mf
from bindsearch.indexes.build import build_index, save_generation
from bindsearch.indexes.labels import (
    REMOVED,
    TOMBSTONE,
    LabelMap,
    TableDiff,
    diff_table,
    read_keys,
    read_rows_by_id,
)
from bindsearch.store import Store

logger = logging.getLogger(__name__)

DEFAULT_REBUILD_THRESHOLD = 0.2


def refresh_index(
    store: Store, *, rebuild_threshold: float = DEFAULT_REBUILD_THRESHOLD
) -> mf.IndexManifest | None:
    """Bring ``store``'s FAISS sidecar to the table's current version; ``None`` if none exists.

    Returns the new manifest (unchanged when the index was already current).
    """
    if not 0.0 <= rebuild_threshold <= 1.0:
        raise VectorIndexError(f"rebuild_threshold must be in [0, 1], got {rebuild_threshold}")
    manifest = mf.read_manifest(store.directory)
    if manifest is None:
        return None
    problem = mf.incompatibility(manifest, store.model_info())
    if problem is not None:
        logger.info("rebuilding the FAISS index: %s", problem)
        return _rebuild(store, manifest)
    version = store.version()
    if manifest.table_version == version:
        return manifest
    generation = mf.generation_dir(store.directory, manifest)
    labels = LabelMap.load(generation / mf.LABELS_FILE)
    table = store.items_table()
    diff = diff_table(labels, read_keys(table))
    stale = len(diff.new_ids) + len(diff.dead_labels) + len(labels.tombstones())
    share = stale / max(diff.n_rows, 1)
    if diff.n_rows and share > rebuild_threshold:  # an emptied table keeps a (fully dead) index
        logger.info("rebuilding the FAISS index: stale share %.3f > %.3f", share, rebuild_threshold)
        return _rebuild(store, manifest)
    if diff.is_empty:
        updated = replace(manifest, table_version=version)
        mf.write_manifest(store.directory, updated)
        return updated
    return _update(store, manifest, labels, diff, version)


def _rebuild(store: Store, manifest: mf.IndexManifest) -> mf.IndexManifest:
    return build_index(
        store,
        factory=None if manifest.factory_auto else manifest.factory,
        recall=manifest.recall_target,
        memory_bytes=manifest.memory_bytes,
    )


def _update(
    store: Store, manifest: mf.IndexManifest, labels: LabelMap, diff: TableDiff, version: int
) -> mf.IndexManifest:
    started = time.perf_counter()
    generation = mf.generation_dir(store.directory, manifest)
    try:
        index = faiss.read_index(str(generation / mf.INDEX_FILE))
    except RuntimeError as exc:
        raise VectorIndexError(f"cannot read the FAISS index in {generation}: {exc}") from exc
    rows = read_rows_by_id(store.items_table(), diff.new_ids, manifest.dim)
    if len(rows):
        index.add(rows.vectors)
        labels = labels.extend(rows.ids, rows.ingested_us)
    if len(diff.dead_labels):
        if _can_remove(index):
            index.remove_ids(faiss.IDSelectorBatch(diff.dead_labels))
            labels = labels.with_state(diff.dead_labels, REMOVED)
        else:
            labels = labels.with_state(diff.dead_labels, TOMBSTONE)
    n_live = len(labels.live_labels())
    updated = replace(
        manifest,
        table_version=version,
        count=n_live,
        n_labels=len(labels),
        n_deleted=len(labels.tombstones()),
        extra={**manifest.extra, "last_refresh_seconds": round(time.perf_counter() - started, 3)},
    )
    save_generation(store, index, labels, updated)
    logger.info(
        "refreshed the FAISS index: +%d row(s), -%d label(s), now %d live",
        len(rows), len(diff.dead_labels), n_live,
    )  # fmt: skip
    return updated


def _can_remove(index: object) -> bool:
    """Plain IVF indexes remove ids in place without renumbering the others."""
    return isinstance(index, faiss.IndexIVF)
