"""Benchmark results: the result record, the paper's numbers, JSON and a Rich table."""

from __future__ import annotations

import platform
from dataclasses import asdict, dataclass, field
from typing import Any

#: ImageBind (ImageBind-Huge, arXiv 2305.05665v2) numbers, keyed (benchmark, task, metric).
PAPER: dict[tuple[str, str, str], float] = {
    ("clotho", "text→audio", "R@1"): 6.0,
    ("clotho", "text→audio", "R@10"): 28.4,
    ("audiocaps", "text→audio", "R@1"): 9.3,
    ("audiocaps", "text→audio", "R@10"): 42.3,
    ("esc50", "zero-shot", "top-1"): 66.9,
    ("msrvtt", "text→video (A)", "R@1"): 6.8,
    ("msrvtt", "text→video (A)", "R@5"): 18.5,
    ("msrvtt", "text→video (A)", "R@10"): 27.2,
    ("msrvtt", "text→video (V)", "R@1"): 36.1,
    ("msrvtt", "text→video (A+V)", "R@1"): 36.8,
    ("msrvtt", "text→video (A+V)", "R@5"): 61.8,
    ("msrvtt", "text→video (A+V)", "R@10"): 70.0,
    ("audioset", "zero-shot", "mAP"): 17.6,
    ("vggsound", "zero-shot", "top-1"): 27.8,
    ("nyud", "zero-shot", "top-1"): 54.0,
    ("sund", "zero-shot", "top-1"): 35.1,
    ("llvip", "zero-shot", "top-1"): 63.4,
}
#: An independent reproduction with the official weights (mteb PR #5015): the drift to expect.
REPRODUCTION: dict[tuple[str, str, str], float] = {
    ("esc50", "zero-shot", "top-1"): 66.4,
    ("audiocaps", "text→audio", "R@10"): 41.6,
}
#: How many missing or failed file names a result lists.
FIRST_NAMES = 10


@dataclass
class MetricRow:
    """One figure of a run, with the gallery and query counts it was computed on."""

    task: str
    metric: str
    value: float
    gallery: int
    queries: int
    paper: float | None = None
    reproduction: float | None = None


@dataclass
class BenchResult:
    """Everything one benchmark run reports (the ``--json`` document)."""

    benchmark: str
    metrics: list[MetricRow]
    settings: dict[str, Any]
    dataset: dict[str, Any]
    model: str
    weights_id: str
    device: str
    index: str
    ingest: dict[str, Any]
    timing: dict[str, float]
    versions: dict[str, str] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready dict."""
        doc = asdict(self)
        doc["timing"] = {k: round(v, 4) for k, v in self.timing.items()}
        return doc  # figures unrounded: comparable with a recomputation


def metric_row(
    benchmark: str, task: str, metric: str, value: float, gallery: int, queries: int,
    *, compare: bool = True,
) -> MetricRow:  # fmt: skip
    """A row with the paper's and the reproduction's numbers attached (``compare=False``
    when the run's protocol differs, e.g. one ESC-50 fold)."""
    key = (benchmark, task, metric)
    return MetricRow(
        task, metric, value, gallery, queries,
        PAPER.get(key) if compare else None, REPRODUCTION.get(key) if compare else None,
    )  # fmt: skip


def names_summary(names: list[str]) -> dict[str, Any]:
    """``{"count": n, "first": [...]}`` for missing or failed files."""
    return {"count": len(names), "first": names[:FIRST_NAMES]}


def versions() -> dict[str, str]:
    """Versions of what produced the numbers."""
    import lancedb
    import numpy
    import torch

    import bindsearch

    return {
        "bindsearch": bindsearch.__version__,
        "torch": torch.__version__,
        "numpy": numpy.__version__,
        "lancedb": getattr(lancedb, "__version__", "unknown"),
        "python": platform.python_version(),
    }


def device_name(device: Any) -> str:
    """``cpu``, ``cuda:0 (NVIDIA H100 ...)`` etc."""
    import torch

    text = str(device)
    if getattr(device, "type", None) == "cuda" and torch.cuda.is_available():
        text += f" ({torch.cuda.get_device_name(device)})"
    return text


def result_table(result: BenchResult) -> Any:
    """A Rich table of the run's figures side by side with the paper's (returned, not
    printed)."""
    from rich.table import Table

    settings = ", ".join(f"{k}={v}" for k, v in result.settings.items())
    table = Table(
        "task", "metric", "this run", "paper", "repro.", "gallery", "queries",
        title=f"{result.benchmark}: {result.model} ({result.weights_id[:19]})",
        caption=f"{settings}; device {result.device}",
    )  # fmt: skip

    def fmt(value: float | None) -> str:
        return "–" if value is None else f"{value:.1f}"

    for row in result.metrics:
        table.add_row(
            row.task, row.metric, f"{row.value:.2f}", fmt(row.paper), fmt(row.reproduction),
            str(row.gallery), str(row.queries),
        )  # fmt: skip
    return table


__all__ = [
    "BenchResult",
    "MetricRow",
    "PAPER",
    "REPRODUCTION",
    "device_name",
    "metric_row",
    "names_summary",
    "result_table",
    "versions",
]
