"""Check that every compiled piece bindsearch needs loads and works on this machine.

``bindsearch doctor`` prints what a bug report needs (versions of torch, torchvision,
torchaudio, PyAV and its FFmpeg, soundfile, Pillow, LanceDB, FAISS; the devices and native bf16)
and, for each piece that does not load, what to do. The test suite runs the same checks before
collecting any test module, so a broken install stops with one message instead of hundreds of
import errors.

Each check *uses* its piece (runs an operator of the compiled extension), because a wheel built
for another torch often imports and then fails at the first call. ``run_isolated`` runs the
checks in a child process, so a piece that crashes the interpreter is reported instead of taking
the doctor down with it.

This module imports nothing heavy at import time; ``python -m bindsearch.doctor`` is the child.
"""

from __future__ import annotations

import importlib.metadata
import json
import os
import platform
import subprocess
import sys
import tempfile
from collections.abc import Callable, Iterable
from dataclasses import asdict, dataclass, field
from typing import Any

from bindsearch.hardware import cpu_has_native_bf16, cpu_model_name

#: Installs the set of releases the last green CI run resolved.
CONSTRAINED_INSTALL = 'pip install -e ".[dev]" -c constraints.txt'


@dataclass
class Check:
    """The result of loading and exercising one compiled piece."""

    name: str
    ok: bool
    version: str | None = None
    detail: str = ""
    fix: str | None = None
    info: dict[str, Any] = field(default_factory=dict)


def _dist_version(dist: str) -> str | None:
    try:
        return importlib.metadata.version(dist)
    except importlib.metadata.PackageNotFoundError:
        return None


def _torch_requirement(dist: str) -> str | None:
    """The torch requirement a wheel declares (``None`` when it declares none)."""
    try:
        requires = importlib.metadata.requires(dist) or []
    except importlib.metadata.PackageNotFoundError:
        return None
    for req in requires:
        name = req.split(";")[0].strip()
        if name.startswith("torch") and not name.startswith(("torchvision", "torchaudio")):
            return name.replace(" ", "")
    return None


def _short(exc: BaseException) -> str:
    text = f"{type(exc).__name__}: {exc}"
    cause = exc.__cause__ or exc.__context__
    if cause is not None and str(cause) and str(cause) not in text:
        text += f" ({type(cause).__name__}: {cause})"
    return " ".join(text.split())[:600]


# --- one function per piece: returns (detail, info) or raises --------------------------------


def _check_torch() -> tuple[str, dict[str, Any]]:
    import torch

    x = torch.arange(6, dtype=torch.float32).reshape(2, 3)
    if float((x @ x.T).sum()) != 83.0:
        raise RuntimeError("a 2x3 matmul gave a wrong result")
    info: dict[str, Any] = {
        "cuda_build": torch.version.cuda,
        "threads": torch.get_num_threads(),
    }
    return f"CUDA build {torch.version.cuda or 'none'}", info


def _check_torchvision() -> tuple[str, dict[str, Any]]:
    import torch
    import torchvision
    from torchvision.ops import nms

    keep = nms(torch.tensor([[0.0, 0, 1, 1], [0, 0, 1, 1]]), torch.tensor([0.9, 0.8]), 0.5)
    if keep.tolist() != [0]:
        raise RuntimeError("torchvision.ops.nms gave a wrong result")
    return f"compiled ops load; wheel requires {_torch_requirement('torchvision')}", {
        "version": torchvision.__version__
    }


def _check_torchaudio() -> tuple[str, dict[str, Any]]:
    import torch
    import torchaudio
    from torchaudio.compliance import kaldi

    feats = kaldi.fbank(torch.zeros(1, 1600) + 0.01, sample_frequency=16000, num_mel_bins=8)
    resampled = torchaudio.transforms.Resample(44100, 16000)(torch.zeros(1, 441))
    if tuple(feats.shape) != (8, 8) or tuple(resampled.shape) != (1, 160):
        raise RuntimeError("fbank/Resample gave unexpected shapes")
    return "Resample and kaldi.fbank run", {"version": torchaudio.__version__}


def _check_av() -> tuple[str, dict[str, Any]]:
    import av

    versions = {k: ".".join(map(str, v)) for k, v in av.library_versions.items()}
    ffmpeg = getattr(av, "ffmpeg_version_info", None)
    codecs = [name for name in ("h264", "aac", "mp3", "flac", "opus") if name in av.codecs_available]
    return f"FFmpeg {ffmpeg or versions.get('libavcodec')}; decoders: {', '.join(codecs)}", {
        "ffmpeg": ffmpeg,
        "libraries": versions,
    }


def _check_soundfile() -> tuple[str, dict[str, Any]]:
    import io

    import numpy as np
    import soundfile

    buf = io.BytesIO()
    soundfile.write(buf, np.zeros(160, dtype=np.float32), 16000, format="FLAC")
    buf.seek(0)
    data, rate = soundfile.read(buf)
    if rate != 16000 or len(data) != 160:
        raise RuntimeError("a FLAC round trip gave a wrong result")
    return f"libsndfile {soundfile.__libsndfile_version__}", {}


def _check_pillow() -> tuple[str, dict[str, Any]]:
    import io

    from PIL import Image, features

    buf = io.BytesIO()
    Image.new("RGB", (8, 8), (200, 10, 10)).save(buf, format="JPEG")
    buf.seek(0)
    with Image.open(buf) as img:
        img.load()
    formats = {name: bool(features.check(name)) for name in ("jpg", "webp", "zlib")}
    turbo = bool(features.check_feature("libjpeg_turbo"))
    return f"JPEG decode works; libjpeg-turbo {'yes' if turbo else 'no'}", {"features": formats}


def _check_lancedb() -> tuple[str, dict[str, Any]]:
    import lancedb
    import pyarrow as pa

    with tempfile.TemporaryDirectory(prefix="bindsearch-doctor-") as tmp:
        db = lancedb.connect(tmp)
        table = db.create_table("t", pa.table({"id": ["a", "b"], "x": [1, 2]}))
        if table.count_rows() != 2:
            raise RuntimeError("a two-row table did not read back two rows")
    return f"pyarrow {pa.__version__}; a table round trip works", {"pyarrow": pa.__version__}


def _check_faiss() -> tuple[str, dict[str, Any]]:
    import faiss
    import numpy as np

    index = faiss.IndexFlatIP(4)
    index.add(np.eye(4, dtype=np.float32))
    _, labels = index.search(np.eye(4, dtype=np.float32)[:1], 1)
    if int(labels[0, 0]) != 0:
        raise RuntimeError("a flat search gave a wrong result")
    gpus = int(faiss.get_num_gpus()) if hasattr(faiss, "get_num_gpus") else 0
    return f"flat search works; GPUs visible to FAISS: {gpus}", {"gpus": gpus}


def _fix_torchaudio() -> str:
    torch_v = _dist_version("torch") or "?"
    audio_v = _dist_version("torchaudio") or "?"
    if torch_v.startswith("2.11.") and audio_v.startswith("2.11.1"):
        return (
            f"torchaudio {audio_v} needs torch >= 2.12 (it declares torch>=2.11, wrongly); "
            f"with torch {torch_v} run `pip install torchaudio==2.11.0`, or move to the newest set "
            f"with `pip install -U torch torchvision torchaudio`, or `{CONSTRAINED_INSTALL}`"
        )
    return (
        f"torchaudio {audio_v} was built for another torch than {torch_v}: install a matching "
        f"set with `pip install -U torch torchvision torchaudio`, or `{CONSTRAINED_INSTALL}`"
    )


def _fix_torchvision() -> str:
    need = _torch_requirement("torchvision") or "its own torch release"
    return (
        f"torchvision {_dist_version('torchvision')} requires {need} but torch "
        f"{_dist_version('torch')} is installed: `pip install -U torch torchvision`, "
        f"or `{CONSTRAINED_INSTALL}`"
    )


def _reinstall(dist: str) -> Callable[[], str]:
    return lambda: f"reinstall it: `pip install --force-reinstall --no-deps {dist}`"


def _faiss_dist() -> str:
    return "faiss-gpu" if _dist_version("faiss-gpu") else "faiss-cpu"


#: name -> (distribution, check, fix). Order matters: torch first, its extensions after it.
CHECKS: dict[str, tuple[Callable[[], str], Callable[[], tuple[str, dict[str, Any]]], Callable[[], str]]] = {
    "torch": (lambda: "torch", _check_torch, _reinstall("torch")),
    "torchvision": (lambda: "torchvision", _check_torchvision, _fix_torchvision),
    "torchaudio": (lambda: "torchaudio", _check_torchaudio, _fix_torchaudio),
    "av": (lambda: "av", _check_av, _reinstall("av")),
    "soundfile": (lambda: "soundfile", _check_soundfile, _reinstall("soundfile")),
    "pillow": (lambda: "pillow", _check_pillow, _reinstall("pillow")),
    "lancedb": (lambda: "lancedb", _check_lancedb, _reinstall("lancedb pylance pyarrow")),
    "faiss": (_faiss_dist, _check_faiss, lambda: _reinstall(_faiss_dist())()),
}


def run_check(name: str) -> Check:
    """Load and exercise one piece (a key of :data:`CHECKS`) in this process."""
    dist_of, check, fix = CHECKS[name]
    dist = dist_of()
    version = _dist_version(dist)
    if version is None:
        return Check(name, False, None, f"{dist} is not installed", f"`pip install {dist}`")
    try:
        detail, info = check()
    except Exception as exc:  # the point is to report any failure of the piece
        return Check(name, False, version, _short(exc), fix())
    return Check(name, True, version, detail, None, info)


def run_checks(names: Iterable[str] | None = None) -> list[Check]:
    """Run the named checks (default: all) in this process; a crash would end the process."""
    return [run_check(name) for name in (names or CHECKS)]


def environment() -> dict[str, Any]:
    """Python, platform, CPU, native bf16 and the accelerators torch sees (if torch loads)."""
    env: dict[str, Any] = {
        "bindsearch": _dist_version("bindsearch"),
        "python": sys.version.split()[0],
        "platform": platform.platform(),
        "cpu": cpu_model_name() or platform.processor() or platform.machine(),
        "cores": os.cpu_count(),
        "cpu_native_bf16": cpu_has_native_bf16(),
        "cuda": [],
        "mps": False,
    }
    try:
        import torch

        if torch.cuda.is_available():
            for i in range(torch.cuda.device_count()):
                props = torch.cuda.get_device_properties(i)
                env["cuda"].append(
                    {
                        "index": i,
                        "name": props.name,
                        "memory_gib": round(props.total_memory / 2**30, 1),
                        "capability": f"{props.major}.{props.minor}",
                        "bf16": bool(torch.cuda.is_bf16_supported()),
                    }
                )
        mps = getattr(torch.backends, "mps", None)
        env["mps"] = bool(mps is not None and mps.is_available())
    except Exception as exc:  # torch's own check reports the failure
        env["torch_error"] = _short(exc)
    if env["cuda"]:
        env["default_device"], env["default_dtype"] = "cuda", "bf16"
    elif env["mps"]:
        env["default_device"], env["default_dtype"] = "mps", "fp32"
    else:
        env["default_device"], env["default_dtype"] = "cpu", "fp32"
    return env


def run_isolated(timeout: float = 300.0) -> tuple[dict[str, Any], list[Check]]:
    """Run every check in a child interpreter; a piece that kills it is reported as failed."""
    proc = subprocess.run(
        [sys.executable, "-m", "bindsearch.doctor"],
        capture_output=True,
        text=True,
        timeout=timeout,
    )
    env: dict[str, Any] = {}
    checks: list[Check] = []
    started: str | None = None
    for line in proc.stdout.splitlines():
        try:
            event = json.loads(line)
        except ValueError:
            continue
        if event.get("event") == "start":
            started = event["name"]
        elif event.get("event") == "check":
            checks.append(Check(**event["check"]))
            started = None
        elif event.get("event") == "environment":
            env = event["environment"]
    if started is not None:  # the child died inside this check
        dist_of, _, fix = CHECKS[started]
        checks.append(
            Check(
                started,
                False,
                _dist_version(dist_of()),
                f"loading it killed the interpreter (exit status {proc.returncode})",
                fix(),
            )
        )
        done = {c.name for c in checks}
        checks += [Check(n, False, None, "not checked: an earlier piece crashed") for n in CHECKS if n not in done]
    return env, checks


def failure_message(failed: list[Check]) -> str:
    """One message for a list of failed checks: what does not load, and what to do."""
    lines = ["bindsearch cannot run on this install: a compiled piece does not load."]
    for check in failed:
        lines.append(f"- {check.name} {check.version or ''}: {check.detail}".rstrip())
        if check.fix:
            lines.append(f"  fix: {check.fix}")
    lines.append("`bindsearch doctor` shows the whole install.")
    return "\n".join(lines)


def _child_main() -> int:
    for name in CHECKS:
        print(json.dumps({"event": "start", "name": name}), flush=True)
        print(json.dumps({"event": "check", "check": asdict(run_check(name))}), flush=True)
    print(json.dumps({"event": "environment", "environment": environment()}), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(_child_main())
