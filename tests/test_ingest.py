"""Ingest end to end with the tiny model, real LanceDB tables and generated media."""

from __future__ import annotations

import shutil
from pathlib import Path

import lancedb
import numpy as np
import pytest
from collection import BROKEN, VALID, build_collection

import bindsearch
from bindsearch.errors import BindsearchError


@pytest.fixture(scope="module")
def media(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return build_collection(tmp_path_factory.mktemp("media"))


def _rows(index_dir: Path) -> list[dict]:
    table = lancedb.connect(str(index_dir)).open_table("items").to_arrow()
    return table.to_pylist()


def _ingest(index_dir: Path, paths, **kwargs):
    idx = bindsearch.connect(index_dir, model="imagebind-tiny", device="cpu")
    kwargs.setdefault("workers", 0)
    return idx.ingest(paths, **kwargs)


def _whole_file_modalities(rows: list[dict], root: Path) -> dict[str, set[str]]:
    found: dict[str, set[str]] = {}
    for row in rows:
        if row["start_s"] is None:
            found.setdefault(str(Path(row["path"]).relative_to(root)), set()).add(row["modality"])
    return found


@pytest.fixture(scope="module")
def first_run(media: Path, tmp_path_factory: pytest.TempPathFactory):
    index_dir = tmp_path_factory.mktemp("index")
    report = _ingest(index_dir, [media])
    return index_dir, report


def test_every_valid_file_present_with_its_modalities(first_run, media):
    index_dir, report = first_run
    rows = _rows(index_dir)
    assert _whole_file_modalities(rows, media) == VALID
    assert report.files_ingested == len(VALID)
    for row in rows:
        assert Path(row["path"]).is_absolute()
        vector = np.asarray(row["vector"], dtype=np.float32)
        assert vector.shape == (64,)
        assert abs(np.linalg.norm(vector) - 1) < 1e-5
    assert len({row["id"] for row in rows}) == len(rows)
    by_path = {str(Path(r["path"]).relative_to(media)): r for r in rows if r["start_s"] is None}
    assert (
        by_path["photos/beach.png"]["width"] == 96 and by_path["photos/beach.png"]["height"] == 64
    )
    assert "walk the dog" in by_path["notes/todo.txt"]["text"]
    assert by_path["sounds/long.flac"]["duration_s"] == pytest.approx(7.0, abs=0.01)


def test_every_broken_file_in_errors_and_hidden_unknown_counted(first_run, media):
    index_dir, report = first_run
    errors = lancedb.connect(str(index_dir)).open_table("errors").to_arrow().to_pylist()
    failed = {str(Path(e["path"]).relative_to(media)) for e in errors}
    assert failed == set(BROKEN)
    assert all(e["stage"] and e["error"] for e in errors)
    assert report.files_failed == len(BROKEN)
    assert {f.path for f in report.failures} == {str(media / b) for b in BROKEN}
    assert report.hidden_skipped >= 2 and report.unknown_skipped >= 1


def test_rerun_adds_nothing(first_run, media):
    index_dir, _ = first_run
    before = _rows(index_dir)
    report = _ingest(index_dir, [media])
    assert report.files_unchanged == len(VALID)
    assert report.files_known_bad == len(BROKEN)
    assert report.rows_written == 0 and report.files_prepared == 0
    after = _rows(index_dir)
    assert sorted(r["id"] for r in after) == sorted(r["id"] for r in before)


def test_video_soundtrack_row_and_segments(media, tmp_path):
    report = _ingest(tmp_path / "idx", [media / "clips/street.mp4", media / "sounds/long.flac"],
                     segment_s=2.0)  # fmt: skip
    rows = _rows(tmp_path / "idx")
    street = [r for r in rows if r["path"].endswith("street.mp4")]
    assert {r["modality"] for r in street} == {"video", "audio"}
    segments = sorted((r["start_s"], r["end_s"]) for r in rows
                      if r["path"].endswith("long.flac") and r["start_s"] is not None)  # fmt: skip
    assert segments == [(0.0, 2.0), (2.0, 4.0), (4.0, 6.0), (6.0, pytest.approx(7.0))]
    video_segments = [r for r in street if r["modality"] == "video" and r["start_s"] is not None]
    assert len(video_segments) == 2  # 3.0 s of video in 2 s windows
    assert report.ok


def test_duplicate_content_reuses_vectors(media, tmp_path):
    shutil.copy(media / "sounds/rain.wav", tmp_path / "rain-copy.wav")
    shutil.copy(media / "sounds/rain.wav", tmp_path / "rain-again.wav")
    report = _ingest(tmp_path / "idx", [tmp_path / "rain-copy.wav", tmp_path / "rain-again.wav"])
    assert report.files_deduplicated == 1
    rows = _rows(tmp_path / "idx")
    assert len(rows) == 2 and rows[0]["sha256"] == rows[1]["sha256"]
    np.testing.assert_array_equal(rows[0]["vector"], rows[1]["vector"])


def test_changed_file_replaced_and_prune(media, tmp_path):
    root = tmp_path / "c"
    root.mkdir()
    shutil.copy(media / "photos/beach.png", root / "a.png")
    shutil.copy(media / "sounds/rain.wav", root / "b.wav")
    _ingest(tmp_path / "idx", [root])
    old = {r["path"]: r for r in _rows(tmp_path / "idx")}
    shutil.copy(media / "thermal/person.png", root / "a.png")  # new content, same path
    (root / "b.wav").unlink()
    report = _ingest(tmp_path / "idx", [root], prune=True)
    new = {r["path"]: r for r in _rows(tmp_path / "idx")}
    assert set(new) == {str(root / "a.png")}
    assert new[str(root / "a.png")]["sha256"] != old[str(root / "a.png")]["sha256"]
    assert report.rows_pruned == 1


def test_forced_kind_and_dry_run(media, tmp_path):
    report = _ingest(
        tmp_path / "idx", [media / "photos/beach.png"], as_kind="thermal", dry_run=True
    )
    assert dict(report.to_ingest_by_kind) == {"thermal": 1}
    assert not (tmp_path / "idx" / "items.lance").exists()
    _ingest(tmp_path / "idx", [media / "photos/beach.png"], as_kind="thermal")
    assert [r["modality"] for r in _rows(tmp_path / "idx")] == ["thermal"]


def test_worker_processes_give_the_same_rows(media, first_run, tmp_path):
    index_dir, _ = first_run
    paths = [media / "photos", media / "sounds"]
    _ingest(tmp_path / "idx", paths, workers=2)
    pooled = {r["id"]: r["vector"] for r in _rows(tmp_path / "idx")}
    inline = {r["id"]: r["vector"] for r in _rows(index_dir)}
    assert pooled and set(pooled) <= set(inline)
    for key, vector in pooled.items():
        np.testing.assert_allclose(vector, inline[key], atol=1e-5)


def test_different_model_is_refused(first_run, tmp_path):
    index_dir, _ = first_run
    other = tmp_path / "other.pth"
    import torch

    model = bindsearch.create_model("imagebind-tiny")
    torch.save({k: v + 1 for k, v in model.state_dict().items()}, other)
    idx = bindsearch.connect(index_dir, model="imagebind-tiny", weights=other, device="cpu")
    with pytest.raises(BindsearchError, match="weights"):
        idx.ingest([tmp_path], workers=0)


def test_missing_path_raises_before_work(tmp_path):
    with pytest.raises(BindsearchError, match="does not exist"):
        _ingest(tmp_path / "idx", [tmp_path / "nope"])


def test_ingest_refreshes_a_built_faiss_index(media, tmp_path):
    from bindsearch.indexes import build_index, index_info

    _ingest(tmp_path / "idx", [media / "photos"])
    idx = bindsearch.connect(tmp_path / "idx", device="cpu")
    built = build_index(idx.store)
    assert built.count == 2
    report = _ingest(tmp_path / "idx", [media / "sounds"])
    assert report.rows_written == 2
    idx = bindsearch.connect(tmp_path / "idx", device="cpu")  # a fresh view of the new version
    after = index_info(idx.store)
    assert after is not None and after.table_version == idx.store.version()
    from bindsearch.query import File

    hit = idx.search(File("audio", media / "sounds/rain.wav"), k=1)[0]
    assert hit.path == str(media / "sounds/rain.wav")


def test_a_crashing_decoder_fails_only_its_file(media, tmp_path):
    from crashing_decoder import prepare_or_die

    from bindsearch.ingest.pipeline import _Pool
    from bindsearch.ingest.prepare import FileJob
    from bindsearch.preprocess import InputKind

    names = ["a.png", "b.png", "crash.png", "c.png", "d.png"]
    for name in names:
        shutil.copy(media / "photos/beach.png", tmp_path / name)
    jobs = [FileJob(str(tmp_path / n), InputKind.IMAGE, 1, 0.0) for n in names]
    pool = _Pool(workers=2, depth=4, prepare=prepare_or_die)
    try:
        results = {Path(p.job.path).name: p for p in pool.prepared(iter(jobs))}
    finally:
        pool.shutdown()
    assert set(results) == set(names)
    assert [f.error for f in results["crash.png"].failures][0].startswith("decoder crashed")
    assert all(results[n].items and not results[n].failures for n in names if n != "crash.png")


def test_report_to_dict_is_json(first_run):
    import json

    _, report = first_run
    doc = json.loads(json.dumps(report.to_dict()))
    assert doc["files_ingested"] == len(VALID)
    assert set(doc["seconds_by_stage"]) >= {"scan", "decode", "encode", "write"}
    assert {f["path"] for f in doc["failures"]} == {f.path for f in report.failures}


def test_images_and_video_clips_batch_separately(media, tmp_path):
    # The image is queued first (1 clip, below the batch size), then a 15-clip video arrives:
    # the two input shapes must never be concatenated into one batch.
    report = _ingest(tmp_path / "idx", [media / "photos/beach.png", media / "clips/silent.mp4"],
                     batch_size=8)  # fmt: skip
    assert report.ok and report.rows_by_modality == {"image": 1, "video": 1}
