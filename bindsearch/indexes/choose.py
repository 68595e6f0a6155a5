"""The automatic choice of a FAISS index from row count, dimension and a memory budget.

The rules, in the spirit of autofaiss (``docs/anchors.md`` §1a) but with bindsearch's own
thresholds (measured with ``benchmarks/search.py`` on 1024-d unit vectors, 2 CPU cores):

1. ``n < 50,000`` → ``Flat``: exact inner product. A single query scans ``n·d`` floats
   (≤ 200 MB at d = 1024: tens of ms on 2 cores, far less per query in batches), recall is
   1.0, filters are exact, and there is nothing to train or tune.
2. Else, if the uncompressed vectors fit the budget, ``n·(4d + 8) + nlist·4d ≤ memory`` →
   ``IVF{nlist},Flat`` with ``nlist`` the power of two at or below ``4·√n`` (autofaiss'
   ``get_optimal_nb_clusters`` rounds to the nearest; rounding down halves k-means and
   assignment time, which dominate builds on few cores), capped at 65,536 and at ``n / 39`` so that
   k-means gets FAISS's minimum of 39 training points per centroid. IVF-Flat supports id
   selectors and ``remove_ids`` on CPU and has a GPU twin (``GpuIndexIVFFlat``); nprobe is
   tuned at build time to the recall target.
3. Else product quantisation with refinement: ``IVF{nlist},PQ{m}x4fs,Refine(SQfp16)`` with the
   largest ``m`` (sub-quantizers, dividing ``d``, at most ``min(d/4, 256)``: with refinement the
   codes only pick candidates, and more sub-quantizers slow training and scanning) for which
   ``n·(m/2 + 2d + 8)`` fits, else the same with ``Refine(SQ8)`` (``n·(m/2 + d + 8)``).
   4-bit fast-scan PQ codes (SIMD lookups in registers) find ``k_factor·k`` candidates, which
   the scalar-quantised copies re-rank. fp16 copies re-rank almost exactly; 8-bit ones cap
   recall@10 near 0.93 on tightly clustered data (measured on the 64-d test data), so they are
   the second choice. Fast-scan trains about 10x faster than 8-bit PQ (6.6 s vs 55 s for
   PQ256x4fs vs PQ128x8 on 20k 1024-d rows, 2 cores).
   On a GPU, which has no fast-scan, ``PQ{m}x8np`` with ``m`` among the code sizes
   ``GpuIndexIVFPQ`` supports (≤ 64 here); ``np`` skips polysemous training, which only
   serves Hamming-filtered search.
4. Else the same without refinement (recall may then miss the target; the measured recall is
   recorded), and if even the smallest codes do not fit,
   :class:`~bindsearch.errors.VectorIndexError`.

**Measured choice between IVF-Flat and IVF-PQ.** Which of rules 2 and 3 is faster depends on
the data, not only on its size: on well-separated clusters IVF-Flat needs nprobe 1–2 and wins;
where neighbours spread over many lists (the benchmark's ``shared`` structure) IVF-Flat needs
nprobe ~75 of 1024 and scans 7% of the full vectors per query, while 4-bit fast-scan codes
(128 bytes per 1024-d vector against 4,096 in fp32) with an fp16 re-rank were 3x (single) to
9x (batched) faster at the same recall (``benchmarks/RESULTS.md``, N = 100k). So when rule
2 applies, ``n ≥`` :data:`RACE_MIN_ROWS` and both indexes fit the budget *together* (they
exist side by side during the build), :func:`candidate_factories` returns both, and the build
tunes each to the recall target and keeps the one with the higher measured speed on its
held-out queries (:func:`~bindsearch.indexes.build.build_index`). The second candidate reuses
the first one's trained coarse quantizer, so k-means runs once.

HNSW (``HNSW32,Flat``) is not chosen automatically although autofaiss prefers it when it fits.
Measured on 1024-d data, 2 cores (``benchmarks/RESULTS.md``): at 100k rows it is slower than
IVF-Flat at equal recall on well-separated clusters and faster on the harder ``shared``
structure; at 1M rows (idle machine) it took 342 s to build against 86 s for IVF-Flat, and on
the clustered data it tops out at recall@10 0.938 (efSearch 4096, 39 QPS) where the automatic
IVF-Flat reaches 0.987 at 532 QPS. It also has no ``remove_ids`` (deletions become tombstones), no classic GPU version, and
graph search degrades under selective id filters (bindsearch then falls back to exact search).
Pass ``factory="HNSW32,Flat"`` to get it; it is fully supported.

The default memory budget is half the machine's physical memory (autofaiss: 32 GB,
clip-retrieval: 4 GB); override it with ``memory_bytes``.
"""

from __future__ import annotations

import math
import os
import re

from bindsearch.errors import ConfigError, VectorIndexError

#: Below this many rows the index is exact (``Flat``).
FLAT_MAX_ROWS = 50_000
#: FAISS k-means warns (and clusters poorly) with fewer training points per centroid.
MIN_POINTS_PER_CENTROID = 39
#: Largest number of IVF lists chosen automatically (autofaiss' n < 10M tier).
MAX_NLIST = 65_536
#: Sub-quantizer counts tried for product quantisation, largest (most accurate) first.
PQ_SUBQUANTIZERS = (256, 128, 64, 48, 32, 24, 16, 8)
#: Bytes per code that ``GpuIndexIVFPQ`` supports (with float16 lookup tables above 48).
GPU_PQ_CODE_BYTES = frozenset({1, 2, 3, 4, 8, 12, 16, 20, 24, 28, 32, 40, 48, 56, 64})
#: From this many rows on, the automatic choice races IVF-Flat against IVF-PQ fast-scan + refine.
RACE_MIN_ROWS = FLAT_MAX_ROWS
#: Bytes per vector for its int64 label inside an IVF list.
_LABEL_BYTES = 8
_FALLBACK_MEMORY_BYTES = 4 << 30

_UNITS = {"": 1, "b": 1, "k": 1 << 10, "m": 1 << 20, "g": 1 << 30, "t": 1 << 40}


def default_memory_bytes() -> int:
    """Half the physical memory of this machine (4 GiB when it cannot be read)."""
    try:
        total = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")
    except (AttributeError, OSError, ValueError):
        return _FALLBACK_MEMORY_BYTES
    return int(total) // 2 if total > 0 else _FALLBACK_MEMORY_BYTES


def parse_bytes(text: str | int) -> int:
    """Parse a byte count such as ``8000000``, ``512M``, ``8G`` or ``1.5GiB`` (binary units)."""
    if isinstance(text, int) and not isinstance(text, bool):
        value = text
    else:
        match = re.fullmatch(r"\s*([0-9]*\.?[0-9]+)\s*([kmgt]?)(i?b)?\s*", str(text), re.I)
        if match is None:
            raise ConfigError(
                f"cannot read {text!r} as a memory size; use bytes or a K/M/G/T suffix, e.g. 8G"
            )
        value = int(float(match.group(1)) * _UNITS[match.group(2).lower()])
    if value <= 0:
        raise ConfigError(f"a memory budget must be positive, got {text!r}")
    return value


def choose_nlist(n_rows: int) -> int:
    """IVF list count for ``n_rows``: the power of two at or below ``4·√n``, within bounds."""
    if n_rows < 1:
        raise VectorIndexError("cannot size an IVF index for an empty table")
    target = 4.0 * math.sqrt(n_rows)
    nlist = 2 ** math.floor(math.log2(target))
    nlist = min(nlist, MAX_NLIST, max(1, n_rows // MIN_POINTS_PER_CENTROID))
    return max(1, nlist)


def estimate_bytes(factory: str, n_rows: int, dim: int) -> int:
    """Rough resident size of an index built with ``factory`` (the terms of the rules above)."""
    nlist_match = re.search(r"IVF(\d+)", factory)
    nlist = int(nlist_match.group(1)) if nlist_match else 0
    centroid_bytes = nlist * dim * 4
    pq_match = re.search(r"PQ(\d+)x(\d+)", factory)
    if factory == "Flat":
        return n_rows * dim * 4
    if factory.startswith("HNSW"):
        m = int(re.match(r"HNSW(\d+)", factory).group(1))  # type: ignore[union-attr]
        return n_rows * (dim * 4 + 2 * m * 4 + _LABEL_BYTES)
    per_row = _LABEL_BYTES
    if pq_match:
        per_row += int(pq_match.group(1)) * int(pq_match.group(2)) // 8
    elif "Flat" in factory:
        per_row += dim * 4
    if "Refine(SQfp16)" in factory:
        per_row += dim * 2
    elif "Refine(SQ8)" in factory:
        per_row += dim
    elif "RFlat" in factory or "Refine(Flat)" in factory:
        per_row += dim * 4
    return n_rows * per_row + centroid_bytes


def choose_factory(
    n_rows: int, dim: int, memory_bytes: int | None = None, *, gpu: bool = False
) -> str:
    """Return the FAISS factory string the rules in this module's docstring pick."""
    if n_rows < 0 or dim < 1:
        raise VectorIndexError(f"cannot choose an index for {n_rows} rows of dimension {dim}")
    budget = default_memory_bytes() if memory_bytes is None else memory_bytes
    if n_rows < FLAT_MAX_ROWS:
        return "Flat"
    nlist = choose_nlist(n_rows)
    ivf_flat = f"IVF{nlist},Flat"
    if estimate_bytes(ivf_flat, n_rows, dim) <= budget:
        return ivf_flat
    sizes = [m for m in PQ_SUBQUANTIZERS if dim % m == 0 and m <= dim // 4]
    codes = "x8np" if gpu else "x4fs"
    if gpu:
        sizes = [m for m in sizes if m in GPU_PQ_CODE_BYTES]
    for suffix in (",Refine(SQfp16)", ",Refine(SQ8)", ""):
        for m in sizes:
            factory = f"IVF{nlist},PQ{m}{codes}{suffix}"
            if estimate_bytes(factory, n_rows, dim) <= budget:
                return factory
    smallest = f"IVF{nlist},PQ{sizes[-1]}{codes}" if sizes else ivf_flat
    need = estimate_bytes(smallest, n_rows, dim)
    raise VectorIndexError(
        f"no index of {n_rows} vectors of dimension {dim} fits a memory budget of {budget} "
        f"bytes; the smallest ({smallest}) needs about {need} bytes. Raise the budget "
        "(--memory) or pass a factory string."
    )


def candidate_factories(
    n_rows: int, dim: int, memory_bytes: int | None = None, *, gpu: bool = False
) -> list[str]:
    """The factories the automatic build tunes and races, fastest kept (first = the rule's).

    One factory (:func:`choose_factory`) unless it is IVF-Flat on the CPU, ``n_rows`` is at
    least :data:`RACE_MIN_ROWS` and an ``IVF{nlist},PQ{m}x4fs,Refine(SQfp16)`` index fits the
    budget next to it; then both, IVF-Flat first.
    """
    chosen = choose_factory(n_rows, dim, memory_bytes, gpu=gpu)
    if gpu or n_rows < RACE_MIN_ROWS or not chosen.endswith(",Flat") or "IVF" not in chosen:
        return [chosen]
    budget = default_memory_bytes() if memory_bytes is None else memory_bytes
    nlist = choose_nlist(n_rows)
    left = budget - estimate_bytes(chosen, n_rows, dim)
    for m in PQ_SUBQUANTIZERS:
        if dim % m or m > dim // 4:
            continue
        other = f"IVF{nlist},PQ{m}x4fs,Refine(SQfp16)"
        if estimate_bytes(other, n_rows, dim) <= left:
            return [chosen, other]
    return [chosen]
