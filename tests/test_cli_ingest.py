"""``bindsearch ingest`` through the real command line."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
from collection import BROKEN, VALID, build_collection


@pytest.fixture(scope="module")
def media(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return build_collection(tmp_path_factory.mktemp("media"))


def _cli(*args: str, env_index: Path | None = None) -> subprocess.CompletedProcess:
    import os

    env = dict(os.environ)
    if env_index is not None:
        env["BINDSEARCH_INDEX"] = str(env_index)
    return subprocess.run(
        [sys.executable, "-m", "bindsearch", *args], capture_output=True, text=True, env=env
    )


def test_ingest_json_summary_strict_and_rerun(media, tmp_path):
    index = tmp_path / "idx"
    first = _cli("ingest", str(media), "--model", "imagebind-tiny", "--workers", "1", "--json",
                 env_index=index)  # fmt: skip
    assert first.returncode == 0, first.stderr
    doc = json.loads(first.stdout)
    assert doc["files_ingested"] == len(VALID) and doc["files_failed"] == len(BROKEN)
    assert doc["ok"] is False and len(doc["failures"]) == len(BROKEN)
    assert doc["model"] == "imagebind-tiny"
    # The index remembers its model; --strict fails on recorded failures of this run only.
    again = _cli("ingest", str(media), "--index", str(index), "--json", "--strict")
    assert again.returncode == 0, again.stderr
    assert json.loads(again.stdout)["files_unchanged"] == len(VALID)
    fresh = tmp_path / "idx2"
    strict = _cli("ingest", str(media / "photos"), "--index", str(fresh), "--model",
                  "imagebind-tiny", "--strict", "--workers", "0")  # fmt: skip
    assert strict.returncode == 1
    assert "corrupt.jpg" in strict.stderr


def test_dry_run_lists_by_modality(media, tmp_path):
    result = _cli("ingest", str(media), "--index", str(tmp_path / "idx"), "--model",
                  "imagebind-tiny", "--dry-run", "--json")  # fmt: skip
    assert result.returncode == 0, result.stderr
    doc = json.loads(result.stdout)
    assert doc["dry_run"] is True
    assert doc["to_ingest_by_kind"]["image"] == 3  # two valid photos + the corrupt one
    assert not (tmp_path / "idx" / "items.lance").exists()


def test_missing_path_and_wrong_model_exit_nonzero(media, tmp_path):
    missing = _cli("ingest", str(tmp_path / "nope"), "--index", str(tmp_path / "i"),
                   "--model", "imagebind-tiny")  # fmt: skip
    assert missing.returncode == 2 and "does not exist" in missing.stderr
    index = tmp_path / "idx"
    ok = _cli("ingest", str(media / "notes"), "--index", str(index), "--model", "imagebind-tiny",
              "--workers", "0")  # fmt: skip
    assert ok.returncode == 0, ok.stderr
    clash = _cli("ingest", str(media / "notes"), "--index", str(index), "--model", "imagebind-huge")
    assert clash.returncode == 2 and "imagebind-tiny" in clash.stderr


def test_exact_images_flag_stores_the_reference_exact_vector(tmp_path):
    import lancedb
    import numpy as np
    from PIL import Image

    from bindsearch import create_encoder
    from bindsearch.preprocess.image import load_image

    photos = tmp_path / "photos"
    photos.mkdir()
    rng = np.random.default_rng(3)
    ramp = np.linspace(0, 255, 1200, dtype=np.float32)[None, :, None]
    pixels = np.clip(ramp + rng.normal(0, 40, (900, 1200, 3)), 0, 255).astype(np.uint8)
    photo = photos / "big.jpg"  # short side 900 px: reduced-scale decoding applies by default
    Image.fromarray(pixels).save(photo, quality=90)
    stored = {}
    for exact in (False, True):
        index = tmp_path / f"index-{exact}"
        flags = ["--exact-images"] if exact else []
        result = _cli("ingest", str(photos), "--index", str(index), "--model", "imagebind-tiny",
                      "--workers", "1", *flags)  # fmt: skip
        assert result.returncode == 0, result.stderr
        rows = lancedb.connect(str(index)).open_table("items").to_arrow()
        stored[exact] = np.asarray(rows.column("vector").to_pylist()[0], dtype=np.float32)
    encoder = create_encoder("imagebind-tiny", device="cpu")
    expected = {
        exact: encoder.embed_tensor("vision", load_image(photo, exact=exact)[None])[0]
        for exact in (False, True)
    }
    assert not np.allclose(expected[False], expected[True], atol=1e-6)
    for exact in (False, True):
        np.testing.assert_allclose(stored[exact], expected[exact], atol=1e-5)
