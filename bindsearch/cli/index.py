"""``bindsearch index build|info``: the FAISS sidecar index of an index directory."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.console import Console
from rich.table import Table

from bindsearch.cli.app import err_console
from bindsearch.cli.ingest import IndexOption
from bindsearch.cli.options import JsonOption

index_app = typer.Typer(
    name="index",
    help="Build and inspect the FAISS index (a derived sidecar of the LanceDB table).",
    no_args_is_help=True,
)


def _open_store(index: Path | None) -> Any:
    from bindsearch.index import default_index_dir
    from bindsearch.store import Store

    return Store.open(index if index is not None else default_index_dir(), create=False)


@index_app.command("build")
def build_command(
    index: IndexOption = None,
    factory: Annotated[
        str | None,
        typer.Option("--factory", help="FAISS factory string (default: chosen from size/memory)."),
    ] = None,
    recall: Annotated[
        float,
        typer.Option("--recall", min=0.0, max=1.0, help="recall@10 target for nprobe/efSearch."),
    ] = 0.95,
    memory: Annotated[
        str | None,
        typer.Option("--memory", help="Memory budget for the index, e.g. 8G (default: RAM/2)."),
    ] = None,
    gpu: Annotated[
        bool | None,
        typer.Option("--gpu/--no-gpu", help="Use CUDA for training (default: if available)."),
    ] = None,
    json_output: JsonOption = False,
) -> None:
    """Build (or rebuild) the FAISS index over the items table and tune it to a recall target."""
    from bindsearch.indexes import build_index, parse_bytes

    store = _open_store(index)
    memory_bytes = parse_bytes(memory) if memory is not None else None
    err_console.print(f"building the FAISS index of {store.directory} ...", highlight=False)
    manifest = build_index(
        store, factory=factory, recall=recall, memory_bytes=memory_bytes, use_gpu=gpu
    )
    _render(manifest.to_dict(), json_output, title=f"built FAISS index of {store.directory}")


@index_app.command("info")
def info_command(index: IndexOption = None, json_output: JsonOption = False) -> None:
    """Show the FAISS index's manifest: what it covers, how it was built, its measured recall."""
    from bindsearch.indexes import index_info

    store = _open_store(index)
    manifest = index_info(store)
    if manifest is None:
        err_console.print(
            f"no FAISS index in {store.directory}; build one with `bindsearch index build`",
            highlight=False,
        )
        raise typer.Exit(1)
    data = manifest.to_dict()
    data["table_version_now"] = store.version()
    data["stale"] = data["table_version_now"] != manifest.table_version
    _render(data, json_output, title=f"FAISS index of {store.directory}")


def _render(data: dict[str, Any], json_output: bool, *, title: str) -> None:
    if json_output:
        typer.echo(json.dumps(data, indent=2, sort_keys=True))
        return
    table = Table("field", "value", title=title)
    for key in sorted(data):
        value = data[key]
        text = json.dumps(value) if isinstance(value, (dict, list)) else str(value)
        table.add_row(key, text)
    Console().print(table)


def register(app: typer.Typer) -> None:
    """Attach the ``index`` command group to ``app``."""
    app.add_typer(index_app, name="index")
