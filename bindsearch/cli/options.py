"""Option declarations shared by several commands (one definition each)."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

ModelOption = Annotated[
    str,
    typer.Option("--model", "-m", help="Registered model name (see `bindsearch models`)."),
]
WeightsOption = Annotated[
    Path | None,
    typer.Option(
        "--weights",
        help="Local checkpoint (.pth, .safetensors or converted dir); also $BINDSEARCH_WEIGHTS.",
    ),
]
DeviceOption = Annotated[
    str | None, typer.Option("--device", help="cuda, cuda:1, mps or cpu (default: best available).")
]
DtypeOption = Annotated[
    str | None,
    typer.Option("--dtype", help="fp32 or bf16 (default: bf16 autocast on CUDA, fp32 elsewhere)."),
]
JsonOption = Annotated[bool, typer.Option("--json", help="Print machine-readable JSON on stdout.")]
