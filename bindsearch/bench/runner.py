"""Run a benchmark through the product: ingest the media, then query through the search layer.

The dataset's files go through the normal ingest pipeline into an index kept for reruns
(unchanged files are reused), by default ``$BINDSEARCH_HOME/bench/<dataset>-<model>-<clips>``.
Vectors made with different audio clip settings must not share an index, so the clips
setting is part of the default directory name and is recorded in ``bench.json`` beside the
tables; an index recorded with another setting is refused.
"""

from __future__ import annotations

import hashlib
import json
import math
import os
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from bindsearch.bench.datasets.base import MediaSet
from bindsearch.bench.metrics import TieRule, check_ties
from bindsearch.bench.report import BenchResult, MetricRow, device_name, names_summary, versions
from bindsearch.bench.retrieval import DEFAULT_FUSION, whole_file_rows
from bindsearch.errors import ConfigError, DatasetError
from bindsearch.index import Index, connect
from bindsearch.ingest.report import IngestReport

#: ``(stage, done, total)``: progress of ``ingest``, ``text``, ``search`` and ``labels``.
ProgressFn = Callable[[str, int, int], None]
MARKER_FILE = "bench.json"
TEXT_CHUNK = 256
#: Default model: the one the paper's numbers are for.
PAPER_MODEL = "imagebind-huge"
MISSING_AUDIO_POLICIES = ("zero", "restrict")


@dataclass(frozen=True)
class RunConfig:
    """Settings of one benchmark run (see ``bindsearch bench --help``).

    ``clips``: 2-s clips per audio file, ``None`` = 3 (the public code), ``0`` = auto (full
    coverage, ``ceil(T / 2 s)``). ``fusion``: MSR-VTT A+V weights (video, audio) on the raw
    scale. ``missing_audio``: MSR-VTT videos without sound get a zero audio vector
    (``zero``) or A and A+V are evaluated on the videos with sound only (``restrict``).
    """

    model: str = PAPER_MODEL
    weights: Path | None = None
    device: str | None = None
    dtype: str | None = None
    index_dir: Path | None = None
    clips: int | None = None
    workers: int | None = None
    batch_size: int | None = None
    ties: TieRule = "optimistic"
    fusion: tuple[float, float] = DEFAULT_FUSION
    missing_audio: str = "zero"

    def __post_init__(self) -> None:
        if self.clips is not None and self.clips < 0:
            raise ConfigError(f"clips must be a positive count or auto, got {self.clips}")
        if self.missing_audio not in MISSING_AUDIO_POLICIES:
            raise ConfigError(f"missing_audio must be one of {', '.join(MISSING_AUDIO_POLICIES)}")
        check_ties(self.ties)
        if not all(math.isfinite(w) for w in self.fusion) or not any(self.fusion):
            raise ConfigError(f"fusion weights must be finite and not all zero, got {self.fusion}")


def parse_clips(text: str | None) -> int | None:
    """``--clips`` value: ``None`` -> 3 (default), ``"auto"`` -> 0, ``"N"`` -> N >= 1."""
    if text is None:
        return None
    if text.strip().lower() == "auto":
        return 0
    try:
        value = int(text)
    except ValueError:
        raise ConfigError(f"--clips must be a number of clips or 'auto', got {text!r}") from None
    if value < 1:
        raise ConfigError(f"--clips must be at least 1 (or 'auto'), got {value}")
    return value


def clips_label(clips: int | None) -> str:
    """``3``, ``auto`` or the count: how the setting is named in reports and index dirs."""
    return "auto" if clips == 0 else str(3 if clips is None else clips)


def default_index_dir(benchmark: str, config: RunConfig) -> Path:
    """``$BINDSEARCH_HOME/bench/<benchmark>-<model>-<clips>clips[-w<hash of weights path>]``."""
    from bindsearch.settings import home_dir

    name = f"{benchmark}-{config.model}-{clips_label(config.clips)}clips"
    if config.weights is not None:
        where = os.path.abspath(os.fspath(config.weights)).encode()
        name += "-w" + hashlib.sha256(where).hexdigest()[:8]
    return home_dir() / "bench" / name


@dataclass
class Session:
    """An opened benchmark index, what ingest did, and the run's timings."""

    index: Index
    report: IngestReport
    config: RunConfig
    started: float
    timing: dict[str, float] = field(default_factory=dict)


def _check_marker(directory: Path, clips: int | None, has_rows: bool) -> None:
    """Refuse an index whose vectors were made with another clips setting; record it."""
    marker = directory / MARKER_FILE
    label = clips_label(clips)
    if marker.is_file():
        recorded = json.loads(marker.read_text()).get("audio_clips")
    else:
        recorded = "3" if has_rows else None  # plain ingest uses the 3-clip default
    if recorded is not None and recorded != label:
        raise ConfigError(
            f"index {directory} holds audio vectors made with {recorded} clips, not {label}; "
            "pass another --index (vectors of different clip settings must not mix)"
        )
    if not marker.is_file():
        marker.write_text(json.dumps({"audio_clips": label}) + "\n")


def ingest_dataset(
    dataset: MediaSet, benchmark: str, config: RunConfig, progress: ProgressFn | None
) -> Session:
    """Open the benchmark index and ingest the dataset's files (reused on reruns)."""
    started = time.perf_counter()
    if not dataset.files:
        raise DatasetError(
            f"none of the {len(dataset.missing)} media files of {benchmark} was found under "
            f"{dataset.media_root} (first expected: {', '.join(dataset.missing[:3])})"
        )
    directory = config.index_dir or default_index_dir(benchmark, config)
    index = connect(directory, config.model, config.weights, device=config.device,
                    dtype=config.dtype)  # fmt: skip
    _check_marker(index.directory, config.clips, bool(index.count_by_modality()))
    kind = getattr(dataset, "kind", "audio")
    total = len(dataset.files)

    def on_progress(report: IngestReport) -> None:
        if progress is not None:
            progress("ingest", report.files_handled, total)

    report = index.ingest(
        [str(p) for p in dataset.files.values()], as_kind=None if kind == "video" else kind,
        workers=config.workers, batch_size=config.batch_size, audio_clips=config.clips,
        on_progress=on_progress,
    )  # fmt: skip
    session = Session(index, report, config, started)
    session.timing["ingest_s"] = time.perf_counter() - started
    return session


def gallery(session: Session, dataset: MediaSet, modality: str) -> tuple[dict[str, str], int]:
    """``key -> row id`` of the dataset files with a whole-file ``modality`` row (in dataset
    order), and how many such rows the index holds under the media root in all."""
    rows = whole_file_rows(session.index.store, modality, dataset.media_root)
    found = {key: rows[str(p)] for key, p in dataset.files.items() if str(p) in rows}
    return found, len(rows)


def failed_files(session: Session, dataset: MediaSet, kept: Sequence[str]) -> list[str]:
    """``name: reason`` of the found files that did not make it into the gallery."""
    reasons = {f.path: f"{f.stage}: {f.error}" for f in session.report.failures}
    for failed, record in session.index.store.error_states().items():
        reasons.setdefault(failed, f"{record.stage}: {record.error}")
    kept_set = set(kept)
    out = []
    for key, path in dataset.files.items():
        if key not in kept_set:
            name = os.path.relpath(path, dataset.media_root)
            out.append(f"{name}: {reasons.get(str(path), 'no row after ingest')}")
    return out


def embed_texts(session: Session, texts: Sequence[str], progress: ProgressFn | None) -> np.ndarray:
    """Unit text vectors ``[N, D]`` through :meth:`Index.embed`, in chunks."""
    started = time.perf_counter()
    chunks = []
    for start in range(0, len(texts), TEXT_CHUNK):
        chunks.append(session.index.embed("text", list(texts[start : start + TEXT_CHUNK])))
        if progress is not None:
            progress("text", min(start + TEXT_CHUNK, len(texts)), len(texts))
    session.timing["embed_text_s"] = session.timing.get("embed_text_s", 0.0) + (
        time.perf_counter() - started
    )
    dim = session.index.store.dim
    return np.concatenate(chunks) if chunks else np.zeros((0, dim), np.float32)


def dataset_summary(
    dataset: MediaSet, failed: list[str], galleries: dict[str, int], **extra: Any
) -> dict[str, Any]:
    """The ``dataset`` part of a result: where, what was listed, missing, failed, used."""
    return {
        "name": dataset.name,
        "media_root": str(dataset.media_root),
        **dataset.details,
        "files_listed": len(dataset.files) + len(dataset.missing),
        "missing": names_summary(dataset.missing),
        "failed": names_summary(failed),
        "gallery": galleries,
        **extra,
    }


def finish(
    session: Session,
    benchmark: str,
    metrics: list[MetricRow],
    settings: dict[str, Any],
    dataset: dict[str, Any],
) -> BenchResult:
    """Assemble the result record with model, weights, device, versions and timings."""
    encoder = session.index.encoder()
    session.timing["total_s"] = time.perf_counter() - session.started
    report = session.report
    ingest = {
        "files_ingested": report.files_ingested, "files_unchanged": report.files_unchanged,
        "files_failed": report.files_failed, "files_known_bad": report.files_known_bad,
        "seconds_total": round(report.seconds_total, 4),
        "seconds_by_stage": {k: round(v, 4) for k, v in report.seconds_by_stage.items()},
    }  # fmt: skip
    config = session.config
    return BenchResult(
        benchmark, metrics,
        {"clips": clips_label(config.clips), "ties": config.ties, **settings},
        dataset, encoder.model_name, encoder.weights_id, device_name(encoder.device),
        str(session.index.directory), ingest, dict(session.timing), versions(),
    )  # fmt: skip


__all__ = [
    "MISSING_AUDIO_POLICIES",
    "PAPER_MODEL",
    "ProgressFn",
    "RunConfig",
    "Session",
    "clips_label",
    "dataset_summary",
    "default_index_dir",
    "embed_texts",
    "failed_files",
    "finish",
    "gallery",
    "ingest_dataset",
    "parse_clips",
]
