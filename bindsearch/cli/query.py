"""``bindsearch query`` and ``bindsearch classify``."""

from __future__ import annotations

import json
from collections.abc import Sequence
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.console import Console
from rich.table import Table

from bindsearch.cli.ingest import IndexOption
from bindsearch.cli.options import DeviceOption, DtypeOption, JsonOption, WeightsOption
from bindsearch.errors import ConfigError

WEIGHT_SEPARATOR = "::"
_PART_HELP = "Repeatable. Append ::W for a weight, e.g. ::0.5 or ::-1 (default 1)."
Parts = Annotated[list[str] | None, typer.Option(show_default=False)]


def split_weight(value: str) -> tuple[str, float]:
    """``"beach.jpg::0.5"`` -> ``("beach.jpg", 0.5)``; no suffix -> weight 1."""
    head, sep, tail = value.rpartition(WEIGHT_SEPARATOR)
    if not sep:
        return value, 1.0
    try:
        return head, float(tail)
    except ValueError:
        raise ConfigError(f"bad weight {tail!r} in {value!r}: expected a number after ::") from None


def query_command(
    text: Annotated[
        list[str] | None, typer.Option("--text", "-t", help=f"Text. {_PART_HELP}")
    ] = None,
    image: Annotated[
        list[str] | None, typer.Option("--image", help=f"Image file. {_PART_HELP}")
    ] = None,
    audio: Annotated[
        list[str] | None, typer.Option("--audio", help=f"Audio file. {_PART_HELP}")
    ] = None,
    video: Annotated[
        list[str] | None, typer.Option("--video", help=f"Video file. {_PART_HELP}")
    ] = None,
    depth: Annotated[
        list[str] | None, typer.Option("--depth", help=f"Depth map. {_PART_HELP}")
    ] = None,
    thermal: Annotated[
        list[str] | None, typer.Option("--thermal", help=f"Thermal image. {_PART_HELP}")
    ] = None,
    imu: Annotated[list[str] | None, typer.Option("--imu", help=f"IMU file. {_PART_HELP}")] = None,
    item_id: Annotated[
        list[str] | None, typer.Option("--id", help=f"An ingested item's id. {_PART_HELP}")
    ] = None,
    index: IndexOption = None,
    weights: WeightsOption = None,
    modality: Annotated[
        str | None,
        typer.Option("--modality", help="Result modalities, comma-separated (e.g. image,video)."),
    ] = None,
    path: Annotated[
        str | None,
        typer.Option("--path", help="Only results under this folder, or matching this glob."),
    ] = None,
    where: Annotated[
        str | None, typer.Option("--where", help='SQL filter on columns, e.g. "duration_s > 60".')
    ] = None,
    segments: Annotated[
        bool, typer.Option("--segments", help="Also return moments (segment rows) of long media.")
    ] = False,
    top_k: Annotated[int, typer.Option("--top-k", "-k", min=1, help="Number of results.")] = 10,
    device: DeviceOption = None,
    dtype: DtypeOption = None,
    json_output: JsonOption = False,
    server: Annotated[
        str | None,
        typer.Option(
            "--server",
            envvar="BINDSEARCH_SERVER",
            help="Send the query to this bindsearch server (default: one answering on "
            "127.0.0.1:8000, if --index is not given). API key: $BINDSEARCH_API_KEY.",
        ),
    ] = None,
) -> None:
    """Search the index with any mix of modalities; parts are summed with their weights.

    Example: bindsearch query --image beach.jpg --text "people::-0.5" --modality image
    """
    from bindsearch.query.parts import QueryPart
    from bindsearch.server.client import find_server, search_remote

    given = {"text": text, "image": image, "audio": audio, "video": video, "depth": depth,
             "thermal": thermal, "imu": imu, "id": item_id}  # fmt: skip
    parts = []
    for kind, values in given.items():
        for value in values or []:
            raw, weight = split_weight(value)
            parts.append(QueryPart(kind, raw if kind in ("text", "id") else Path(raw), weight))
    modalities = [m.strip() for m in modality.split(",") if m.strip()] if modality else []
    url = server or (find_server() if index is None else None)
    if url is not None:
        hits: Sequence[Any] = search_remote(url, parts, modalities=modalities, path=path,
                                            where=where, segments=segments, k=top_k)  # fmt: skip
    else:
        from bindsearch.index import connect

        idx = connect(index, weights=weights, device=device, dtype=dtype, create=False)
        hits = idx.search(
            *parts, modalities=modalities, path=path, where=where, segments=segments, k=top_k
        )
    if json_output:
        typer.echo(json.dumps([h.to_dict() for h in hits], indent=2))
        return
    table = Table(
        "rank",
        "score",
        "modality",
        "path",
        "time",
        "id",
        title=" + ".join(p.describe() for p in parts),
    )
    for h in hits:
        span = (
            f"{h.start_s:.1f}-{h.end_s:.1f}s"
            if h.start_s is not None and h.end_s is not None
            else ""
        )
        table.add_row(str(h.rank), f"{h.score:.4f}", h.modality, h.path, span, h.id[:12])
    Console().print(table)


def classify_command(
    file: Annotated[Path, typer.Argument(help="The file to classify.")],
    labels: Annotated[
        str | None,
        typer.Option("--labels", "-l", help='Comma-separated labels, e.g. "dog,rain,engine".'),
    ] = None,
    labels_file: Annotated[
        Path | None, typer.Option("--labels-file", help="A file with one label per line.")
    ] = None,
    as_kind: Annotated[
        str | None, typer.Option("--as", help="The file's modality if its name does not tell.")
    ] = None,
    index: Annotated[
        Path | None, typer.Option("--index", "-i", help="Use this index's model and weights.")
    ] = None,
    model: Annotated[
        str | None,
        typer.Option("--model", "-m", help="Model (default: the index's, else imagebind-huge)."),
    ] = None,
    weights: WeightsOption = None,
    device: DeviceOption = None,
    dtype: DtypeOption = None,
    json_output: JsonOption = False,
) -> None:
    """Emergent zero-shot classification of a file against text labels (80 CLIP templates)."""
    from bindsearch.index import connect
    from bindsearch.ingest.discover import classify_path
    from bindsearch.preprocess import InputKind
    from bindsearch.query.parts import QueryPart

    names = _labels(labels, labels_file)
    kind = InputKind.parse(as_kind) if as_kind else classify_path(file.absolute())
    if kind is None:
        raise ConfigError(f"cannot tell the modality of {file} from its name; pass --as KIND")
    if index is None:
        from bindsearch.encode import create_encoder
        from bindsearch.query.classify import classify_vector

        encoder = create_encoder(model or "imagebind-huge", weights, device=device, dtype=dtype)
        scores = classify_vector(encoder, encoder.encode(kind, [file])[0], names)
    else:
        idx = connect(index, model, weights, device=device, dtype=dtype, create=False)
        scores = idx.classify(QueryPart(kind.value, file), names)
    if json_output:
        typer.echo(
            json.dumps(
                [
                    {"label": s.label, "probability": s.probability, "cosine": s.cosine}
                    for s in scores
                ],
                indent=2,
            )
        )
        return
    table = Table("label", "probability", "cosine", title=f"{file} ({kind.value})")
    for s in scores:
        table.add_row(s.label, f"{s.probability:.4f}", f"{s.cosine:.4f}")
    Console().print(table)


def _labels(labels: str | None, labels_file: Path | None) -> list[str]:
    names = [x.strip() for x in (labels or "").split(",") if x.strip()]
    if labels_file is not None:
        try:
            names += [
                x.strip() for x in labels_file.read_text(encoding="utf-8").splitlines() if x.strip()
            ]
        except OSError as exc:
            raise ConfigError(f"cannot read labels file {labels_file}: {exc}") from exc
    if not names:
        raise ConfigError('give labels with --labels "a,b,c" or --labels-file FILE')
    return names


def register(app: typer.Typer) -> None:
    """Attach the commands to ``app``."""
    app.command("query")(query_command)
    app.command("classify")(classify_command)
