"""``bindsearch embed``: vectors for files or texts, as JSON or a .npy file."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated

import typer

from bindsearch.cli.options import DeviceOption, DtypeOption, JsonOption, ModelOption, WeightsOption

KIND_HELP = "What the items are: image, video, text, audio, depth, thermal or imu."


def embed_command(
    kind: Annotated[str, typer.Argument(help=KIND_HELP, metavar="KIND")],
    items: Annotated[
        list[str], typer.Argument(help="Files to embed; for `text`, the texts themselves.")
    ],
    model: ModelOption = "imagebind-huge",
    weights: WeightsOption = None,
    device: DeviceOption = None,
    dtype: DtypeOption = None,
    batch_size: Annotated[
        int | None, typer.Option("--batch-size", min=1, help="Items per forward pass.")
    ] = None,
    out: Annotated[
        Path | None,
        typer.Option("--out", "-o", help="Write the [N, D] float32 vectors to a .npy file."),
    ] = None,
    text_files: Annotated[
        bool, typer.Option("--files", help="With `text`: the items are text files to read.")
    ] = False,
    json_output: JsonOption = False,
) -> None:
    """Embed items of one kind into unit vectors of the model's shared space."""
    import numpy as np

    from bindsearch.encode import create_encoder
    from bindsearch.preprocess import InputKind

    parsed = InputKind.parse(kind)
    encoder = create_encoder(model, weights, device=device, dtype=dtype, batch_size=batch_size)
    payload: list[str | Path] = list(items)
    if parsed is InputKind.TEXT and text_files:
        payload = [Path(p) for p in items]
    vectors = encoder.encode(parsed, payload)
    if out is not None:
        np.save(out, vectors)
    if json_output:
        rows = [
            {"item": str(item), "vector": [round(float(v), 7) for v in row]}
            for item, row in zip(items, vectors, strict=True)
        ]
        doc = {"model": encoder.model_name, "weights_id": encoder.weights_id, "kind": parsed.value,
               "dim": encoder.embed_dim, "items": rows}  # fmt: skip
        typer.echo(json.dumps(doc))
    elif out is None:
        for item, row in zip(items, vectors, strict=True):
            head = " ".join(f"{v:+.4f}" for v in row[:6])
            typer.echo(f"{item}\t[{head} ...] ({len(row)}-d)")
    else:
        typer.echo(f"wrote {vectors.shape[0]} x {vectors.shape[1]} vectors to {out}", err=True)


def register(app: typer.Typer) -> None:
    """Attach the command to ``app``."""
    app.command("embed")(embed_command)
