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
    from bindsearch.cli import bench, doctor, embed, index, ingest, models, query, serve

    ingest.register(app)
    bench.register(app)
    query.register(app)
    embed.register(app)
    models.register(app)
    index.register(app)
    serve.register(app)
    doctor.register(app)


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
    except Exception as exc:  # usage errors carry their own exit codes (2)
        if isinstance(exc, _usage_error_types()):
            show = getattr(exc, "show", None)
            if callable(show):
                show()
            else:
                err_console.print(f"error: {exc}", highlight=False, soft_wrap=True)
            sys.exit(int(getattr(exc, "exit_code", 2)))
        raise
    sys.exit(code if isinstance(code, int) else 0)


def _usage_error_types() -> tuple[type[BaseException], ...]:
    """The exception classes a usage error (unknown command or option, bad value) can have.

    Typer up to 0.28 raises ``click.ClickException`` subclasses; Typer 0.29 ships its own copy
    of click whose exceptions derive from the public ``typer.TyperException`` instead, and click
    itself may not be installed at all. Both are accepted.
    """
    found: list[type[BaseException]] = []
    typer_exc = getattr(typer, "TyperException", None)
    if isinstance(typer_exc, type):
        found.append(typer_exc)
    try:
        import click
    except ImportError:
        pass
    else:
        found.append(click.ClickException)
    return tuple(found)


_register_commands()
