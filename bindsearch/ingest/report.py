"""What an ingest run did: counts, failures and per-stage timings."""

from __future__ import annotations

from collections import Counter, defaultdict
from dataclasses import asdict, dataclass, field, fields
from typing import Any


@dataclass(frozen=True)
class Failure:
    """A file (or one modality of it) that could not be ingested."""

    path: str
    modality: str | None
    stage: str
    error: str


@dataclass
class IngestReport:
    """Summary of one ingest run (also the ``--json`` document)."""

    index: str
    model: str
    dry_run: bool = False
    files_found: int = 0
    files_unchanged: int = 0
    files_known_bad: int = 0
    files_ingested: int = 0
    files_failed: int = 0
    files_deduplicated: int = 0
    files_prepared: int = 0
    hidden_skipped: int = 0
    unknown_skipped: int = 0
    loops_skipped: int = 0
    rows_written: int = 0
    rows_pruned: int = 0
    rows_by_modality: Counter[str] = field(default_factory=Counter)
    to_ingest_by_kind: Counter[str] = field(default_factory=Counter)
    failures: list[Failure] = field(default_factory=list)
    unreadable: list[tuple[str, str]] = field(default_factory=list)
    seconds_by_stage: defaultdict[str, float] = field(default_factory=lambda: defaultdict(float))
    seconds_total: float = 0.0

    @property
    def files_handled(self) -> int:
        """Files dealt with so far: skipped as unchanged or known bad, or prepared."""
        return self.files_unchanged + self.files_known_bad + self.files_prepared

    @property
    def ok(self) -> bool:
        """True when no file failed."""
        return not self.failures

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready dict."""
        doc = {f.name: getattr(self, f.name) for f in fields(self)}
        doc["failures"] = [asdict(f) for f in self.failures]
        doc["rows_by_modality"] = dict(self.rows_by_modality)
        doc["to_ingest_by_kind"] = dict(self.to_ingest_by_kind)
        doc["seconds_by_stage"] = {k: round(v, 4) for k, v in self.seconds_by_stage.items()}
        doc["seconds_total"] = round(self.seconds_total, 4)
        doc["unreadable"] = [{"path": p, "reason": r} for p, r in self.unreadable]
        doc["ok"] = self.ok
        return doc
