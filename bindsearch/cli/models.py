"""``bindsearch models`` and ``bindsearch weights``: what can embed, and fetching its weights."""

from __future__ import annotations

import json
from typing import Annotated

import typer
from rich.console import Console
from rich.table import Table

from bindsearch.cli.options import JsonOption, ModelOption, WeightsOption


def list_models_command(json_output: JsonOption = False) -> None:
    """List the registered models and their weights."""
    from bindsearch.models import get_model_entry, list_models

    rows: list[dict[str, str | int | None]] = []
    for name in list_models():
        entry = get_model_entry(name)
        rows.append(
            {
                "name": name,
                "embed_dim": entry.config.out_embed_dim,
                "weights": entry.weights,
                "description": entry.description,
            }
        )
    if json_output:
        typer.echo(json.dumps(rows, indent=2))
        return
    table = Table("model", "dim", "weights", "description")
    for row in rows:
        table.add_row(
            str(row["name"]),
            str(row["embed_dim"]),
            str(row["weights"] or "-"),
            str(row["description"]),
        )
    Console().print(table)


def fetch_weights_command(
    model: ModelOption = "imagebind-huge",
    weights: WeightsOption = None,
    no_download: Annotated[
        bool, typer.Option("--no-download", help="Fail instead of downloading.")
    ] = False,
    json_output: JsonOption = False,
) -> None:
    """Download (resuming), verify and convert a model's weights into per-modality files."""
    from bindsearch.encode import create_encoder

    encoder = create_encoder(model, weights, device="cpu", download=not no_download)
    info = {
        "model": encoder.model_name,
        "weights_id": encoder.weights_id,
        "converted_dir": str(encoder.source.directory) if encoder.source.directory else None,
    }
    if json_output:
        typer.echo(json.dumps(info, indent=2))
    else:
        for key, value in info.items():
            typer.echo(f"{key}: {value}")


def register(app: typer.Typer) -> None:
    """Attach these commands to ``app``."""
    app.command("models")(list_models_command)
    app.command("fetch-weights")(fetch_weights_command)
