"""FAISS sidecar indexes over the LanceDB ``items`` table.

LanceDB stays the source of truth. A FAISS index is a derived sidecar in ``<index dir>/faiss/``
with a manifest (table version covered, model, factory string, metric, dim, count, build time,
measured recall), keyed on bindsearch's stable ``id`` through a label map — never on LanceDB row
ids — and can be rebuilt at any time (:func:`build_index`).

* :mod:`~bindsearch.indexes.choose` — the automatic choice of index (rules in its docstring);
* :mod:`~bindsearch.indexes.build` / :mod:`~bindsearch.indexes.tune` — build, train, tune
  nprobe/efSearch to a recall@10 target, record the measured recall;
* :mod:`~bindsearch.indexes.search` — :class:`VectorIndex`: never stale, filtered search
  without starvation, GPU when available;
* :mod:`~bindsearch.indexes.refresh` — incremental update or rebuild after ingest;
* :mod:`~bindsearch.indexes.manifest` — the manifest and the crash-safe layout on disk.

Metric: inner product on unit vectors, i.e. cosine similarity.
"""

from __future__ import annotations

from bindsearch.indexes.build import build_index
from bindsearch.indexes.choose import choose_factory, default_memory_bytes, parse_bytes
from bindsearch.indexes.exact import exact_search
from bindsearch.indexes.manifest import IndexManifest
from bindsearch.indexes.refresh import refresh_index
from bindsearch.indexes.search import SidecarCache, VectorIndex, index_info, load_index

__all__ = [
    "IndexManifest",
    "SidecarCache",
    "VectorIndex",
    "build_index",
    "choose_factory",
    "default_memory_bytes",
    "exact_search",
    "index_info",
    "load_index",
    "parse_bytes",
    "refresh_index",
]
