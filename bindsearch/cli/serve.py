"""``bindsearch serve``: the HTTP API and search page over one index."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from bindsearch.cli.ingest import IndexOption
from bindsearch.cli.options import DeviceOption, DtypeOption, WeightsOption
from bindsearch.server.config import (
    API_KEY_ENV,
    DEFAULT_HOST,
    DEFAULT_PORT,
    BatchConfig,
    ServerConfig,
    UploadLimits,
)

_BATCH = BatchConfig()


def serve_command(
    index: IndexOption = None,
    host: Annotated[
        str, typer.Option("--host", help="Interface to listen on; beyond loopback needs --api-key.")
    ] = DEFAULT_HOST,
    port: Annotated[int, typer.Option("--port", "-p", min=1, max=65535)] = DEFAULT_PORT,
    api_key: Annotated[
        str | None,
        typer.Option(
            "--api-key",
            envvar=API_KEY_ENV,
            show_envvar=True,
            help="Require this key (X-API-Key header) on every route but /health.",
        ),
    ] = None,  # fmt: skip
    insecure: Annotated[
        bool, typer.Option("--insecure", help="Allow a non-loopback --host without an API key.")
    ] = False,
    ingest_root: Annotated[
        list[Path] | None,
        typer.Option("--ingest-root", help="Allow POST /ingest under this folder. Repeatable."),
    ] = None,
    cors_origin: Annotated[
        list[str] | None,
        typer.Option("--cors-origin", help="Allow browser calls from this origin. Repeatable."),
    ] = None,
    model: Annotated[
        str | None, typer.Option("--model", "-m", help="Model (default: the index's).")
    ] = None,
    weights: WeightsOption = None,
    device: DeviceOption = None,
    dtype: DtypeOption = None,
    max_upload_mb: Annotated[
        float, typer.Option("--max-upload-mb", min=0.001, help="Request body size limit.")
    ] = UploadLimits().max_request_bytes / 2**20,
    batching: Annotated[
        bool, typer.Option("--batching/--no-batching", help="Micro-batch concurrent queries.")
    ] = _BATCH.enabled,
    batch_max: Annotated[
        int, typer.Option("--batch-max", min=1, help="Most inputs in one forward pass.")
    ] = _BATCH.max_items,
    batch_wait_ms: Annotated[
        float, typer.Option("--batch-wait-ms", min=0, help="Longest wait for a batch to fill.")
    ] = _BATCH.max_wait_ms,
) -> None:
    """Serve the index over HTTP: a JSON API (OpenAPI at /openapi.json) and a search page at /.

    Example: bindsearch serve --index ./bindsearch-index --port 8000
    """
    from bindsearch.index import default_index_dir
    from bindsearch.server.app import serve

    config = ServerConfig(
        index_dir=index or default_index_dir(),
        model=model, weights=weights, device=device, dtype=dtype, host=host, port=port,
        api_key=api_key or None, insecure=insecure,
        ingest_roots=tuple(p.expanduser().absolute() for p in ingest_root or []),
        cors_origins=tuple(cors_origin or []),
        batch=BatchConfig(batching, batch_max, batch_wait_ms),
        uploads=UploadLimits(max_request_bytes=int(max_upload_mb * 2**20)),
    )  # fmt: skip
    serve(config)


def register(app: typer.Typer) -> None:
    """Attach the command to ``app``."""
    app.command("serve")(serve_command)
