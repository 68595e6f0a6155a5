"""The CLI: fast --help without torch, JSON output, errors at one boundary."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from typer.testing import CliRunner

from bindsearch.cli import app

runner = CliRunner()


def test_help_does_not_import_torch():
    code = (
        "import sys\n"
        "from bindsearch.cli.app import app\n"
        "from typer.main import get_command\n"
        "try:\n"
        "    get_command(app).main(['--help'], standalone_mode=False)\n"
        "finally:\n"
        "    assert 'torch' not in sys.modules, 'torch imported by --help'\n"
    )
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert result.returncode == 0, result.stderr
    assert "embed" in result.stdout and "models" in result.stdout


def test_models_json_lists_registry():
    result = runner.invoke(app, ["models", "--json"])
    assert result.exit_code == 0, result.output
    rows = {row["name"]: row for row in json.loads(result.stdout)}
    assert rows["imagebind-huge"]["embed_dim"] == 1024
    assert rows["imagebind-tiny"]["weights"] is None


def test_embed_text_json_and_npy(tmp_path):
    out = tmp_path / "v.npy"
    result = runner.invoke(
        app,
        ["embed", "text", "a dog", "a car", "--model", "imagebind-tiny", "--json", "-o", str(out)],
    )
    assert result.exit_code == 0, result.output
    doc = json.loads(result.stdout)
    assert doc["model"] == "imagebind-tiny" and doc["dim"] == 64 and doc["kind"] == "text"
    assert [row["item"] for row in doc["items"]] == ["a dog", "a car"]
    saved = np.load(out)
    assert saved.shape == (2, 64)
    np.testing.assert_allclose(saved[0], doc["items"][0]["vector"], atol=1e-6)


def test_library_errors_exit_2_with_message(tmp_path):
    missing = tmp_path / "nope.wav"
    result = subprocess.run(
        [sys.executable, "-m", "bindsearch", "embed", "audio", str(missing),
         "--model", "imagebind-tiny"],  # fmt: skip
        capture_output=True,
        text=True,
    )
    assert result.returncode == 2
    assert "nope.wav" in result.stderr and "error" in result.stderr
    unknown = subprocess.run(
        [sys.executable, "-m", "bindsearch", "embed", "text", "x", "--model", "imagebind-nope"],
        capture_output=True,
        text=True,
    )
    assert unknown.returncode == 2 and "imagebind-tiny" in unknown.stderr


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["nosuchcmd"], "No such command 'nosuchcmd'"),
        (["query", "--nosuchflag"], "No such option: --nosuchflag"),
        (["query", "--text", "x", "--top-k", "abc"], "Invalid value for '--top-k'"),
        (["embed"], "Missing argument"),
    ],
)
def test_usage_errors_print_one_usage_message_and_exit_2(argv, message):
    """The real console script (its error boundary lives in main()), whatever click Typer uses."""
    script = Path(sys.executable).with_name("bindsearch")
    result = subprocess.run([str(script), *argv], capture_output=True, text=True, timeout=120)
    assert result.returncode == 2, result.stderr
    assert message in result.stderr
    assert "Usage: bindsearch" in result.stderr
    assert "Traceback" not in result.stderr and result.stdout == ""
