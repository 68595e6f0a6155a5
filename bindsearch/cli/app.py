"""Typer app, logging setup and the single error boundary.

Heavy imports (torch, the model) happen inside commands, so ``bindsearch --help`` stays fast.
"""

from __future__ import annotations

import logging
import sys
from typing import Annotated

import typer
from rich.console import Console

from bindsearch.errors import BindsearchError

#: Diagnostics and progress go to stderr; stdout carries only results.
err_console = Console(stderr=True)

app = typer.Typer(
    name="bindsearch",
    help="Cross-modal search over images, video, audio, text, depth, thermal and IMU (ImageBind).",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)


@app.callback()
def _configure(
    verbose: Annotated[
        int,
        typer.Option("--verbose", "-v", count=True, help="More log output (-v info, -vv debug)."),
    ] = 0,
) -> None:
    from rich.logging import RichHandler

    level = logging.WARNING - 10 * min(verbose, 2)
    handler = RichHandler(console=err_console, show_time=False, show_path=False)
    logging.basicConfig(level=level, handlers=[handler], format="%(message)s", force=True)


def _register_commands() -> None:
    from bindsearch.cli import bench, embed, index, ingest, models, query, serve

    ingest.register(app)
    bench.register(app)
    query.register(app)
    embed.register(app)
    models.register(app)
    index.register(app)
    serve.register(app)


def main() -> None:
    """Console-script entry point: run the app and turn library errors into exit code 2."""
    try:
        code = app(standalone_mode=False)
    except BindsearchError as exc:
        err_console.print(f"[bold red]error:[/] {exc}", highlight=False, soft_wrap=True)
        sys.exit(2)
    except KeyboardInterrupt:
        err_console.print("[yellow]interrupted[/]")
        sys.exit(130)
    except typer.Exit as exc:
        sys.exit(exc.exit_code)
    except (typer.Abort, EOFError):
        sys.exit(1)
    except Exception as exc:  # click usage errors carry their own exit codes
        import click

        if isinstance(exc, click.ClickException):
            exc.show()
            sys.exit(exc.exit_code)
        raise
    sys.exit(code if isinstance(code, int) else 0)


_register_commands()
