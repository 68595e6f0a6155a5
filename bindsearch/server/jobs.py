"""Background jobs (ingest runs started over HTTP), one at a time, with progress to poll.

Jobs run in a single worker thread, in the order submitted: two ingests into one index must
not write concurrently. The newest ``max_kept`` jobs are remembered for ``GET /jobs/{id}``.
"""

from __future__ import annotations

import logging
import threading
import uuid
from collections import OrderedDict
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import datetime, timezone
from typing import Any, Literal

from bindsearch.errors import BindsearchError

logger = logging.getLogger(__name__)

JobState = Literal["queued", "running", "done", "failed"]


def _now() -> str:
    return datetime.now(timezone.utc).isoformat(timespec="milliseconds")


@dataclass
class Job:
    """One job's state. The worker thread replaces fields whole; readers see either value."""

    id: str
    paths: list[str]
    created_at: str = field(default_factory=_now)
    state: JobState = "queued"
    started_at: str | None = None
    finished_at: str | None = None
    progress: dict[str, int] = field(default_factory=dict)
    report: dict[str, Any] | None = None
    error: str | None = None

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready dict (the ``JobOut`` schema)."""
        return {"id": self.id, "state": self.state, "paths": list(self.paths),
                "created_at": self.created_at, "started_at": self.started_at,
                "finished_at": self.finished_at, "progress": dict(self.progress),
                "report": self.report, "error": self.error}  # fmt: skip


#: A job's work: runs in the worker thread, may update ``job.progress``, returns the report.
JobWork = Callable[[Job], dict[str, Any]]


class JobManager:
    """Runs submitted work one job at a time in a background thread."""

    def __init__(self, max_kept: int = 100) -> None:
        self.max_kept = max_kept
        self._executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="bindsearch-job")
        self._jobs: OrderedDict[str, Job] = OrderedDict()
        self._lock = threading.Lock()

    def submit(self, paths: list[str], work: JobWork) -> Job:
        """Queue ``work``; returns the queued job at once."""
        job = Job(uuid.uuid4().hex, paths)
        with self._lock:
            self._jobs[job.id] = job
            while len(self._jobs) > self.max_kept:
                oldest = next(iter(self._jobs))
                if self._jobs[oldest].state in ("queued", "running"):
                    break
                del self._jobs[oldest]
        self._executor.submit(self._run, job, work)
        return job

    def get(self, job_id: str) -> Job | None:
        """The job with ``job_id``, if remembered."""
        with self._lock:
            return self._jobs.get(job_id)

    def _run(self, job: Job, work: JobWork) -> None:
        job.started_at = _now()
        job.state = "running"
        try:
            job.report = work(job)
            job.state = "done"
        except BindsearchError as exc:
            job.error = str(exc)
            job.state = "failed"
        except Exception as exc:  # a bug: keep the server up, say so in the job and the log
            logger.exception("job %s failed", job.id)
            job.error = f"internal error: {type(exc).__name__}: {exc}"
            job.state = "failed"
        finally:
            job.finished_at = _now()

    def shutdown(self) -> None:
        """Drop queued jobs and wait for the running one (its commits are crash-safe anyway)."""
        self._executor.shutdown(wait=True, cancel_futures=True)
