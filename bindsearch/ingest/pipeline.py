"""The ingest pipeline: scan -> skip unchanged -> prepare (workers) -> encode -> write.

Crash safety: all rows of a file are committed together in one LanceDB commit
(:meth:`Store.replace_files`), and a file counts as done only through its committed rows, so a
run killed at any moment and started again writes exactly the rows a clean run would.
"""

from __future__ import annotations

import logging
import multiprocessing
import os
import time
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import (
    ALL_COMPLETED,
    FIRST_COMPLETED,
    Executor,
    Future,
    ProcessPoolExecutor,
    wait,
)
from concurrent.futures.process import BrokenProcessPool
from dataclasses import dataclass
from pathlib import Path

from bindsearch.encode import Encoder
from bindsearch.errors import ConfigError, ModelMismatchError
from bindsearch.indexes import refresh_index
from bindsearch.ingest.batcher import EncodeBatcher
from bindsearch.ingest.discover import DiscoveredFile, ScanStats, iter_files, validate_roots
from bindsearch.ingest.prepare import (
    FileJob,
    PreparedFile,
    crashed_file,
    prepare_file,
    worker_init,
)
from bindsearch.ingest.report import Failure, IngestReport
from bindsearch.ingest.writer import RowWriter
from bindsearch.modality import Modality
from bindsearch.preprocess import InputKind
from bindsearch.store import FileState, Store

logger = logging.getLogger(__name__)

ProgressCallback = Callable[[IngestReport], None]

#: Clips per forward pass when not given (a video item is 15 clips, audio 3).
_BATCH_CLIPS = {"cuda": 64, "cpu": 8}


@dataclass(frozen=True)
class IngestOptions:
    """Knobs of one run (see ``bindsearch ingest --help``)."""

    forced_kind: InputKind | None = None
    prune: bool = False
    segment_s: float | None = None
    batch_size: int | None = None
    workers: int | None = None
    dry_run: bool = False
    commit_files: int = 256
    #: Clips of a whole-file audio row: None = 3 (the reference), 0 = auto (ceil(T / 2 s),
    #: at least 3), N = N. Vectors of different settings must not share an index.
    audio_clips: int | None = None
    #: Images: True = bit-identical to the reference loader, False = reduced JPEG decoding of
    #: large photos (faster; see ``bindsearch.preprocess.image``), None = the
    #: ``BINDSEARCH_IMAGE_EXACT`` environment variable (unset: reduced).
    exact_images: bool | None = None

    def __post_init__(self) -> None:
        if self.audio_clips is not None and self.audio_clips < 0:
            raise ConfigError(
                f"audio_clips must be None (3), 0 (auto) or a positive count, "
                f"got {self.audio_clips}"
            )


def default_workers() -> int:
    """Decode processes: all cores but one (the encoder's), at least one."""
    return max(1, (os.cpu_count() or 2) - 1)


def _is_done(path: str, f: DiscoveredFile, items: dict[str, FileState], errors: dict) -> str | None:
    """'unchanged' / 'known_bad' when the file needs no work, else None."""
    state = items.get(path)
    if state is not None:
        same = state.size_bytes == f.size_bytes and state.mtime == f.mtime
        return "unchanged" if same else None
    # Only a whole-file failure (recorded under the file's own kind) marks it as known bad; a
    # soundtrack failure of a video without committed rows means its run was cut short.
    err = errors.get(path)
    if (
        err is not None
        and err.modality == f.kind.value
        and err.size_bytes == f.size_bytes
        and err.mtime == f.mtime
    ):
        return "known_bad"
    return None


class _Run:
    """State of one ingest run (kept off the public API)."""

    def __init__(self, store: Store, report: IngestReport, options: IngestOptions) -> None:
        self.store = store
        self.report = report
        self.options = options
        self.items = store.file_states()
        self.errors = store.error_states()
        self.seen: set[str] = set()

    def scan(self, roots: Sequence[Path]) -> Iterator[DiscoveredFile]:
        stats = ScanStats()
        started = time.perf_counter()
        for f in iter_files(roots, forced=self.options.forced_kind, stats=stats):
            self.report.seconds_by_stage["scan"] += time.perf_counter() - started
            yield f
            started = time.perf_counter()
        self.report.seconds_by_stage["scan"] += time.perf_counter() - started
        r = self.report
        r.files_found, r.hidden_skipped = stats.files_found, stats.hidden_skipped
        r.unknown_skipped, r.loops_skipped = stats.unknown_skipped, stats.loops_skipped
        r.unreadable = list(stats.unreadable)

    def jobs(self, roots: Sequence[Path]) -> Iterator[FileJob]:
        for f in self.scan(roots):
            path = str(f.path)
            if self.options.prune:  # only --prune needs the set of paths seen
                self.seen.add(path)
            verdict = _is_done(path, f, self.items, self.errors)
            if verdict == "unchanged":
                self.report.files_unchanged += 1
            elif verdict == "known_bad":
                self.report.files_known_bad += 1
            else:
                self.report.to_ingest_by_kind[f.kind.value] += 1
                yield FileJob(
                    path, f.kind, f.size_bytes, f.mtime, self.options.segment_s,
                    self.options.audio_clips, self.options.exact_images,
                )  # fmt: skip

    def prune(self, roots: Sequence[Path]) -> None:
        prefixes = tuple(str(r).rstrip(os.sep) + os.sep for r in roots)
        exact = {str(r) for r in roots}
        gone = [
            p for p in set(self.items) | set(self.errors)
            if p not in self.seen and (p in exact or p.startswith(prefixes))
        ]  # fmt: skip
        if gone:
            self.report.rows_pruned = self.store.delete_paths(gone)


def _executor(workers: int) -> Executor | None:
    if workers == 0:
        return None
    context = multiprocessing.get_context("forkserver")
    return ProcessPoolExecutor(workers, mp_context=context, initializer=worker_init)


class _Pool:
    """Worker processes preparing files, with at most ``depth`` jobs in flight.

    A worker that dies (a decoder crash) breaks the whole pool; the jobs then in flight are
    re-run one at a time in single-use processes, so only the file that crashes is recorded as
    failed, and the pool is rebuilt for the rest of the run.
    """

    def __init__(
        self, workers: int, depth: int, prepare: Callable[[FileJob], PreparedFile] = prepare_file
    ) -> None:
        self.workers = workers
        self.depth = depth
        self.prepare = prepare  # a module-level function (it is pickled to the workers)
        self.executor = _executor(workers)

    def prepared(self, jobs: Iterator[FileJob]) -> Iterator[PreparedFile]:
        if self.executor is None:
            yield from map(self.prepare, jobs)
            return
        running: dict[Future[PreparedFile], FileJob] = {}
        for job in jobs:
            running[self.executor.submit(self.prepare, job)] = job
            if len(running) >= self.depth:
                yield from self._collect(running, FIRST_COMPLETED)
        yield from self._collect(running, ALL_COMPLETED)

    def _collect(
        self, running: dict[Future[PreparedFile], FileJob], when: str
    ) -> Iterator[PreparedFile]:
        done, _ = wait(list(running), return_when=when)
        broken = [running.pop(f) for f in done if isinstance(f.exception(), BrokenProcessPool)]
        for future in done:
            if future in running:
                del running[future]
                yield future.result()
        if broken:
            broken += list(running.values())  # the rest of the broken pool's jobs
            running.clear()
            self.shutdown()
            self.executor = _executor(self.workers)
            yield from (_isolated(self.prepare, job) for job in broken)

    def shutdown(self) -> None:
        if self.executor is not None:
            self.executor.shutdown(wait=False, cancel_futures=True)


def _isolated(prepare: Callable[[FileJob], PreparedFile], job: FileJob) -> PreparedFile:
    """Prepare one job in its own process, so a crash can only be its own."""
    with ProcessPoolExecutor(1, mp_context=multiprocessing.get_context("forkserver"),
                             initializer=worker_init) as single:  # fmt: skip
        try:
            return single.submit(prepare, job).result()
        except BrokenProcessPool as exc:
            logger.warning("%s crashed its decoder process", job.path)
            return crashed_file(job, str(exc) or "process ended abruptly")


def _check_model_name(store: Store, model_name: str) -> None:
    recorded = (store.model_info() or {}).get("model")
    if recorded is not None and recorded != model_name:
        raise ModelMismatchError(
            f"index {store.directory} holds vectors of model {recorded!r}, not {model_name!r}; "
            f"ingest with --model {recorded} or choose a new --index for {model_name}"
        )


def run_ingest(
    store: Store,
    encoder_factory: Callable[[], Encoder],
    model_name: str,
    roots: Sequence[str | Path],
    options: IngestOptions,
    on_progress: ProgressCallback | None = None,
) -> IngestReport:
    """Ingest ``roots`` into ``store``; see the module docstring for the guarantees."""
    started = time.perf_counter()
    checked_roots = validate_roots(roots)
    report = IngestReport(index=str(store.directory), model=model_name, dry_run=options.dry_run)
    run = _Run(store, report, options)
    if options.dry_run:
        for _ in run.jobs(checked_roots):
            pass
        report.seconds_total = time.perf_counter() - started
        return report
    _check_model_name(store, model_name)  # before loading (or downloading) any weights
    encoder = encoder_factory()
    store.ensure_model(encoder.model_name, encoder.weights_id, encoder.embed_dim)
    writer = RowWriter(store, report, options.commit_files, on_progress)
    clips = options.batch_size or _BATCH_CLIPS["cuda" if encoder.device.type == "cuda" else "cpu"]
    batcher = EncodeBatcher(encoder, lambda _tower: clips, writer.deliver)
    workers = default_workers() if options.workers is None else options.workers
    pool = _Pool(workers, depth=4 * max(workers, 1))
    try:
        for prepared in pool.prepared(run.jobs(checked_roots)):
            report.seconds_by_stage["decode"] += prepared.seconds
            report.files_prepared += 1
            writer.accept(prepared, batcher)
            if on_progress is not None:
                on_progress(report)
        batcher.flush()
        writer.commit()
    finally:
        pool.shutdown()
    report.seconds_by_stage["encode"] = batcher.seconds
    if options.prune:
        run.prune(checked_roots)
    if report.rows_written or report.rows_pruned:
        t = time.perf_counter()
        store.optimize()
        report.seconds_by_stage["optimize"] += time.perf_counter() - t
        t = time.perf_counter()
        refresh_index(store)  # a FAISS sidecar, if built, covers the new rows (or is rebuilt)
        report.seconds_by_stage["index"] += time.perf_counter() - t
    report.seconds_total = time.perf_counter() - started
    return report


__all__ = ["IngestOptions", "run_ingest", "default_workers", "Failure", "Modality"]
