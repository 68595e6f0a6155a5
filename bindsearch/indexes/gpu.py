"""FAISS on CUDA devices: when to use them, moving indexes there, and their limits.

With a CUDA device (``faiss.get_num_gpus() > 0``) and ``use_gpu`` not ``False``:

* **Build**: IVF k-means, the expensive part of training, runs on the GPU(s) through the IVF's
  ``clustering_index``; the trained index is a plain CPU index, saved and tuned as usual (the
  tuned nprobe holds on the GPU, which runs the same algorithm).
* **Search**: ``Flat``, ``IVF*,Flat``, ``IVF*,PQ*x8`` (and ``SQ``) are cloned to every GPU
  (``index_cpu_to_all_gpus``); refined indexes put their base index on the GPU and re-rank on
  the CPU. HNSW and fast-scan PQ have no classic GPU version and stay on the CPU, as does any
  index whose clone fails (logged).
* **Limits**: GPU FAISS accepts ``k`` and ``nprobe`` up to 2048 and ignores id selectors, so
  :class:`~bindsearch.indexes.search.VectorIndex` uses the GPU only for searches within those
  limits (with over-fetching for excluded rows) and the CPU index otherwise; nprobe is clamped
  to 2048 on the GPU.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from typing import Any

import faiss

from bindsearch.errors import VectorIndexError

logger = logging.getLogger(__name__)

#: The faiss type stubs lack the keyword constructors of the ``SearchParameters`` classes.
_faiss: Any = faiss

#: Largest ``k`` and ``nprobe`` GPU FAISS accepts (faiss#2103).
GPU_MAX_K = 2048
GPU_MAX_NPROBE = 2048


def gpu_count() -> int:
    """Number of CUDA devices FAISS sees (0 with a CPU-only FAISS build)."""
    get = getattr(faiss, "get_num_gpus", None)
    return int(get()) if get is not None else 0


def resolve_use_gpu(use_gpu: bool | None) -> bool:
    """``None`` means "if there is a GPU"; ``True`` without one is an error."""
    available = gpu_count() > 0
    if use_gpu is None:
        return available
    if use_gpu and not available:
        raise VectorIndexError(
            "a GPU was asked for (use_gpu=True / --gpu), but FAISS sees no CUDA device; "
            "drop the flag to use the CPU"
        )
    return bool(use_gpu)


def train_on_gpu(index: Any) -> Any | None:
    """Route the IVF k-means of ``index`` to the GPU(s); return the GPU clustering index.

    Keep the returned object alive until training is done. ``None`` when ``index`` has no IVF.
    """
    ivf = faiss.try_extract_index_ivf(index)
    if ivf is None:
        return None
    metric = int(ivf.metric_type)
    clustering = faiss.index_cpu_to_all_gpus(faiss.IndexFlat(int(ivf.d), metric))
    ivf.clustering_index = clustering
    return clustering


@dataclass
class GpuIndex:
    """A GPU copy of a CPU index and the parameters it searches with."""

    index: Any
    k_factor: float | None = None
    keep_alive: list[Any] = field(default_factory=list)

    def search(self, xq: Any, k: int) -> tuple[Any, Any]:
        """Search ``k ≤ 2048`` neighbours (``k·k_factor ≤ 2048`` for refined indexes)."""
        if self.k_factor is None:
            return self.index.search(xq, k)
        params = _faiss.IndexRefineSearchParameters(k_factor=self.k_factor)
        return self.index.search(xq, k, params=params)

    def max_k(self) -> int:
        """The largest ``k`` this index can be asked for on the GPU."""
        return GPU_MAX_K if self.k_factor is None else int(GPU_MAX_K // max(self.k_factor, 1.0))


def index_to_gpu(index: Any, params: dict[str, int]) -> GpuIndex | None:
    """Clone ``index`` to every GPU with ``params`` applied; ``None`` if it cannot run there."""
    if isinstance(index, (faiss.IndexHNSW, faiss.IndexIVFFastScan)):
        logger.info("%s has no GPU version; searching on the CPU", type(index).__name__)
        return None
    try:
        if isinstance(index, faiss.IndexRefine):
            return _refine_to_gpu(index, params)
        clone = faiss.index_cpu_to_all_gpus(index, co=cloner_options(index))
        _set_nprobe(clone, params)
        return GpuIndex(clone)
    except RuntimeError as exc:  # unsupported type or code size: the CPU index still works
        logger.warning("cannot move %s to the GPU (%s); searching on the CPU", type(index), exc)
        return None


def cloner_options(index: Any) -> Any:
    """Options for cloning ``index`` to the GPU: an IVF-PQ gets float16 look-up tables.

    With float32 tables, an IVF-PQ of 64 sub-quantizers x 8 bits needs 64 KiB of shared memory
    per block, more than the 48 KiB FAISS's kernels get (seen on an H100), and the clone
    fails; float16 tables halve that (the cloner's ``useFloat16`` sets them for an IVF-PQ).
    Flat and IVF-Flat indexes keep float32 vectors. Refined indexes re-rank exactly.
    """
    options = faiss.GpuMultipleClonerOptions()
    options.useFloat16 = isinstance(faiss.downcast_index(index), faiss.IndexIVFPQ)
    return options


def _refine_to_gpu(index: Any, params: dict[str, int]) -> GpuIndex | None:
    base = faiss.downcast_index(index.base_index)
    if isinstance(base, (faiss.IndexHNSW, faiss.IndexIVFFastScan)):
        return None
    gpu_base = faiss.index_cpu_to_all_gpus(base, co=cloner_options(base))
    _set_nprobe(gpu_base, params)
    refine_index = faiss.downcast_index(index.refine_index)
    wrapper = faiss.IndexRefine(gpu_base, refine_index)
    k_factor = float(params.get("k_factor", index.k_factor))
    return GpuIndex(wrapper, k_factor=k_factor, keep_alive=[gpu_base, refine_index, index])


def _set_nprobe(gpu_index: Any, params: dict[str, int]) -> None:
    nprobe = params.get("nprobe")
    if nprobe is None:
        return
    if nprobe > GPU_MAX_NPROBE:
        logger.warning("nprobe %d clamped to the GPU limit of %d", nprobe, GPU_MAX_NPROBE)
    faiss.GpuParameterSpace().set_index_parameter(
        gpu_index, "nprobe", min(int(nprobe), GPU_MAX_NPROBE)
    )
