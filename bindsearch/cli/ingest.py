"""``bindsearch ingest``: embed a media collection into an index."""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn
from rich.table import Table

from bindsearch.cli.app import err_console
from bindsearch.cli.options import DeviceOption, DtypeOption, JsonOption, WeightsOption

IndexOption = Annotated[
    Path | None,
    typer.Option(
        "--index", "-i", help="Index directory (default: $BINDSEARCH_INDEX or ./bindsearch-index)."
    ),
]


def ingest_command(
    paths: Annotated[list[Path], typer.Argument(help="Files or folders to ingest.")],
    index: IndexOption = None,
    model: Annotated[
        str | None,
        typer.Option("--model", "-m", help="Model (default: the index's, else imagebind-huge)."),
    ] = None,
    weights: WeightsOption = None,
    as_kind: Annotated[
        str | None,
        typer.Option(
            "--as",
            help="Force a modality for these paths: image, video, audio, text, depth, thermal, imu.",
        ),
    ] = None,
    prune: Annotated[
        bool, typer.Option("--prune", help="Remove rows of files no longer under PATHS.")
    ] = False,
    segment: Annotated[
        float | None,
        typer.Option(
            "--segment", min=1.0, help="Also one row per SECONDS window of long audio/video."
        ),
    ] = None,
    batch_size: Annotated[
        int | None, typer.Option("--batch-size", min=1, help="Clips per forward pass.")
    ] = None,
    workers: Annotated[
        int | None,
        typer.Option(
            "--workers", min=0, help="Decode processes (default: cores - 1; 0 = in-process)."
        ),
    ] = None,
    device: DeviceOption = None,
    dtype: DtypeOption = None,
    dry_run: Annotated[
        bool, typer.Option("--dry-run", help="Only list what would be ingested, by modality.")
    ] = False,
    strict: Annotated[
        bool, typer.Option("--strict", help="Exit with status 1 if any file failed.")
    ] = False,
    exact_images: Annotated[
        bool,
        typer.Option(
            "--exact-images",
            help="Decode images exactly as the reference loader does (slower): no reduced-scale "
            "decoding of large JPEGs. Same as BINDSEARCH_IMAGE_EXACT=1.",
        ),
    ] = False,
    json_output: JsonOption = False,
) -> None:
    """Ingest media into an index: new and changed files only, crash-safe, failures recorded."""
    from bindsearch.index import connect

    if exact_images:  # read by the decode workers, which inherit this process's environment
        from bindsearch.preprocess.image import EXACT_ENV

        os.environ[EXACT_ENV] = "1"
    from bindsearch.ingest.discover import ScanStats, iter_files

    idx = connect(index, model, weights, device=device, dtype=dtype)
    total = sum(1 for _ in iter_files(paths, stats=ScanStats(), forced=_kind(as_kind)))
    with _progress(total, enabled=not json_output) as update:
        report = idx.ingest(
            paths, as_kind=as_kind, prune=prune, segment_s=segment, batch_size=batch_size,
            workers=workers, dry_run=dry_run, on_progress=update,
        )  # fmt: skip
    if json_output:
        typer.echo(json.dumps(report.to_dict(), indent=2))
    else:
        _render_summary(report)
    if strict and report.failures:
        raise typer.Exit(1)


def _kind(as_kind: str | None):
    from bindsearch.preprocess import InputKind

    return InputKind.parse(as_kind) if as_kind else None


class _progress:
    """Rich progress on stderr, fed by the pipeline's report callbacks."""

    def __init__(self, total: int, *, enabled: bool) -> None:
        self.enabled = enabled
        self.bar = Progress(
            TextColumn("[bold]ingest"), BarColumn(), MofNCompleteColumn(),
            TextColumn("{task.fields[rate]} files/s"), TextColumn("{task.fields[detail]}"),
            TimeRemainingColumn(), console=err_console, transient=True,
        )  # fmt: skip
        self.task = self.bar.add_task("ingest", total=total, rate="0.0", detail="")

    def __enter__(self):
        if self.enabled:
            self.bar.start()
        return self.update

    def __exit__(self, *exc: object) -> None:
        if self.enabled:
            self.bar.stop()

    def update(self, report) -> None:
        if not self.enabled:
            return
        elapsed = self.bar.tasks[0].elapsed or 1e-9
        detail = " ".join(f"{m}:{n}" for m, n in sorted(report.rows_by_modality.items()))
        self.bar.update(
            self.task, completed=report.files_handled,
            rate=f"{report.files_handled / elapsed:.1f}", detail=detail,
        )  # fmt: skip


def _render_summary(report) -> None:
    console = Console()
    title = "dry run: would ingest" if report.dry_run else f"ingested into {report.index}"
    table = Table("modality", "rows" if not report.dry_run else "files", title=title)
    counts = report.to_ingest_by_kind if report.dry_run else report.rows_by_modality
    for modality, count in sorted(counts.items()):
        table.add_row(modality, str(count))
    console.print(table)
    console.print(
        f"files: {report.files_found} found, {report.files_ingested} ingested, "
        f"{report.files_unchanged} unchanged, {report.files_deduplicated} deduplicated, "
        f"{report.files_failed} failed, {report.files_known_bad} known bad; "
        f"skipped {report.hidden_skipped} hidden, {report.unknown_skipped} unknown; "
        f"pruned {report.rows_pruned} rows; {report.seconds_total:.1f} s"
    )
    for failure in report.failures[:20]:
        err_console.print(
            f"[red]failed[/] {failure.path} ({failure.modality}, {failure.stage}): {failure.error}",
            soft_wrap=True,
            highlight=False,
        )
    if len(report.failures) > 20:
        err_console.print(f"... and {len(report.failures) - 20} more (see the errors table)")


def register(app: typer.Typer) -> None:
    """Attach the command to ``app``."""
    app.command("ingest")(ingest_command)
