"""Retrieval and classification metrics, pure numpy.

Ranks are 0-based positions in a ranking; ``inf`` means "not within the part of the ranking
that was looked at" (a miss for every cutoff used).

**Ties** (items with exactly equal scores) follow one of two rules, ``ties=``:

* ``"optimistic"`` (default, as CLIP4Clip's and most public evaluation code): a relevant item
  is ranked before every non-relevant item with the same score; a single relevant item's rank
  is the number of items with a strictly greater score.
* ``"pessimistic"``: a relevant item is ranked after every non-relevant item with the same
  score (a tie counts against the query): ``#(score >= s) - 1``.

Several relevant items with the same score take consecutive positions (in gallery order), so
positions are always distinct and AP never exceeds 1.
"""

from __future__ import annotations

from collections.abc import Collection, Iterable, Sequence
from typing import Literal

import numpy as np

from bindsearch.errors import ConfigError

TieRule = Literal["optimistic", "pessimistic"]
TIE_RULES: tuple[str, ...] = ("optimistic", "pessimistic")
#: Cutoffs of the recall figures the paper reports.
RECALL_KS: tuple[int, ...] = (1, 5, 10)


def check_ties(ties: str) -> TieRule:
    """``ties`` if it is a known tie rule, else ``ConfigError``."""
    if ties not in TIE_RULES:
        raise ConfigError(f"unknown tie rule {ties!r}; use one of {', '.join(TIE_RULES)}")
    return ties  # type: ignore[return-value]


def rank_among(others: np.ndarray, score: float, ties: TieRule = "optimistic") -> int:
    """0-based rank of one relevant item with ``score`` among the ``others`` scores (the rest
    of the gallery, not including the item itself)."""
    others = np.asarray(others)
    if check_ties(ties) == "optimistic":
        return int(np.count_nonzero(others > score))
    return int(np.count_nonzero(others >= score))


def relevant_positions(
    scores: np.ndarray, relevant: Collection[int], ties: TieRule = "optimistic"
) -> np.ndarray:
    """Sorted 0-based positions of the ``relevant`` gallery indices in the ranking of one
    query's ``scores`` ``[G]`` (best first), ties broken by ``ties``."""
    scores = np.asarray(scores, dtype=np.float64)
    flags = np.zeros(scores.shape[0], dtype=np.int8)
    flags[list(relevant)] = 1
    # lexsort: last key is primary. Optimistic puts relevant (key 0) first among equals.
    tie_key = 1 - flags if check_ties(ties) == "optimistic" else flags
    order = np.lexsort((np.arange(scores.shape[0]), tie_key, -scores))
    position = np.empty_like(order)
    position[order] = np.arange(order.shape[0])
    return np.sort(position[flags == 1])


def ranks_from_matrix(
    similarity: np.ndarray,
    relevant: Sequence[Collection[int]] | Sequence[int],
    ties: TieRule = "optimistic",
) -> list[np.ndarray]:
    """Per query (row of ``similarity [Q, G]``): sorted positions of its relevant items.

    ``relevant[q]`` is one gallery index or a collection of them.
    """
    similarity = np.asarray(similarity)
    if similarity.ndim != 2 or similarity.shape[0] != len(relevant):
        raise ConfigError(
            f"similarity must be [queries, gallery] with one relevant set per query, got "
            f"{similarity.shape} and {len(relevant)} sets"
        )
    sets = [[int(rel)] if isinstance(rel, (int, np.integer)) else list(rel) for rel in relevant]
    return [relevant_positions(row, rel, ties) for row, rel in zip(similarity, sets, strict=True)]


def best_ranks(positions: Iterable[np.ndarray]) -> np.ndarray:
    """The best (smallest) position per query, ``inf`` when it has none -> ``float [Q]``."""
    return np.array([float(p.min()) if len(p) else np.inf for p in positions], dtype=np.float64)


def recall_at_k(ranks: np.ndarray, ks: Sequence[int] = RECALL_KS) -> dict[int, float]:
    """R@k in percent: the share of queries whose (best) relevant rank is below ``k``."""
    ranks = np.asarray(ranks, dtype=np.float64)
    if ranks.size == 0:
        raise ConfigError("recall needs at least one query")
    return {k: float(100.0 * np.mean(ranks < k)) for k in ks}


def average_precision_at_k(positions: np.ndarray, n_relevant: int, k: int = 10) -> float:
    """AP@k of one query: ``sum over relevant items at position p_i < k of (i / (p_i + 1))``
    (``i`` = 1-based count of relevant items up to it), divided by ``n_relevant``.

    The DCASE / LAION-CLAP mAP@10; with one relevant item it is the reciprocal rank (0 beyond
    ``k``).
    """
    if n_relevant < 1:
        raise ConfigError("average precision needs at least one relevant item")
    ordered = np.sort(np.asarray(positions, dtype=np.float64))
    hits = ordered[ordered < k]
    return float(np.sum(np.arange(1, hits.size + 1) / (hits + 1)) / n_relevant)


def mean_average_precision_at_k(
    positions: Sequence[np.ndarray], n_relevant: Sequence[int], k: int = 10
) -> float:
    """mAP@k in percent over queries (see :func:`average_precision_at_k`)."""
    if not positions:
        raise ConfigError("mAP needs at least one query")
    aps = [average_precision_at_k(p, n, k) for p, n in zip(positions, n_relevant, strict=True)]
    return float(100.0 * np.mean(aps))


def single_ranks(ranks: Sequence[float]) -> list[np.ndarray]:
    """Ranks of single-relevant queries (``inf`` = beyond the cutoff) as position arrays."""
    return [np.array([r]) if np.isfinite(r) else np.array([]) for r in ranks]


def top1_correct(
    scores: np.ndarray, targets: Sequence[int], ties: TieRule = "optimistic"
) -> np.ndarray:
    """Per row of ``scores [N, C]``: whether the target class ranks first under ``ties``.

    Optimistic: no other class scores strictly higher; pessimistic: no other class scores
    higher or equal. (``np.argmax`` would instead pick the lowest class index among ties.)
    """
    scores = np.asarray(scores, dtype=np.float64)
    target = np.asarray(targets, dtype=np.int64)
    own = scores[np.arange(scores.shape[0]), target]
    others = scores.copy()
    others[np.arange(scores.shape[0]), target] = -np.inf
    best_other = others.max(axis=1) if scores.shape[1] > 1 else np.full(len(own), -np.inf)
    if check_ties(ties) == "optimistic":
        return own >= best_other
    return own > best_other


def top1_accuracy(
    scores: np.ndarray, targets: Sequence[int], ties: TieRule = "optimistic"
) -> float:
    """Top-1 accuracy in percent (see :func:`top1_correct`)."""
    if len(targets) == 0:
        raise ConfigError("accuracy needs at least one item")
    return float(100.0 * np.mean(top1_correct(scores, targets, ties)))


def average_precision(scores: np.ndarray, positives: np.ndarray) -> float:
    """Area under the precision-recall curve of one class (as scikit-learn's
    ``average_precision_score``): ``sum_n (R_n - R_{n-1}) P_n`` over the distinct score
    thresholds, so items with equal scores enter together."""
    scores = np.asarray(scores, dtype=np.float64)
    labels = np.asarray(positives, dtype=bool)
    if not labels.any():
        raise ConfigError("average precision needs at least one positive")
    order = np.argsort(-scores, kind="mergesort")
    scores, labels = scores[order], labels[order]
    ends = np.r_[np.flatnonzero(np.diff(scores)), scores.size - 1]
    true_pos = np.cumsum(labels)[ends]
    precision = true_pos / (ends + 1)
    recall = true_pos / true_pos[-1]
    return float(np.sum(np.diff(np.r_[0.0, recall]) * precision))


def mean_average_precision(scores: np.ndarray, targets: np.ndarray) -> float:
    """Macro mAP in percent over the classes (columns) with at least one positive, computed on
    the raw scores (a softmax across classes would change per-class rankings)."""
    scores = np.asarray(scores)
    targets = np.asarray(targets, dtype=bool)
    used = np.flatnonzero(targets.any(axis=0))
    if used.size == 0:
        raise ConfigError("mAP needs a class with at least one positive")
    return float(100.0 * np.mean([average_precision(scores[:, c], targets[:, c]) for c in used]))


__all__ = [
    "RECALL_KS",
    "TIE_RULES",
    "TieRule",
    "average_precision",
    "average_precision_at_k",
    "best_ranks",
    "check_ties",
    "mean_average_precision",
    "mean_average_precision_at_k",
    "rank_among",
    "ranks_from_matrix",
    "recall_at_k",
    "relevant_positions",
    "single_ranks",
    "top1_accuracy",
    "top1_correct",
]
