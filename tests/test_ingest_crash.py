"""kill -9 during ingest, then rerun: exactly the rows of a clean run; readable throughout."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import lancedb
import numpy as np
import pytest
from media import tone, write_image, write_soundfile

import bindsearch

_RUNNER = """
import sys
import bindsearch
index = bindsearch.connect(sys.argv[1], model="imagebind-tiny", device="cpu")
index.ingest([sys.argv[2]], workers=0, commit_files=2)
"""


def _build(root: Path) -> Path:
    (root / "img").mkdir(parents=True)
    (root / "snd").mkdir()
    for i in range(36):
        write_image(root / "img" / f"{i:03d}.png", 40 + i, 32, seed=i)
    for i in range(6):
        write_soundfile(root / "snd" / f"{i}.wav", tone(1.0 + i / 4, 16000, seed=i), 16000)
    (root / "img" / "broken.png").write_bytes(b"\x89PNG broken")
    write_image(root / "img" / "dup.png", 40, 32, seed=0)  # same content as 000.png
    return root


def _rows(index_dir: Path) -> dict[str, tuple[str, np.ndarray]]:
    rows = lancedb.connect(str(index_dir)).open_table("items").to_arrow().to_pylist()
    ids = [r["id"] for r in rows]
    assert len(ids) == len(set(ids)), "duplicate ids"
    return {r["id"]: (r["sha256"], np.asarray(r["vector"])) for r in rows}


def _observed_ids(index_dir: Path) -> int:
    """Rows visible now (0 before the table exists); asserts the snapshot has no duplicates."""
    try:
        table = lancedb.connect(str(index_dir)).open_table("items")
    except (FileNotFoundError, ValueError, RuntimeError):
        return 0
    ids = table.to_arrow().column("id").to_pylist()
    assert len(ids) == len(set(ids)), "a reader saw duplicate ids"
    return len(ids)


def _run_and_kill(index_dir: Path, media: Path, kill_after_rows: int) -> bool:
    """Start an ingest; SIGKILL it once ``kill_after_rows`` rows are visible. True if killed."""
    proc = subprocess.Popen([sys.executable, "-c", _RUNNER, str(index_dir), str(media)])
    deadline = time.monotonic() + 120
    try:
        while proc.poll() is None and time.monotonic() < deadline:
            if _observed_ids(index_dir) >= kill_after_rows:
                os.kill(proc.pid, signal.SIGKILL)
                proc.wait()
                return True
            time.sleep(0.05)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    return False


@pytest.mark.slow
def test_sigkilled_ingest_resumes_to_the_clean_result(tmp_path):
    media = _build(tmp_path / "media")
    clean_dir = tmp_path / "clean"
    bindsearch.connect(clean_dir, model="imagebind-tiny", device="cpu").ingest([media], workers=0)
    clean = _rows(clean_dir)
    crashed_dir = tmp_path / "crashed"
    kills = sum(_run_and_kill(crashed_dir, media, after) for after in (1, 12, 30))
    assert kills >= 2, "the ingest finished before it could be killed"
    report = bindsearch.connect(crashed_dir, device="cpu").ingest([media], workers=0)
    assert report.files_prepared < 44  # committed work was not redone
    resumed = _rows(crashed_dir)
    assert set(resumed) == set(clean)
    for key, (sha, vector) in clean.items():
        assert resumed[key][0] == sha
        np.testing.assert_allclose(resumed[key][1], vector, atol=1e-5)
    errors = lancedb.connect(str(crashed_dir)).open_table("errors").to_arrow().to_pylist()
    assert [Path(e["path"]).name for e in errors] == ["broken.png"]
