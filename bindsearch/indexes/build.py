"""Building a FAISS sidecar from the ``items`` table, and tuning it to a recall target.

A build reads the table at the version the store's handle pins, in Arrow batches (never all
vectors at once, never LanceDB row ids), in up to two passes:

1. *Sample* (only for indexes that train or tune): a seeded random sample of rows — up to
   1,000 (at most a fifth of the table) held-out query rows for tuning, and a disjoint training sample of
   ``min(n, max(20,000, min(64·nlist, 262,144)))`` rows (autofaiss trains on ~100 points per
   list; FAISS k-means subsamples to 256 per list anyway).
2. *Add*: every other row is added with label = its position in the scan; the label map
   records its ``id`` and ``ingested_at``. The same pass computes the queries' exact top ``k``
   among them (a FAISS ``ResultHeap`` over batches) for tuning. The query rows are truly held
   out: they join the index (as the last labels) only after tuning, so recall is measured as
   for a query that is not in the index.

Then :func:`~bindsearch.indexes.tune.tune_index` picks the cheapest ``nprobe``/``efSearch``
(and ``k_factor``) reaching the recall target, and the files are committed atomically (see
:mod:`bindsearch.indexes.manifest`).

**Racing candidates.** With several candidate factories (the automatic choice's IVF-Flat and
IVF-PQ fast-scan + refine, :func:`~bindsearch.indexes.choose.candidate_factories`, or an
explicit ``candidates`` list), the first is built as above; each further one reuses the first
one's trained IVF coarse quantizer when the list counts match (k-means runs once), trains its
own codes on the same sample, adds every row in the same order (same labels) and is tuned on
the same held-out queries. Each tuned candidate's speed is then measured on those queries,
single (:data:`RACE_SINGLE_QUERIES` queries one at a time) and batched (all at once); among the
candidates reaching the recall target the one with the highest geometric mean of the two QPS
is kept (none reaching it: the highest recall). The figures of every candidate are recorded in
the manifest's ``candidates``.
"""

from __future__ import annotations

import datetime as dt
import logging
import time
from dataclasses import dataclass
from typing import Any

import faiss
import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from bindsearch.errors import VectorIndexError
from bindsearch.indexes import manifest as mf
from bindsearch.indexes.choose import (
    MIN_POINTS_PER_CENTROID,
    candidate_factories,
    estimate_bytes,
)
from bindsearch.indexes.gpu import resolve_use_gpu, train_on_gpu
from bindsearch.indexes.labels import ROW_COLUMNS, LabelMap, RowBlock, scan
from bindsearch.indexes.tune import (
    RECALL_K,
    RecallProbe,
    search_parameters,
    tune_index,
    tuning_knob,
)
from bindsearch.store import Store

logger = logging.getLogger(__name__)

#: Held-out stored vectors used as queries when tuning and measuring recall.
MAX_QUERY_ROWS = 1_000
_MIN_TRAIN_ROWS = 20_000
_MAX_TRAIN_ROWS = 262_144
_TRAIN_ROWS_PER_LIST = 64
#: Held-out queries searched one at a time to measure a racing candidate's single-query speed.
RACE_SINGLE_QUERIES = 200


def utc_now() -> str:
    """The current UTC time as ISO 8601."""
    return dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds")


def create_index(factory: str, dim: int) -> Any:
    """``faiss.index_factory`` for inner product, with a helpful error for a bad string."""
    try:
        return faiss.index_factory(dim, factory, faiss.METRIC_INNER_PRODUCT)
    except RuntimeError as exc:
        raise VectorIndexError(
            f"FAISS cannot build factory string {factory!r} for dimension {dim}: "
            f"{str(exc).strip().splitlines()[-1]}. Examples: 'Flat', 'IVF1024,Flat', "
            "'IVF1024,PQ64x8,Refine(SQ8)', 'HNSW32,Flat'."
        ) from exc


def train_rows(index: Any, n_rows: int) -> int:
    """How many sampled rows train ``index`` (0 when it needs no training)."""
    if index.is_trained:
        return 0
    ivf = faiss.try_extract_index_ivf(index)
    nlist = int(ivf.nlist) if ivf is not None else 1
    wanted = max(_MIN_TRAIN_ROWS, min(_TRAIN_ROWS_PER_LIST * nlist, _MAX_TRAIN_ROWS))
    return min(n_rows, wanted)


def build_index(
    store: Store,
    *,
    factory: str | None = None,
    recall: float = 0.95,
    memory_bytes: int | None = None,
    use_gpu: bool | None = None,
    candidates: list[str] | None = None,
) -> mf.IndexManifest:
    """Build (or rebuild) the FAISS sidecar of ``store``'s ``items`` table; return its manifest.

    ``factory`` overrides the automatic choice (:mod:`bindsearch.indexes.choose`); ``recall``
    is the recall@10 target that search parameters are tuned to; ``memory_bytes`` bounds the
    automatic choice (default: half the physical memory); ``use_gpu`` (default: when FAISS sees
    a CUDA device) trains IVF k-means on the GPU. ``candidates`` (instead of ``factory``) lists
    factories to build, tune and race, keeping the fastest at the recall target (see the
    module docstring); the automatic choice races IVF-Flat and IVF-PQ where both fit. The
    previous index stays current until the new one is completely written.
    """
    if not 0.0 < recall <= 1.0:
        raise VectorIndexError(f"the recall target must be in (0, 1], got {recall}")
    if factory is not None and candidates:
        raise VectorIndexError("pass either a factory or candidates, not both")
    started = time.perf_counter()
    table = store.items_table()
    info = store.model_info() or {}
    dim, version = store.dim, store.version()
    n_rows = int(table.count_rows())
    if n_rows == 0:
        raise VectorIndexError(
            f"index {store.directory} has no items to build a FAISS index from; ingest first"
        )
    gpu = resolve_use_gpu(use_gpu)
    if candidates:
        factories = list(candidates)
    elif factory is not None:
        factories = [factory]
    else:
        factories = candidate_factories(n_rows, dim, memory_bytes, gpu=gpu)
    chosen = factories[0]
    index = create_index(chosen, dim)
    built = _fill(table, index, n_rows, dim, gpu, seed=version, keep_train=len(factories) > 1)
    params, measured = _tune(index, built.probe, recall)
    trials: list[dict[str, Any]] = []
    if len(factories) > 1 and built.probe is not None:
        first_s = time.perf_counter() - started
        trials.append(_trial(chosen, index, params, measured, built.probe, first_s))
        indexes = {chosen: index}
        for other in factories[1:]:
            other_started = time.perf_counter()
            other_index = _build_like(table, index, other, built, dim, gpu)
            other_params, other_recall = _tune(other_index, built.probe, recall)
            seconds = time.perf_counter() - other_started
            trials.append(
                _trial(other, other_index, other_params, other_recall, built.probe, seconds)
            )
            indexes[other] = other_index
            del other_index  # the loser is freed below, before the winner is written
        best = _winner(trials, recall)
        best["chosen"] = True
        chosen, params, measured = best["factory"], best["search_params"], best["recall_at_10"]
        index = indexes[chosen]
        indexes.clear()
        built.train = None
        logger.info("kept %s of %s", chosen, [t["factory"] for t in trials])
    built.add_held_out(index)
    manifest = mf.IndexManifest(
        table_version=version, model=info.get("model", ""), weights_id=info.get("weights_id", ""),
        factory=chosen, metric=mf.METRIC, dim=dim, count=len(built.labels),
        build_seconds=0.0, recall_at_10=measured, search_params=params, built_at=utc_now(),
        recall_target=recall, factory_auto=factory is None and not candidates,
        memory_bytes=memory_bytes, n_labels=len(built.labels),
        train_rows=built.n_train, query_rows=len(built.probe.xq) if built.probe else 0,
        build_device="cuda" if gpu else "cpu", faiss_version=faiss.__version__,
        candidates=trials,
    )  # fmt: skip
    manifest.build_seconds = round(time.perf_counter() - started, 3)
    save_generation(store, index, built.labels, manifest)
    logger.info(
        "built %s over %d rows of %s in %.1f s (recall@10 %s, %s)", chosen, n_rows,
        store.directory, manifest.build_seconds, measured, params,
    )  # fmt: skip
    return manifest


def _trial(
    factory: str, index: Any, params: dict[str, int], recall: float, probe: RecallProbe,
    seconds: float,
) -> dict[str, Any]:  # fmt: skip
    """A tuned candidate's measured figures (single and batched QPS on the probe's queries)."""
    search_params = search_parameters(index, params)
    xq = probe.xq
    single = xq[: min(RACE_SINGLE_QUERIES, len(xq))]
    index.search(single[:1], probe.k, params=search_params)  # warm-up
    began = time.perf_counter()
    for i in range(len(single)):
        index.search(single[i : i + 1], probe.k, params=search_params)
    qps_single = len(single) / max(time.perf_counter() - began, 1e-9)
    batch_s = min(probe.measure(index, params)[1] for _ in range(2))
    qps_batch = len(xq) / max(batch_s, 1e-9)
    logger.info(
        "candidate %s: recall@10 %.4f with %s, %.0f QPS single, %.0f QPS batched",
        factory, recall, params, qps_single, qps_batch,
    )  # fmt: skip
    return {
        "factory": factory, "search_params": params, "recall_at_10": recall,
        "qps_single": round(qps_single, 1), "qps_batch": round(qps_batch, 1),
        "build_seconds": round(seconds, 3), "index_bytes": _index_bytes(factory, index),
        "chosen": False,
    }  # fmt: skip


def _index_bytes(factory: str, index: Any) -> int:
    """The index's approximate resident size (the terms of :func:`choose.estimate_bytes`)."""
    return estimate_bytes(factory, int(index.ntotal), int(index.d))


def _winner(trials: list[dict[str, Any]], target: float) -> dict[str, Any]:
    """The fastest trial reaching ``target`` (geometric mean of single and batched QPS)."""
    passing = [t for t in trials if t["recall_at_10"] >= target]
    if not passing:
        return max(trials, key=lambda t: t["recall_at_10"])
    return max(passing, key=lambda t: (t["qps_single"] * t["qps_batch"]) ** 0.5)


def _build_like(
    table: Any, first: Any, factory: str, built: _Filled, dim: int, gpu: bool
) -> Any:  # fmt: skip
    """Build ``factory`` over the same rows, sample and labels as ``first`` (not yet tuned)."""
    index = create_index(factory, dim)
    _share_quantizer(first, index)
    if not index.is_trained:
        if built.train is None or len(built.train) == 0:
            raise VectorIndexError(f"no training sample kept for candidate {factory}")
        _train(index, built.train.vectors, gpu)
    labels = _add_rows(table, index, dim, built.held_out.ids, None)
    if not labels.ids.equals(built.labels.ids):
        raise VectorIndexError("the items table changed while it was read; retry the build")
    return index


def _share_quantizer(source: Any, target: Any) -> None:
    """Give ``target`` the trained IVF coarse quantizer of ``source`` when both have one."""
    src = faiss.try_extract_index_ivf(source)
    dst = faiss.try_extract_index_ivf(target)
    if src is None or dst is None or int(src.nlist) != int(dst.nlist):
        return
    if int(src.quantizer.ntotal) != int(src.nlist) or int(dst.quantizer.ntotal) != 0:
        return
    if not isinstance(faiss.downcast_index(dst.quantizer), faiss.IndexFlat):
        return
    dst.quantizer.add(src.quantizer.reconstruct_n(0, int(src.nlist)))


def save_generation(store: Store, index: Any, labels: LabelMap, manifest: mf.IndexManifest) -> None:
    """Write ``index`` and ``labels`` as a new generation and make ``manifest`` current."""
    name, tmp_dir = mf.new_generation(store.directory)
    manifest.generation = name
    manifest.updated_at = utc_now()
    try:
        faiss.write_index(index, str(tmp_dir / mf.INDEX_FILE))
        labels.save(tmp_dir / mf.LABELS_FILE)
        manifest.index_bytes = (tmp_dir / mf.INDEX_FILE).stat().st_size
        mf.commit_generation(store.directory, tmp_dir, manifest)
    except (OSError, RuntimeError, pa.ArrowException) as exc:
        mf.discard_generation(tmp_dir)
        raise VectorIndexError(f"cannot write the FAISS index of {store.directory}: {exc}") from exc


@dataclass
class _Filled:
    labels: LabelMap
    probe: RecallProbe | None
    n_train: int
    held_out: RowBlock
    train: RowBlock | None = None

    def add_held_out(self, index: Any) -> None:
        """Add the held-out query rows under the last labels."""
        if len(self.held_out):
            _add(index, self.held_out.vectors)
            self.labels = self.labels.extend(self.held_out.ids, self.held_out.ingested_us)


def _fill(
    table: Any, index: Any, n_rows: int, dim: int, gpu: bool, seed: int, keep_train: bool = False
) -> _Filled:
    """Sample, train and add every row; return the label map and the tuning probe.

    The query rows are held out: they are added last, after :func:`_tune` has measured recall
    on them against the other rows, so no query can find itself (or, in a graph index, its
    own links). ``keep_train`` keeps the training sample (for racing candidates).
    """
    rng = np.random.default_rng(seed)
    n_train = train_rows(index, n_rows)
    needs_probe = not (isinstance(index, faiss.IndexFlat) and tuning_knob(index) is None)
    n_query = min(MAX_QUERY_ROWS, n_rows // 5) if needs_probe else 0
    order = rng.permutation(n_rows) if (n_train or n_query) else np.empty(0, np.int64)
    query_pos = np.sort(order[:n_query])
    rest = order[n_query:] if n_rows - n_query >= n_train else order
    queries, train = _sample(table, dim, query_pos, np.sort(rest[:n_train]))
    if n_train:
        _train(index, train.vectors, gpu)
    n_indexed = n_rows - n_query
    heap = faiss.ResultHeap(n_query, min(RECALL_K, n_indexed), keep_max=True) if n_query else None
    labels = _add_rows(table, index, dim, queries.ids if n_query else None, heap, queries.vectors)
    if len(labels) != n_indexed or int(index.ntotal) != n_indexed:
        raise VectorIndexError(
            f"the items table changed while it was read ({n_rows} rows counted, "
            f"{len(labels) + n_query} read); retry the build"
        )
    probe = None
    if heap is not None:
        heap.finalize()
        probe = RecallProbe(queries.vectors, heap.I)
    return _Filled(labels, probe, n_train, queries, train if keep_train else None)


def _add_rows(
    table: Any, index: Any, dim: int, exclude: pa.Array | None, heap: Any,
    queries: np.ndarray | None = None,
) -> LabelMap:  # fmt: skip
    """Add every row but ``exclude`` (ids) in scan order; label = position among those added.

    With ``heap``, the exact top ``k`` of ``queries`` among the added rows accumulate in it.
    """
    ids: list[pa.Array] = []
    stamps: list[np.ndarray] = []
    for batch in scan(table, ROW_COLUMNS):
        if exclude is not None and len(exclude):
            batch = batch.filter(pc.invert(pc.is_in(batch.column("id"), value_set=exclude)))
        block = RowBlock.from_batch(batch, dim)
        offset = int(index.ntotal)
        _add(index, block.vectors)
        if heap is not None and queries is not None and len(block):
            scores, found = faiss.knn(queries, block.vectors, heap.k, faiss.METRIC_INNER_PRODUCT)
            heap.add_result(scores, np.where(found >= 0, found + offset, -1))
        ids.append(block.ids)
        stamps.append(block.ingested_us)
    if not ids:
        return LabelMap.from_keys(pa.array([], pa.string()), np.empty(0, np.int64))
    return LabelMap.from_keys(pa.concat_arrays(ids), np.concatenate(stamps))


def _sample(
    table: Any, dim: int, query_pos: np.ndarray, train_pos: np.ndarray
) -> tuple[RowBlock, RowBlock]:
    """Read the rows at scan positions ``query_pos`` and ``train_pos`` in one pass."""
    queries: list[RowBlock] = []
    train: list[RowBlock] = []
    if len(query_pos) == 0 and len(train_pos) == 0:
        return RowBlock.concat([], dim), RowBlock.concat([], dim)
    offset = 0
    for batch in scan(table, ROW_COLUMNS):
        end = offset + batch.num_rows
        for wanted, out in ((query_pos, queries), (train_pos, train)):
            lo, hi = np.searchsorted(wanted, [offset, end])
            if hi > lo:
                out.append(RowBlock.from_batch(batch.take(pa.array(wanted[lo:hi] - offset)), dim))
        offset = end
    return RowBlock.concat(queries, dim), RowBlock.concat(train, dim)


def _train(index: Any, vectors: np.ndarray, gpu: bool) -> None:
    """Train ``index`` on ``vectors``; k-means on the GPU when ``gpu``."""
    _fit_clustering(index, len(vectors))
    keep = train_on_gpu(index) if gpu else None
    try:
        index.train(vectors)
    except RuntimeError as exc:
        raise VectorIndexError(
            f"FAISS could not train the index on {len(vectors)} rows: "
            f"{str(exc).strip().splitlines()[-1]}; use a smaller nlist/PQ or more rows"
        ) from exc
    finally:
        ivf: Any = faiss.try_extract_index_ivf(index)
        if keep is not None and ivf is not None:
            ivf.clustering_index = None  # the GPU index is freed with ``keep``


def _fit_clustering(index: Any, n_train: int) -> None:
    """Refuse impossible training sets; quiet FAISS's stderr warning for small ones (logged)."""
    ivf = faiss.try_extract_index_ivf(index)
    clusterings = []
    if ivf is not None:
        clusterings.append((ivf.cp, int(ivf.nlist), "IVF lists"))
        pq = getattr(ivf, "pq", None)
        if pq is not None:
            clusterings.append((pq.cp, 1 << int(pq.nbits), "PQ centroids"))
    for cp, centroids, what in clusterings:
        if n_train < centroids:
            raise VectorIndexError(
                f"{n_train} rows cannot train {centroids} {what}; pass a factory with fewer"
            )
        if n_train < centroids * MIN_POINTS_PER_CENTROID:
            logger.warning("training %d %s on only %d rows", centroids, what, n_train)
            cp.min_points_per_centroid = max(1, n_train // centroids)


def _add(index: Any, vectors: np.ndarray) -> None:
    try:
        index.add(vectors)
    except RuntimeError as exc:
        raise VectorIndexError(f"FAISS could not add vectors: {exc}") from exc


def _tune(index: Any, probe: RecallProbe | None, target: float) -> tuple[dict[str, int], float]:
    if probe is None:  # exact Flat: nothing to tune, recall 1 by construction
        return {}, 1.0
    params, measured = tune_index(index, probe, target)
    return params, round(measured, 4)
