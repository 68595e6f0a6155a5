"""``bindsearch bench {clotho,audiocaps,msrvtt,esc50,...}``: the paper's benchmarks."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn

from bindsearch.cli.app import err_console
from bindsearch.cli.options import DeviceOption, DtypeOption, JsonOption, WeightsOption

bench_app = typer.Typer(
    help="Reproduce the ImageBind paper's benchmarks through ingest and search "
    "(see benchmarks/README.md).",
    no_args_is_help=True,
)

DataOption = Annotated[
    Path, typer.Option("--data", help="The dataset folder, laid out as distributed.")
]
ModelOption = Annotated[
    str, typer.Option("--model", "-m", help="Registered model (the paper: imagebind-huge).")
]
ClipsOption = Annotated[
    str | None,
    typer.Option(
        "--clips",
        help="2-s audio clips per file: N (default 3, the public code) or 'auto' "
        "(ceil(duration / 2 s), full coverage).",
    ),
]
IndexOption = Annotated[
    Path | None,
    typer.Option(
        "--index", "-i", help="Index dir (default $BINDSEARCH_HOME/bench/<set>-<model>-<N>clips)."
    ),
]
OutOption = Annotated[Path | None, typer.Option("--out", help="Also write the JSON result here.")]
WorkersOption = Annotated[
    int | None,
    typer.Option("--workers", min=0, help="Decode processes (default: cores - 1; 0 = in-process)."),
]
BatchOption = Annotated[
    int | None, typer.Option("--batch-size", min=1, help="Clips per forward pass when ingesting.")
]
TiesOption = Annotated[
    str,
    typer.Option("--ties", help="Equal scores: optimistic (relevant first) or pessimistic."),
]
AnnotationOption = Annotated[
    Path | None, typer.Option("--captions", help="The annotation CSV, if not at its usual place.")
]
MediaOption = Annotated[
    Path | None, typer.Option("--media", help="The media folder, if not at its usual place.")
]
TemplateOption = Annotated[
    str | None,
    typer.Option(
        "--name-template",
        help="Media file name, e.g. 'Y{youtube_id}_{start:.3f}_{end:.3f}.wav' (fields "
        "youtube_id, start_time, start, end, audiocap_id; default: detected).",
    ),
]


def _run(
    job: Callable[[Any, Any], Any], options: dict[str, Any], json_output: bool, out: Path | None
) -> None:
    """Build the run config, run ``job(config, progress)`` (progress on stderr unless
    ``--json``), write ``--out`` and render the result."""
    from bindsearch.bench.metrics import check_ties
    from bindsearch.bench.runner import RunConfig, parse_clips

    options["clips"] = parse_clips(options.get("clips"))
    options["ties"] = check_ties(options.get("ties", "optimistic"))
    config = RunConfig(**options)
    with _Progress(enabled=not json_output) as progress:
        result = job(config, progress)
    doc = result.to_dict()
    if out is not None:
        out.parent.mkdir(parents=True, exist_ok=True)
        out.write_text(json.dumps(doc, indent=2, ensure_ascii=False) + "\n")
    if json_output:
        typer.echo(json.dumps(doc, indent=2, ensure_ascii=False))
    else:
        _render(result)


class _Progress:
    """Rich progress on stderr: one bar per stage (ingest, text, search)."""

    def __init__(self, *, enabled: bool) -> None:
        self.enabled = enabled
        self.bar = Progress(
            TextColumn("[bold]{task.description}"), BarColumn(), MofNCompleteColumn(),
            TimeRemainingColumn(), console=err_console, transient=True,
        )  # fmt: skip
        self.tasks: dict[str, Any] = {}

    def __enter__(self) -> Callable[[str, int, int], None] | None:
        if not self.enabled:
            return None
        self.bar.start()
        return self.update

    def __exit__(self, *exc: object) -> None:
        if self.enabled:
            self.bar.stop()

    def update(self, stage: str, done: int, total: int) -> None:
        if stage not in self.tasks:
            self.tasks[stage] = self.bar.add_task(stage, total=total)
        self.bar.update(self.tasks[stage], completed=done, total=total)


def _render(result: Any) -> None:
    from bindsearch.bench.report import result_table

    Console().print(result_table(result))
    data = result.dataset
    galleries = ", ".join(f"{m} {n}" for m, n in data["gallery"].items())
    err_console.print(f"gallery: {galleries}; index {result.index}", highlight=False)
    for what in ("missing", "failed"):
        if data[what]["count"]:
            err_console.print(
                f"[yellow]{data[what]['count']} {what}[/] (first: {'; '.join(data[what]['first'])})",
                highlight=False, soft_wrap=True,
            )  # fmt: skip


def _job(run: Callable[..., Any], dataset: Any) -> Callable[[Any, Any], Any]:
    """``(config, progress)`` -> ``run(dataset, config, progress)``."""
    return lambda config, progress: run(dataset, config, progress)


def clotho_command(
    data: DataOption, model: ModelOption = "imagebind-huge", weights: WeightsOption = None,
    clips: ClipsOption = None, index: IndexOption = None, json_output: JsonOption = False,
    out: OutOption = None, device: DeviceOption = None, dtype: DtypeOption = None,
    workers: WorkersOption = None, batch_size: BatchOption = None, ties: TiesOption = "optimistic",
    captions: AnnotationOption = None, media: MediaOption = None,
) -> None:  # fmt: skip
    """Clotho v2.1 evaluation: text->audio R@1/5/10 and mAP@10, every caption a query.

    DATA holds clotho_captions_evaluation.csv and evaluation/ (from clotho_audio_evaluation.7z).
    """
    from bindsearch.bench.datasets import load_clotho
    from bindsearch.bench.evaluate import run_text_to_audio

    dataset = load_clotho(data, captions=captions, media=media)
    _run(_job(run_text_to_audio, dataset), _common(locals()), json_output, out)


def audiocaps_command(
    data: DataOption, model: ModelOption = "imagebind-huge", weights: WeightsOption = None,
    clips: ClipsOption = None, index: IndexOption = None, json_output: JsonOption = False,
    out: OutOption = None, device: DeviceOption = None, dtype: DtypeOption = None,
    workers: WorkersOption = None, batch_size: BatchOption = None, ties: TiesOption = "optimistic",
    captions: AnnotationOption = None, media: MediaOption = None,
    name_template: TemplateOption = None,
    subset: Annotated[Path | None, typer.Option(
        "--subset", help="Clips to keep, e.g. ARNLQ final_filtered_test_list.txt (796 clips).",
    )] = None,
) -> None:  # fmt: skip
    """AudioCaps test (v1 or 2.0 CSV): text->audio R@1/5/10 and mAP@10.

    DATA holds test.csv (or dataset/test.csv) and the downloaded audio (audio/test/ or DATA).
    """
    from bindsearch.bench.datasets import load_audiocaps
    from bindsearch.bench.evaluate import run_text_to_audio

    dataset = load_audiocaps(
        data, captions=captions, media=media, name_template=name_template, subset=subset
    )
    _run(_job(run_text_to_audio, dataset), _common(locals()), json_output, out)


def msrvtt_command(
    data: DataOption, model: ModelOption = "imagebind-huge", weights: WeightsOption = None,
    clips: ClipsOption = None, index: IndexOption = None, json_output: JsonOption = False,
    out: OutOption = None, device: DeviceOption = None, dtype: DtypeOption = None,
    workers: WorkersOption = None, batch_size: BatchOption = None, ties: TiesOption = "optimistic",
    captions: AnnotationOption = None, media: MediaOption = None,
    fusion: Annotated[str, typer.Option(
        "--fusion", help="A+V weights VIDEO,AUDIO on the raw scale (audio x 20).",
    )] = "0.95,0.05",
    missing_audio: Annotated[str, typer.Option(
        "--missing-audio", help="Videos without sound: zero (zero audio vector) or restrict "
        "(A and A+V on videos with sound only).",
    )] = "zero",
) -> None:  # fmt: skip
    """MSR-VTT 1k-A: text->video R@1/5/10 for video (V), audio (A) and A+V fusion.

    DATA holds MSRVTT_JSFUSION_test.csv and videos/all/videoNNNN.mp4.
    """
    from bindsearch.bench.datasets import load_msrvtt
    from bindsearch.bench.evaluate import run_msrvtt

    dataset = load_msrvtt(data, captions=captions, media=media)
    options = _common(locals())
    options.update(fusion=_weights(fusion), missing_audio=missing_audio)
    _run(_job(run_msrvtt, dataset), options, json_output, out)


def esc50_command(
    data: DataOption, model: ModelOption = "imagebind-huge", weights: WeightsOption = None,
    clips: ClipsOption = None, index: IndexOption = None, json_output: JsonOption = False,
    out: OutOption = None, device: DeviceOption = None, dtype: DtypeOption = None,
    workers: WorkersOption = None, batch_size: BatchOption = None, ties: TiesOption = "optimistic",
    captions: AnnotationOption = None, media: MediaOption = None,
    folds: Annotated[str | None, typer.Option(
        "--folds", help="Only these folds, e.g. 1 (the paper's ablations); default all 5.",
    )] = None,
) -> None:  # fmt: skip
    """ESC-50: zero-shot top-1 over all clips (80 CLIP templates), and per fold.

    DATA is ESC-50-master (meta/esc50.csv and audio/).
    """
    from bindsearch.bench.datasets import load_esc50
    from bindsearch.bench.evaluate import run_classification

    dataset = load_esc50(data, folds=_folds(folds), captions=captions, media=media)
    _run(_job(run_classification, dataset), _common(locals()), json_output, out)


def _youtube_set_command(name: str) -> Callable[..., None]:
    def command(
        data: DataOption, model: ModelOption = "imagebind-huge", weights: WeightsOption = None,
        clips: ClipsOption = None, index: IndexOption = None, json_output: JsonOption = False,
        out: OutOption = None, device: DeviceOption = None, dtype: DtypeOption = None,
        workers: WorkersOption = None, batch_size: BatchOption = None,
        ties: TiesOption = "optimistic", captions: AnnotationOption = None,
        media: MediaOption = None, name_template: TemplateOption = None,
    ) -> None:  # fmt: skip
        from bindsearch.bench.datasets import load_audioset, load_vggsound
        from bindsearch.bench.evaluate import run_classification

        load = load_audioset if name == "audioset" else load_vggsound
        dataset = load(data, captions=captions, media=media, name_template=name_template)
        _run(_job(run_classification, dataset), _common(locals()), json_output, out)

    command.__doc__ = {
        "audioset": "AudioSet eval: zero-shot macro mAP over 527 classes.\n\n"
        "DATA holds eval_segments.csv, class_labels_indices.csv and the downloaded audio.",
        "vggsound": "VGGSound test: zero-shot top-1 over its 309 classes.\n\n"
        "DATA holds vggsound.csv and the downloaded clips (only their sound is used).",
    }[name]
    return command


def _folder_set_command(name: str) -> Callable[..., None]:
    def command(
        data: DataOption, model: ModelOption = "imagebind-huge", weights: WeightsOption = None,
        index: IndexOption = None, json_output: JsonOption = False, out: OutOption = None,
        device: DeviceOption = None, dtype: DtypeOption = None, workers: WorkersOption = None,
        batch_size: BatchOption = None, ties: TiesOption = "optimistic",
    ) -> None:  # fmt: skip
        from bindsearch.bench.datasets import load_class_folders
        from bindsearch.bench.evaluate import run_classification

        dataset = load_class_folders(name, data)
        _run(_job(run_classification, dataset), _common(locals()), json_output, out)

    kind = "thermal" if name == "llvip" else "depth"
    command.__doc__ = (
        f"{name.upper()} zero-shot top-1 on {kind} maps.\n\nDATA holds one folder per class "
        "(see benchmarks/README.md for how to prepare it)."
    )
    return command


_COMMON = ("model", "weights", "clips", "device", "dtype", "workers", "batch_size", "ties")


def _common(values: dict[str, Any]) -> dict[str, Any]:
    """The :class:`RunConfig` fields among a command's arguments."""
    options = {k: values[k] for k in _COMMON if k in values}
    options["index_dir"] = values.get("index")
    return options


def _weights(text: str) -> tuple[float, float]:
    from bindsearch.errors import ConfigError

    try:
        video, audio = (float(x) for x in text.split(","))
    except ValueError:
        raise ConfigError(
            f"--fusion takes VIDEO,AUDIO weights, e.g. 0.95,0.05; got {text!r}"
        ) from None
    return video, audio


def _folds(text: str | None) -> list[int] | None:
    from bindsearch.errors import ConfigError

    if not text:
        return None
    try:
        return [int(x) for x in text.split(",") if x.strip()]
    except ValueError:
        raise ConfigError(f"--folds takes fold numbers, e.g. 1 or 1,2; got {text!r}") from None


def register(app: typer.Typer) -> None:
    """Attach ``bench`` and its commands to ``app``."""
    bench_app.command("clotho")(clotho_command)
    bench_app.command("audiocaps")(audiocaps_command)
    bench_app.command("msrvtt")(msrvtt_command)
    bench_app.command("esc50")(esc50_command)
    for name in ("audioset", "vggsound"):
        bench_app.command(name)(_youtube_set_command(name))
    for name in ("nyud", "sund", "llvip"):
        bench_app.command(name)(_folder_set_command(name))
    app.add_typer(bench_app, name="bench")
