"""benchmarks/encode.py runs end to end at the tiny size and reports what it measured."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from bindsearch.models import gemm

SCRIPT = Path(__file__).resolve().parents[1] / "benchmarks" / "encode.py"


def _run(*extra: str) -> dict:
    result = subprocess.run(
        [sys.executable, str(SCRIPT), "--size", "tiny", "--rounds", "1"]
        + ["--modalities", "vision,text", "--json", *extra],
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    return json.loads(result.stdout)


@pytest.mark.parametrize("choice", ["torch", "onednn", "auto"])
def test_encode_benchmark_reports_parity_rates_and_gemm_library(choice):
    report = _run("--cpu-gemm", choice)
    expected = gemm.resolve_cpu_gemm(choice).value
    assert report["cpu_gemm"] == expected
    assert [r["modality"] for r in report["results"]] == ["vision", "text"]
    for r in report["results"]:
        assert r["max_rel_diff"] <= 1e-5
        assert r["reference_items_per_s"] > 0 and r["ours_items_per_s"] > 0
        assert r["speedup"] == pytest.approx(r["ours_items_per_s"] / r["reference_items_per_s"])
        # Ours with torch's GEMM is timed alongside only when oneDNN is the library in use.
        assert (r["ours_torch_gemm_items_per_s"] is not None) == (expected == "onednn")
