"""The benchmark protocols: text-to-audio retrieval, MSR-VTT text-to-video, zero-shot
classification. Each ingests the dataset (see :mod:`bindsearch.bench.runner`), evaluates and
returns a :class:`~bindsearch.bench.report.BenchResult`.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from typing import Any

import numpy as np

from bindsearch.bench.datasets.base import ClassificationSet, Query, RetrievalSet
from bindsearch.bench.metrics import (
    RECALL_KS,
    mean_average_precision,
    mean_average_precision_at_k,
    recall_at_k,
    single_ranks,
    top1_correct,
)
from bindsearch.bench.report import BenchResult, MetricRow, metric_row
from bindsearch.bench.retrieval import Scope, fused_ranks, make_scope, search_rank
from bindsearch.bench.runner import (
    ProgressFn,
    RunConfig,
    Session,
    dataset_summary,
    embed_texts,
    failed_files,
    finish,
    gallery,
    ingest_dataset,
)
from bindsearch.errors import DatasetError
from bindsearch.store.queries import vectors_by_ids

#: mAP@10 (DCASE / LAION-CLAP): ranks below this count.
MAP_K = 10
MAX_K = max(max(RECALL_KS), MAP_K)


def _search_ranks(
    session: Session,
    vectors: np.ndarray,
    targets: Sequence[str],
    scope: Scope,
    progress: ProgressFn | None,
) -> np.ndarray:
    """Rank of each target path for its query vector, through the search layer."""
    started = time.perf_counter()
    ranks = []
    for n, (vector, target) in enumerate(zip(vectors, targets, strict=True), start=1):
        ranks.append(search_rank(session.index, vector, target, scope, MAX_K, session.config.ties))
        if progress is not None:
            progress("search", n, len(targets))
    timing = session.timing
    timing["search_s"] = timing.get("search_s", 0.0) + time.perf_counter() - started
    timing["queries"] = timing.get("queries", 0) + len(targets)
    timing["queries_per_s"] = timing["queries"] / max(timing["search_s"], 1e-9)
    return np.array(ranks, dtype=np.float64)


def _recall_rows(
    benchmark: str, task: str, ranks: np.ndarray, gallery_size: int, with_map: bool
) -> list[MetricRow]:
    queries = len(ranks)
    rows = [
        metric_row(benchmark, task, f"R@{k}", value, gallery_size, queries)
        for k, value in recall_at_k(ranks, RECALL_KS).items()
    ]
    if with_map:
        value = mean_average_precision_at_k(single_ranks(list(ranks)), [1] * queries, MAP_K)
        rows.append(metric_row(benchmark, task, f"mAP@{MAP_K}", value, gallery_size, queries))
    return rows


def _kept_queries(dataset: RetrievalSet, keys: dict[str, str]) -> list[Query]:
    queries = [q for q in dataset.queries if q.key in keys]
    if not queries:
        raise DatasetError(f"no {dataset.name} query has its media in the index")
    return queries


def run_text_to_audio(
    dataset: RetrievalSet, config: RunConfig, progress: ProgressFn | None = None
) -> BenchResult:
    """Clotho / AudioCaps: every caption its own query over the ingested clips; R@1/5/10 and
    mAP@10 (single relevant clip: the reciprocal rank within the top 10)."""
    session = ingest_dataset(dataset, dataset.name, config, progress)
    ids, rows_under_root = gallery(session, dataset, "audio")
    failed = failed_files(session, dataset, list(ids))
    queries = _kept_queries(dataset, ids)
    paths = {key: str(dataset.files[key]) for key in ids}
    scope = make_scope("audio", dataset.media_root, list(paths.values()), rows_under_root)
    text = embed_texts(session, [q.text for q in queries], progress)
    ranks = _search_ranks(session, text, [paths[q.key] for q in queries], scope, progress)
    metrics = _recall_rows(dataset.name, "text→audio", ranks, len(ids), with_map=True)
    summary = dataset_summary(dataset, failed, {"audio": len(ids)}, queries=len(queries),
                              queries_dropped=len(dataset.queries) - len(queries))  # fmt: skip
    chosen = ("name_template", "subset_list")
    settings: dict[str, Any] = {k: dataset.details[k] for k in chosen if k in dataset.details}
    return finish(session, dataset.name, metrics, settings, summary)


def run_msrvtt(
    dataset: RetrievalSet, config: RunConfig, progress: ProgressFn | None = None
) -> BenchResult:
    """MSR-VTT 1k-A text-to-video: V (video rows), A (the videos' audio rows) and A+V
    (stored vectors fused with ``config.fusion``); see :class:`RunConfig` for videos without
    sound."""
    session = ingest_dataset(dataset, "msrvtt", config, progress)
    videos, video_rows = gallery(session, dataset, "video")
    audio_all, audio_rows = gallery(session, dataset, "audio")
    sounds = {k: v for k, v in audio_all.items() if k in videos}
    failed = failed_files(session, dataset, list(videos))
    queries = _kept_queries(dataset, videos)
    path = {key: str(dataset.files[key]) for key in videos}
    text = embed_texts(session, [q.text for q in queries], progress)
    scope = make_scope("video", dataset.media_root, [path[k] for k in videos], video_rows)
    ranks = _search_ranks(session, text, [path[q.key] for q in queries], scope, progress)
    metrics = _recall_rows("msrvtt", "text→video (V)", ranks, len(videos), with_map=False)
    restrict = config.missing_audio == "restrict"
    keys = list(sounds) if restrict else list(videos)
    chosen = [n for n, q in enumerate(queries) if q.key in sounds or not restrict]
    if chosen:
        silent = {path[k]: 0.0 for k in videos if k not in sounds and not restrict}
        scope = make_scope("audio", dataset.media_root, [path[k] for k in sounds], audio_rows,
                           fixed=silent)  # fmt: skip
        ranks = _search_ranks(session, text[chosen], [path[queries[n].key] for n in chosen],
                              scope, progress)  # fmt: skip
        metrics += _recall_rows("msrvtt", "text→video (A)", ranks, len(keys), with_map=False)
        metrics += _fusion_rows(session, text[chosen], [queries[n].key for n in chosen], keys,
                                videos, sounds)  # fmt: skip
    summary = dataset_summary(
        dataset, failed, {"video": len(videos), "audio": len(sounds)}, queries=len(queries),
        queries_dropped=len(dataset.queries) - len(queries),
        videos_without_audio=len(videos) - len(sounds),
    )  # fmt: skip
    settings = {"fusion": list(config.fusion), "missing_audio": config.missing_audio}
    return finish(session, "msrvtt", metrics, settings, summary)


def _fusion_rows(
    session: Session,
    text: np.ndarray,
    targets: Sequence[str],
    keys: Sequence[str],
    videos: dict[str, str],
    sounds: dict[str, str],
) -> list[MetricRow]:
    """A+V ranks over the gallery ``keys`` from the stored vectors (zero audio if silent)."""
    started = time.perf_counter()
    store = session.index.store
    stored = vectors_by_ids(store, [videos[k] for k in keys] + [sounds[k] for k in keys
                                                                 if k in sounds])  # fmt: skip
    video = np.stack([stored[videos[k]] for k in keys])
    zero = np.zeros(store.dim, np.float32)
    audio = np.stack([stored[sounds[k]] if k in sounds else zero for k in keys])
    position = {k: n for n, k in enumerate(keys)}
    ranks = fused_ranks(text, video, audio, [position[t] for t in targets],
                        session.config.fusion, session.config.ties)  # fmt: skip
    session.timing["fusion_s"] = time.perf_counter() - started
    return _recall_rows("msrvtt", "text→video (A+V)", ranks, len(keys), with_map=False)


def class_scores(session: Session, vectors: np.ndarray, class_names: list[list[str]]) -> np.ndarray:
    """``[N, C]`` cosines to each class: the max over its names' label vectors (80 CLIP
    templates, averaged and renormalised)."""
    from bindsearch.query.classify import label_vectors

    started = time.perf_counter()
    flat = [name for names in class_names for name in names]
    owner = np.array([c for c, names in enumerate(class_names) for _ in names])
    cosines = vectors @ label_vectors(session.index.encoder(), flat).T  # [N, names]
    scores = np.full((vectors.shape[0], len(class_names)), -np.inf)
    for column, c in enumerate(owner):
        scores[:, c] = np.maximum(scores[:, c], cosines[:, column])
    session.timing["labels_s"] = time.perf_counter() - started
    return scores


def run_classification(
    dataset: ClassificationSet, config: RunConfig, progress: ProgressFn | None = None
) -> BenchResult:
    """Zero-shot classification of every ingested item's stored vector: top-1 accuracy (and
    per fold where the set has folds), or macro mAP for multi-label sets."""
    session = ingest_dataset(dataset, dataset.name, config, progress)
    ids, _ = gallery(session, dataset, dataset.kind)
    failed = failed_files(session, dataset, list(ids))
    keys = list(ids)
    if not keys:
        raise DatasetError(f"no {dataset.name} item could be ingested")
    stored = vectors_by_ids(session.index.store, list(ids.values()))
    vectors = np.stack([stored[ids[k]] for k in keys]).astype(np.float64)
    scores = class_scores(session, vectors, dataset.class_names)
    classes = len(dataset.class_names)
    folds = sorted({dataset.folds[k] for k in keys}) if dataset.folds else []
    compare = dataset.name != "esc50" or folds == [1, 2, 3, 4, 5]
    if dataset.multi_label:
        targets = np.zeros((len(keys), classes), dtype=bool)
        for n, k in enumerate(keys):
            targets[n, list(dataset.labels[k])] = True
        value = mean_average_precision(scores, targets)
        metrics = [metric_row(dataset.name, "zero-shot", "mAP", value, classes, len(keys))]
    else:
        correct = top1_correct(scores, [dataset.labels[k][0] for k in keys], config.ties)
        metrics = [metric_row(dataset.name, "zero-shot", "top-1", 100.0 * correct.mean(),
                              classes, len(keys), compare=compare)]  # fmt: skip
        for fold in folds:
            mask = np.array([dataset.folds[k] == fold for k in keys])
            metrics.append(metric_row(dataset.name, "zero-shot", f"top-1 fold {fold}",
                                      100.0 * correct[mask].mean(), classes, int(mask.sum())))  # fmt: skip
    summary = dataset_summary(dataset, failed, {dataset.kind: len(keys)}, classes=classes)
    settings = {"class_names": "max over a class's names", **({"folds": folds} if folds else {})}
    return finish(session, dataset.name, metrics, settings, summary)


__all__ = ["MAP_K", "class_scores", "run_classification", "run_msrvtt", "run_text_to_audio"]
