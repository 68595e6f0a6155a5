"""Exact (brute-force) inner-product search in numpy, and merging of ranked result lists.

Used for small candidate sets: rows added since the index was built, and the rows of a very
selective ``allowed_ids`` filter. Vectors are unit vectors, so the inner product is the cosine.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from bindsearch.errors import VectorIndexError

#: Queries scored per matrix product, bounding the ``(queries, rows)`` score block in memory.
_QUERY_CHUNK = 256

Hits = list[list[tuple[str, float]]]


def as_queries(xq: np.ndarray, dim: int) -> np.ndarray:
    """Return ``xq`` as a C-contiguous ``(nq, dim)`` float32 array (a 1-d vector is one query)."""
    queries = np.asarray(xq, dtype=np.float32)
    if queries.ndim == 1:
        queries = queries[None, :]
    if queries.ndim != 2 or queries.shape[1] != dim:
        raise VectorIndexError(
            f"queries must have shape (n, {dim}) to match the index, got {np.shape(xq)}"
        )
    if not np.isfinite(queries).all():
        raise VectorIndexError("queries hold NaN or infinite values")
    return np.ascontiguousarray(queries)


def exact_topk(vectors: np.ndarray, xq: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
    """Top-``k`` inner products of each query: ``(nq, k')`` scores and row positions.

    ``k' = min(k, len(vectors))``; rows are sorted by descending score.
    """
    n_rows = len(vectors)
    kk = min(k, n_rows)
    scores_out = np.empty((len(xq), kk), dtype=np.float32)
    rows_out = np.empty((len(xq), kk), dtype=np.int64)
    if kk == 0:
        return scores_out, rows_out
    for start in range(0, len(xq), _QUERY_CHUNK):
        block = xq[start : start + _QUERY_CHUNK] @ vectors.T  # (chunk, n_rows)
        if kk < n_rows:
            top = np.argpartition(-block, kk - 1, axis=1)[:, :kk]
        else:
            top = np.broadcast_to(np.arange(n_rows), block.shape).copy()
        top_scores = np.take_along_axis(block, top, axis=1)
        order = np.argsort(-top_scores, axis=1, kind="stable")
        rows_out[start : start + len(block)] = np.take_along_axis(top, order, axis=1)
        scores_out[start : start + len(block)] = np.take_along_axis(top_scores, order, axis=1)
    return scores_out, rows_out


def exact_search(vectors: np.ndarray, ids: Sequence[str], xq: np.ndarray, k: int) -> Hits:
    """Brute-force the ``k`` best ``(id, score)`` per query over ``vectors`` (``ids[i]`` row i).

    Returns fewer than ``k`` per query when there are fewer rows.
    """
    if len(vectors) != len(ids):
        raise VectorIndexError(f"{len(vectors)} vectors but {len(ids)} ids")
    if len(ids) == 0:
        queries = np.asarray(xq, dtype=np.float32)
        return [[] for _ in range(1 if queries.ndim == 1 else len(queries))]
    matrix = np.asarray(vectors, dtype=np.float32).reshape(len(ids), -1)
    queries = as_queries(xq, matrix.shape[1])
    scores, rows = exact_topk(matrix, queries, k)
    return [
        [(ids[int(r)], float(s)) for s, r in zip(srow, rrow, strict=True)]
        for srow, rrow in zip(scores, rows, strict=True)
    ]


def merge_hits(first: Hits, second: Hits, k: int) -> Hits:
    """Merge two per-query ranked lists into the ``k`` best, each id once."""
    merged: Hits = []
    for a, b in zip(first, second, strict=True):
        seen: set[str] = set()
        row: list[tuple[str, float]] = []
        for item_id, score in sorted(a + b, key=lambda hit: -hit[1]):
            if item_id not in seen:
                seen.add(item_id)
                row.append((item_id, score))
                if len(row) == k:
                    break
        merged.append(row)
    return merged
