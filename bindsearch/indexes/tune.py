"""Search parameters per index type, recall measurement and build-time tuning.

Recall is measured on stored vectors held out of the index during tuning (see
:mod:`bindsearch.indexes.build`): recall@10 = the share of each query's exact 10 nearest
indexed rows that the index returns in its top 10, averaged over the queries.

Tuning raises the index's cost knob — ``nprobe`` for IVF, ``efSearch`` for HNSW — through powers
of two until recall@10 reaches the target, then bisects down to the smallest passing value
(recall is monotone in both). Refined IVF-PQ indexes also try ``k_factor`` ∈ {2, 4, ..., 64}
(the number of PQ candidates re-ranked, per result) and keep the fastest passing pair; for
them the nprobe doubling stops early once recall has not risen over two doublings (the
re-ranked candidates, not the lists, cap it: a 1M-row build spent minutes scanning up to every
list at k_factor 2–32). When the target is out of reach, the best recall seen is kept and
recorded.
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass
from typing import Any

import faiss
import numpy as np

logger = logging.getLogger(__name__)

#: The faiss type stubs lack the keyword constructors of the ``SearchParameters`` classes.
_faiss: Any = faiss

RECALL_K = 10
_K_FACTORS = (2, 4, 8, 16, 32, 64)
_MAX_EF_SEARCH = 4096


def search_parameters(index: Any, params: dict[str, int], sel: Any = None) -> Any:
    """Build the ``faiss.SearchParameters`` for ``index`` from ``params`` and an id selector.

    Returns ``None`` when there is nothing to set. Works through ``IndexRefine`` (selector and
    nprobe go to the base index) and ``IndexPreTransform``.
    """
    if isinstance(index, faiss.IndexRefine):
        base = search_parameters(faiss.downcast_index(index.base_index), params, sel)
        k_factor = float(params.get("k_factor", index.k_factor))
        if base is None:
            return _faiss.IndexRefineSearchParameters(k_factor=k_factor)
        return _faiss.IndexRefineSearchParameters(k_factor=k_factor, base_index_params=base)
    if isinstance(index, faiss.IndexPreTransform):
        inner = search_parameters(faiss.downcast_index(index.index), params, sel)
        if inner is None:
            return None
        return _faiss.SearchParametersPreTransform(index_params=inner)
    kwargs: dict[str, Any] = {} if sel is None else {"sel": sel}
    if isinstance(index, faiss.IndexIVF):
        return _faiss.SearchParametersIVF(nprobe=int(params.get("nprobe", index.nprobe)), **kwargs)
    if isinstance(index, faiss.IndexHNSW):
        ef = int(params.get("efSearch", index.hnsw.efSearch))
        return _faiss.SearchParametersHNSW(efSearch=ef, **kwargs)
    return faiss.SearchParameters(**kwargs) if kwargs else None


def tuning_knob(index: Any) -> str | None:
    """The parameter that trades speed for recall: ``nprobe``, ``efSearch`` or ``None``."""
    if isinstance(index, faiss.IndexRefine):
        return tuning_knob(faiss.downcast_index(index.base_index))
    if isinstance(index, faiss.IndexPreTransform):
        return tuning_knob(faiss.downcast_index(index.index))
    if isinstance(index, faiss.IndexIVF):
        return "nprobe"
    if isinstance(index, faiss.IndexHNSW):
        return "efSearch"
    return None


def _knob_limit(index: Any, knob: str) -> int:
    if knob == "nprobe":
        ivf = faiss.extract_index_ivf(index)
        return int(ivf.nlist)
    return _MAX_EF_SEARCH


@dataclass
class RecallProbe:
    """Held-out query vectors and the labels of their exact top ``k`` in the index."""

    xq: np.ndarray
    truth: np.ndarray
    k: int = RECALL_K

    def recall(self, found: np.ndarray) -> float:
        """Recall@k of ``found`` (``(nq, k)`` labels, ``-1`` for none) against the truth."""
        hits = 0
        total = 0
        for truth_row, found_row in zip(self.truth, found, strict=True):
            want = {int(t) for t in truth_row[: self.k] if t >= 0}
            hits += len(want & {int(f) for f in found_row[: self.k]})
            total += len(want)
        return hits / total if total else 1.0

    def measure(self, index: Any, params: dict[str, int]) -> tuple[float, float]:
        """Recall and wall seconds of one batched search of the probe's queries."""
        started = time.perf_counter()
        _, found = index.search(self.xq, self.k, params=search_parameters(index, params))
        return self.recall(found), time.perf_counter() - started


def tune_index(index: Any, probe: RecallProbe, target: float) -> tuple[dict[str, int], float]:
    """Return the cheapest search parameters reaching ``target`` recall and their recall."""
    knob = tuning_knob(index)
    if knob is None:
        return {}, probe.measure(index, {})[0]
    if not isinstance(index, faiss.IndexRefine):
        return _tune_knob(index, probe, target, knob, {})
    candidates: list[tuple[float, float, dict[str, int]]] = []
    for k_factor in _K_FACTORS:
        params, recall = _tune_knob(index, probe, target, knob, {"k_factor": k_factor})
        seconds = min(probe.measure(index, params)[1] for _ in range(2))
        candidates.append((recall, seconds, params))
        passing = [c for c in candidates if c[0] >= target]
        if len(passing) >= 2:  # a larger k_factor only buys a smaller nprobe from here on
            break
    passing = [c for c in candidates if c[0] >= target]
    recall, _, params = (
        min(passing, key=lambda c: c[1]) if passing else max(candidates, key=lambda c: c[0])
    )
    return params, recall


def _plateau(tried: dict[int, float], value: int) -> bool:
    """Whether recall stopped rising over the last two doublings up to ``value``."""
    quarter = value // 4
    return quarter in tried and value // 2 in tried and tried[value] <= tried[quarter] + 1e-3


def _tune_knob(
    index: Any, probe: RecallProbe, target: float, knob: str, fixed: dict[str, int]
) -> tuple[dict[str, int], float]:
    limit = _knob_limit(index, knob)
    floor = probe.k if knob == "efSearch" else 1
    tried: dict[int, float] = {}

    def recall_at(value: int) -> float:
        if value not in tried:
            tried[value] = probe.measure(index, {**fixed, knob: value})[0]
        return tried[value]

    value = floor
    while recall_at(value) < target and value < limit:
        if "k_factor" in fixed and _plateau(tried, value):
            break  # re-ranking too few candidates caps recall; more lists will not help
        value = min(value * 2, limit)
    if recall_at(value) < target:
        best = max(tried, key=lambda v: (tried[v], -v))
        logger.warning(
            "recall target %.3f not reached: best recall@%d %.4f at %s=%d",
            target, probe.k, tried[best], knob, best,
        )  # fmt: skip
        return {**fixed, knob: best}, tried[best]
    low, high = max(floor, value // 2), value  # recall(low) < target <= recall(high) or low=high
    while high - low > 1:
        middle = (low + high) // 2
        if recall_at(middle) >= target:
            high = middle
        else:
            low = middle
    chosen = low if recall_at(low) >= target else high
    return {**fixed, knob: chosen}, tried[chosen]
