"""``bindsearch doctor``: versions, devices, and whether every compiled piece loads."""

from __future__ import annotations

import json
from dataclasses import asdict

import typer
from rich.console import Console
from rich.table import Table

from bindsearch.cli.options import JsonOption


def doctor_command(json_output: JsonOption = False) -> None:
    """Check the install: versions, devices, native bf16, and that each compiled piece loads.

    Paste its output into bug reports. Exit status 0 when everything loads, 1 otherwise (each
    failure says what to do).
    """
    from bindsearch.doctor import failure_message, run_isolated

    env, checks = run_isolated()
    failed = [c for c in checks if not c.ok]
    if json_output:
        doc = {"ok": not failed, "environment": env, "checks": [asdict(c) for c in checks]}
        typer.echo(json.dumps(doc, indent=2))
    else:
        out = Console()
        table = Table("piece", "version", "status", "detail", title="bindsearch doctor")
        for c in checks:
            status = "[green]ok[/]" if c.ok else "[bold red]FAILED[/]"
            table.add_row(c.name, c.version or "-", status, c.detail)
        out.print(table)
        cuda = env.get("cuda") or []
        gpus = ", ".join(f"{g['name']} ({g['memory_gib']} GiB, bf16 {g['bf16']})" for g in cuda)
        out.print(f"bindsearch {env.get('bindsearch')}, Python {env.get('python')}, {env.get('platform')}")
        out.print(
            f"CPU: {env.get('cpu')}, {env.get('cores')} cores, native bf16: "
            f"{'yes' if env.get('cpu_native_bf16') else 'no'}"
        )
        out.print(f"GPU: {gpus or 'none'}; MPS: {'yes' if env.get('mps') else 'no'}")
        out.print(f"default device {env.get('default_device')}, dtype {env.get('default_dtype')}")
        if failed:
            Console(stderr=True).print(failure_message(failed), markup=False, highlight=False, soft_wrap=True)
    if failed:
        raise typer.Exit(1)


def register(app: typer.Typer) -> None:
    app.command("doctor")(doctor_command)
