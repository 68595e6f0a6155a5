"""Queries: self-retrieval per modality, composed arithmetic, filters, ids, JSON, classify."""

from __future__ import annotations

import json
from pathlib import Path

import lancedb
import numpy as np
import pytest
from collection import VALID, build_collection
from typer.testing import CliRunner

import bindsearch
from bindsearch.cli import app
from bindsearch.errors import ConfigError
from bindsearch.query import File, Filters, Item, Text, Vector, combine

# Row modality -> the query part kind that re-embeds the same file the same way.
_PART_KIND = {"image": "image", "video": "video", "audio": "audio", "text": "text",
              "depth": "depth", "thermal": "thermal", "imu": "imu"}  # fmt: skip


@pytest.fixture(scope="module")
def indexed(tmp_path_factory: pytest.TempPathFactory):
    media = build_collection(tmp_path_factory.mktemp("media"))
    index_dir = tmp_path_factory.mktemp("index")
    idx = bindsearch.connect(index_dir, model="imagebind-tiny", device="cpu")
    idx.ingest([media], workers=0, segment_s=2.0)
    return idx, media


@pytest.fixture(scope="module", params=["exact", "faiss-flat", "faiss-ivf"])
def searched(request, indexed, tmp_path_factory: pytest.TempPathFactory):
    """The same index searched exactly, through a FAISS Flat sidecar, and through IVF."""
    import shutil

    from bindsearch.indexes import build_index

    idx, media = indexed
    if request.param == "exact":
        return idx, media
    copy = tmp_path_factory.mktemp(request.param) / "index"
    shutil.copytree(idx.directory, copy)
    clone = bindsearch.connect(copy, device="cpu")
    factory = "Flat" if request.param == "faiss-flat" else "IVF4,Flat"
    manifest = build_index(clone.store, factory=factory, recall=0.99)
    assert manifest.factory == factory
    return clone, media


def _all_rows(idx) -> list[dict]:
    return lancedb.connect(str(idx.directory)).open_table("items").to_arrow().to_pylist()


def _brute_force(idx, query: np.ndarray, k: int, keep) -> list[tuple[str, float]]:
    rows = [r for r in _all_rows(idx) if keep(r)]
    scores = np.array([np.dot(r["vector"], query) for r in rows])
    order = np.argsort(-scores, kind="stable")[:k]
    return [(rows[i]["id"], float(scores[i])) for i in order]


@pytest.mark.parametrize("rel", sorted(VALID))
def test_every_file_finds_itself_first(indexed, rel):
    idx, media = indexed
    for modality in sorted(VALID[rel]):
        kind = _PART_KIND[modality]
        hits = idx.search(File(kind, media / rel), modalities=[modality], k=3)
        assert hits[0].path == str(media / rel)
        assert hits[0].modality == modality
        assert hits[0].score == pytest.approx(1.0, abs=1e-4)


def test_composed_query_matches_numpy(searched):
    idx, media = searched
    photo, sound = media / "photos/beach.png", media / "sounds/rain.wav"
    image_vec = idx.embed("image", [photo])[0]
    audio_vec = idx.embed("audio", [sound])[0]
    text_vec = idx.embed("text", ["people"])[0]
    expected_query = combine(np.stack([image_vec, audio_vec, text_vec]), np.array([1.0, 0.7, -0.5]))
    manual = image_vec + 0.7 * audio_vec - 0.5 * text_vec
    np.testing.assert_allclose(expected_query, manual / np.linalg.norm(manual), atol=1e-6)
    hits = idx.search(File("image", photo), File("audio", sound, 0.7), Text("people", -0.5), k=8)
    expected = _brute_force(idx, expected_query, 8, lambda r: r["start_s"] is None)
    assert [h.id for h in hits] == [i for i, _ in expected]
    np.testing.assert_allclose([h.score for h in hits], [s for _, s in expected], atol=1e-5)


def test_negative_weight_moves_away(indexed):
    idx, media = indexed
    target = media / "photos/beach.png"
    plus = idx.search(File("image", target), k=1)[0]
    minus = idx.search(File("image", target, -1.0), k=50)
    assert plus.path == str(target)
    assert minus[-1].path == str(target) and minus[-1].score == pytest.approx(-1.0, abs=1e-4)


def test_parts_cancel_out_is_an_error(indexed):
    idx, _ = indexed
    with pytest.raises(ConfigError, match="cancel"):
        idx.search(Text("rain"), Text("rain", -1.0))


@pytest.mark.parametrize(
    ("filters", "keep"),
    [
        (Filters(modalities=("image", "video")), lambda r, m: r["start_s"] is None and r["modality"] in ("image", "video")),
        (Filters(where="duration_s > 5"), lambda r, m: r["start_s"] is None and (r["duration_s"] or 0) > 5),
        (Filters(path="PHOTOS"), lambda r, m: r["start_s"] is None and r["path"].startswith(str(m / "photos") + "/")),
        (Filters(path="*.wav"), lambda r, m: r["start_s"] is None and r["path"].endswith(".wav")),
        (Filters(segments=True, modalities=("audio",)), lambda r, m: r["modality"] == "audio"),
    ],
)  # fmt: skip
def test_filters_match_brute_force(searched, filters, keep):
    idx, media = searched
    if filters.path == "PHOTOS":
        filters = Filters(path=str(media / "photos"))
    elif filters.path == "*.wav":
        filters = Filters(path=str(media) + "/*.wav")
    query = idx.embed("text", ["a dog in the rain"])[0]
    k = 5
    expected = _brute_force(idx, query, k, lambda r: keep(r, media))
    hits = idx.search(Vector(query), modalities=filters.modalities, path=filters.path,
                      where=filters.where, segments=filters.segments, k=k)  # fmt: skip
    assert [h.id for h in hits] == [i for i, _ in expected]
    assert len(hits) == min(k, len(expected))


def test_query_by_id_and_segments_have_times(indexed):
    idx, media = indexed
    rows = _all_rows(idx)
    target = next(r for r in rows if r["path"].endswith("long.flac") and r["start_s"] == 2.0)
    hits = idx.search(Item(target["id"]), segments=True, k=1)
    assert hits[0].id == target["id"]
    assert (hits[0].start_s, hits[0].end_s) == (2.0, 4.0)
    with pytest.raises(ConfigError, match="no item"):
        idx.search(Item("0" * 32))


def test_cli_query_json_schema(indexed):
    idx, media = indexed
    result = CliRunner().invoke(app, ["query", "--index", str(idx.directory), "--text", "rain::1",
                                      "--audio", str(media / "sounds/rain.wav") + "::0.5",
                                      "--modality", "audio,video", "--top-k", "3", "--json"])  # fmt: skip
    assert result.exit_code == 0, result.output
    hits = json.loads(result.stdout)
    assert len(hits) == 3
    for rank, hit in enumerate(hits, start=1):
        assert {"id", "path", "modality", "score", "start_s", "end_s", "rank"} <= set(hit)
        assert hit["rank"] == rank and hit["modality"] in ("audio", "video")
    assert [h["score"] for h in hits] == sorted((h["score"] for h in hits), reverse=True)


def test_classify_probabilities(indexed):
    idx, media = indexed
    scores = idx.classify(File("audio", media / "sounds/rain.wav"), ["rain", "dog", "engine"])
    assert sorted(s.label for s in scores) == ["dog", "engine", "rain"]
    assert sum(s.probability for s in scores) == pytest.approx(1.0, abs=1e-6)
    assert [s.probability for s in scores] == sorted((s.probability for s in scores), reverse=True)
    result = CliRunner().invoke(app, ["classify", str(media / "sounds/rain.wav"), "--labels",
                                      "rain,dog", "--index", str(idx.directory), "--json"])  # fmt: skip
    assert result.exit_code == 0, result.output
    doc = json.loads(result.stdout)
    assert {d["label"] for d in doc} == {"rain", "dog"}


def test_text_file_query_equals_its_row(indexed):
    idx, media = indexed
    long_note = media / "notes/readme.md"
    row = next(r for r in _all_rows(idx) if r["path"] == str(long_note))
    np.testing.assert_allclose(idx.embed("text", [Path(long_note)])[0], row["vector"], atol=1e-5)


def test_index_keeps_its_faiss_sidecar_loaded_until_the_manifest_changes(
    indexed, tmp_path: Path
) -> None:
    """One load for many searches; a rebuild (new manifest) is picked up by the next search."""
    import shutil

    from bindsearch.indexes import build_index

    idx, _ = indexed
    copy = tmp_path / "index"
    shutil.copytree(idx.directory, copy)
    clone = bindsearch.connect(copy, device="cpu")
    rows = _all_rows(clone)
    query = np.asarray(rows[0]["vector"], dtype=np.float32)
    exact = [h.id for h in clone.search(Vector(query), segments=True, k=5)]  # no sidecar yet
    assert clone._sidecar.loads == 0
    build_index(clone.store, factory="Flat")
    first = [h.id for h in clone.search(Vector(query), segments=True, k=5)]
    second = [h.id for h in clone.search(Vector(query), segments=True, k=5)]
    assert first == second == exact and clone._sidecar.loads == 1
    rebuilt = build_index(clone.store, factory="IVF2,Flat", recall=1.0)
    assert [h.id for h in clone.search(Vector(query), segments=True, k=5)] == exact
    assert clone._sidecar.loads == 2
    loaded = clone._sidecar.get(clone.store)
    assert loaded is not None and loaded.manifest.generation == rebuilt.generation
    shutil.rmtree(copy / "faiss")  # sidecar removed: exact search again
    assert [h.id for h in clone.search(Vector(query), segments=True, k=5)] == exact
    assert clone._sidecar.get(clone.store) is None
