"""bindsearch doctor and the test suite's start-up check of the compiled pieces."""

from __future__ import annotations

import importlib.metadata
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from bindsearch.doctor import CHECKS

ROOT = Path(__file__).resolve().parents[1]
SCRIPT = Path(sys.executable).with_name("bindsearch")


def _run(argv: list[str], shadow: Path | None = None, **kw) -> subprocess.CompletedProcess:
    env = dict(os.environ)
    if shadow is not None:
        env["PYTHONPATH"] = os.pathsep.join([str(shadow), env.get("PYTHONPATH", "")])
    return subprocess.run(argv, capture_output=True, text=True, env=env, timeout=300, **kw)


def _shadow(tmp_path: Path, module: str, body: str) -> Path:
    """A folder that, first on PYTHONPATH, replaces ``module`` with one whose import fails."""
    pkg = tmp_path / "shadow" / module
    pkg.mkdir(parents=True)
    (pkg / "__init__.py").write_text(body)
    return tmp_path / "shadow"


BROKEN_TORCHAUDIO = (
    "raise OSError('Could not load this library: .../torchaudio/lib/libtorchaudio.so "
    "(undefined symbol: torch_exception_get_what_without_backtrace)')\n"
)


def test_doctor_json_lists_every_piece_with_its_version():
    result = _run([str(SCRIPT), "doctor", "--json"])
    assert result.returncode == 0, result.stdout + result.stderr
    doc = json.loads(result.stdout)
    assert doc["ok"] is True
    checks = {c["name"]: c for c in doc["checks"]}
    assert list(checks) == list(CHECKS)
    assert all(c["ok"] for c in checks.values())
    assert checks["torch"]["version"] == importlib.metadata.version("torch")
    assert checks["torchaudio"]["version"] == importlib.metadata.version("torchaudio")
    assert checks["av"]["info"]["ffmpeg"] or checks["av"]["info"]["libraries"]
    env = doc["environment"]
    assert env["python"] == sys.version.split()[0]
    assert isinstance(env["cpu_native_bf16"], bool) and env["cores"] >= 1
    assert env["default_device"] in ("cpu", "cuda", "mps")


def test_doctor_names_a_piece_that_does_not_load_and_the_fix(tmp_path):
    shadow = _shadow(tmp_path, "torchaudio", BROKEN_TORCHAUDIO)
    result = _run([str(SCRIPT), "doctor", "--json"], shadow)
    assert result.returncode == 1, result.stderr
    checks = {c["name"]: c for c in json.loads(result.stdout)["checks"]}
    broken = checks["torchaudio"]
    assert broken["ok"] is False
    assert "undefined symbol" in broken["detail"]
    assert "pip install" in broken["fix"] and "constraints.txt" in broken["fix"]
    assert all(c["ok"] for name, c in checks.items() if name != "torchaudio")
    human = _run([str(SCRIPT), "doctor"], shadow)
    assert human.returncode == 1
    assert "FAILED" in human.stdout and "fix:" in human.stderr
    assert "Traceback" not in human.stderr


def test_doctor_survives_a_piece_that_kills_the_interpreter(tmp_path):
    shadow = _shadow(tmp_path, "av", "import os\nos.abort()\n")
    result = _run([str(SCRIPT), "doctor", "--json"], shadow)
    assert result.returncode == 1
    checks = {c["name"]: c for c in json.loads(result.stdout)["checks"]}
    assert checks["av"]["ok"] is False and "killed the interpreter" in checks["av"]["detail"]
    assert checks["torchaudio"]["ok"] is True  # checked before av
    assert checks["faiss"]["ok"] is False and "not checked" in checks["faiss"]["detail"]


@pytest.mark.slow
def test_test_suite_stops_before_collection_when_a_piece_does_not_load(tmp_path):
    shadow = _shadow(tmp_path, "torchaudio", BROKEN_TORCHAUDIO)
    result = _run(
        [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "tests/test_cli.py"],
        shadow,
        cwd=ROOT,
    )
    out = result.stdout + result.stderr
    assert result.returncode == 4, out
    assert "a compiled piece does not load" in out and "torchaudio" in out
    assert "undefined symbol" in out and "fix:" in out
    assert "collected" not in out and "ERROR collecting" not in out
