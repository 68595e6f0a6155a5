"""The LanceDB store: schemas, model guard, atomic per-file replacement, errors, snapshots.

Real LanceDB in a temporary directory, no mocks.
"""

from __future__ import annotations

import datetime as dt
import hashlib
from pathlib import Path
from typing import Any

import lancedb
import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pytest

from bindsearch.errors import ConfigError, ModelMismatchError, StoreError
from bindsearch.store import (
    ERRORS_SCHEMA,
    ITEM_KINDS,
    META_SCHEMA,
    ErrorRecord,
    FileState,
    Store,
    items_schema,
    make_item_id,
)

DIM = 8
NOW = dt.datetime(2024, 5, 1, 12, 0, tzinfo=dt.timezone.utc)

WEIRD_PATHS = [
    "/media/it's a quote.jpg",
    "/media/'; DELETE FROM items; --.jpg",
    "/media/with space/ünïcødé 日本語.png",
    "/media/back\\slash.jpg",
    "/media/new\nline.jpg",
    '/media/double"quote.jpg',
    "/media/%_like.jpg",
    "/media/prefix",
    "/media/prefix and more",
]


def _unit(seed: int) -> list[float]:
    v = np.random.default_rng(seed).standard_normal(DIM).astype(np.float32)
    return (v / np.linalg.norm(v)).tolist()


def _sha(path: str) -> str:
    return hashlib.sha256(path.encode()).hexdigest()


def _item(
    path: str,
    modality: str = "image",
    start_s: float | None = None,
    end_s: float | None = None,
    *,
    sha256: str | None = None,
    seed: int = 0,
) -> dict[str, Any]:
    return {
        "id": make_item_id(path, modality, start_s, end_s),
        "path": path,
        "modality": modality,
        "start_s": start_s,
        "end_s": end_s,
        "sha256": sha256 or _sha(path),
        "size_bytes": 1234,
        "mtime": 1_700_000_000.5,
        "duration_s": None if start_s is None else 30.0,
        "width": 64 if modality == "image" else None,
        "height": 48 if modality == "image" else None,
        "text": "snippet" if modality == "text" else None,
        "vector": _unit(seed),
        "ingested_at": NOW,
    }


def _rows(items: list[dict[str, Any]]) -> pa.Table:
    return pa.Table.from_pylist(items, schema=items_schema(DIM))


def _segments(path: str, count: int, modality: str = "audio") -> list[dict[str, Any]]:
    return [_item(path, modality, 2.0 * k, 2.0 * k + 2.0, seed=k) for k in range(count)]


def _all_items(directory: Path, version: int | None = None) -> pa.Table:
    table = lancedb.connect(str(directory)).open_table("items")
    if version is not None:
        table.checkout(version)
    return table.to_arrow()


def _ids(table: pa.Table) -> list[str]:
    return sorted(table.column("id").to_pylist())


@pytest.fixture
def store(tmp_path: Path) -> Store:
    s = Store.open(tmp_path / "index")
    s.ensure_model("tiny", "tiny-weights-1", DIM)
    return s


# --- schema and ids ---------------------------------------------------------------------------


def test_tables_read_back_with_plain_lancedb(store: Store) -> None:
    a = "/media/a.jpg"
    store.replace_files([a], _rows([_item(a)]))
    store.record_errors([ErrorRecord("/media/bad.wav", "audio", "decode", "boom", 10, 1.0)])
    db = lancedb.connect(str(store.directory))

    items = db.open_table("items").to_arrow()
    assert items.schema.equals(items_schema(DIM), check_metadata=False)
    row = items.to_pylist()[0]
    assert row["path"] == a and row["vector"] == pytest.approx(_unit(0))
    assert row["ingested_at"] == NOW and items.schema.field("ingested_at").type.tz == "UTC"
    assert db.open_table("errors").to_arrow().schema.equals(ERRORS_SCHEMA, check_metadata=False)
    meta = db.open_table("meta").to_arrow()
    assert meta.schema.equals(META_SCHEMA, check_metadata=False)
    info = dict(zip(meta["key"].to_pylist(), meta["value"].to_pylist(), strict=True))
    assert {k: info[k] for k in ("model", "weights_id", "dim")} == {
        "model": "tiny",
        "weights_id": "tiny-weights-1",
        "dim": str(DIM),
    }
    assert info["bindsearch_version"] and dt.datetime.fromisoformat(info["created_at"]).tzinfo


def test_make_item_id_is_stable_and_canonical() -> None:
    whole = make_item_id("/a.wav", "audio", None, None)
    assert len(whole) == 32 and int(whole, 16) >= 0
    assert whole == make_item_id("/a.wav", "audio", None, None)
    assert make_item_id("/a.wav", "audio", 0, 2) == make_item_id("/a.wav", "audio", -0.0, 2.0)
    distinct = {
        whole,
        make_item_id("/a.wav", "audio", 0.0, 2.0),
        make_item_id("/a.wav", "video", None, None),
        make_item_id("/a.wav ", "audio", None, None),
    }
    assert len(distinct) == 4
    with pytest.raises(StoreError, match="finite"):
        make_item_id("/a.wav", "audio", float("nan"), 1.0)


def test_item_kinds_match_input_kinds() -> None:
    from bindsearch.preprocess import InputKind

    assert ITEM_KINDS == {kind.value for kind in InputKind}


# --- model guard ------------------------------------------------------------------------------


def test_ensure_model_records_once_and_accepts_the_same(store: Store) -> None:
    store.ensure_model("tiny", "tiny-weights-1", DIM)
    reopened = Store.open(store.directory, create=False)
    reopened.ensure_model("tiny", "tiny-weights-1", DIM)
    info = reopened.model_info()
    assert info is not None and info["model"] == "tiny" and reopened.dim == DIM


@pytest.mark.parametrize(
    ("model", "weights_id", "dim", "differs"),
    [
        ("other", "tiny-weights-1", DIM, "'other'"),
        ("tiny", "tiny-weights-2", DIM, "'tiny-weights-2'"),
        ("tiny", "tiny-weights-1", DIM * 2, f"dim {DIM * 2}"),
    ],
)
def test_ensure_model_refuses_a_mismatch(
    store: Store, model: str, weights_id: str, dim: int, differs: str
) -> None:
    for s in (store, Store.open(store.directory, create=False)):
        with pytest.raises(ModelMismatchError) as caught:
            s.ensure_model(model, weights_id, dim)
        message = str(caught.value)
        assert str(store.directory) in message and "'tiny-weights-1'" in message
        assert differs in message and "--model tiny" in message and "--index" in message
    assert isinstance(caught.value, ConfigError)


def test_items_table_needs_a_model(tmp_path: Path) -> None:
    s = Store.open(tmp_path / "fresh")
    assert s.model_info() is None and s.file_states() == {} and s.count_by_modality() == {}
    with pytest.raises(StoreError, match="no model"):
        s.version()


# --- replace_files ----------------------------------------------------------------------------


def test_replace_files_inserts_and_replaces_in_one_version_each(store: Store) -> None:
    a, b = "/media/long.wav", "/media/b.jpg"
    v0 = store.version()
    store.replace_files([a, b], _rows(_segments(a, 3) + [_item(b, seed=9)]))
    assert store.version() == v0 + 1
    before_b = _all_items(store.directory).filter(pc.field("path") == b)

    kept = _segments(a, 2)
    store.replace_files([a], _rows(kept))
    assert store.version() == v0 + 2

    items = _all_items(store.directory)
    assert _ids(items) == sorted([r["id"] for r in kept] + before_b["id"].to_pylist())
    stale = make_item_id(a, "audio", 4.0, 6.0)
    assert stale not in items["id"].to_pylist()
    after_b = items.filter(pc.field("path") == b)
    assert after_b.to_pylist() == before_b.to_pylist()


def test_replace_files_updates_changed_rows_in_place(store: Store) -> None:
    a = "/media/a.jpg"
    store.replace_files([a], _rows([_item(a, seed=1)]))
    store.replace_files([a], _rows([_item(a, seed=2)]))
    rows = _all_items(store.directory).to_pylist()
    assert len(rows) == 1 and rows[0]["vector"] == pytest.approx(_unit(2))


def test_replace_files_with_no_rows_deletes_a_file_and_skips_unknown_ones(store: Store) -> None:
    a, b = "/media/a.jpg", "/media/b.jpg"
    store.replace_files([a, b], _rows([_item(a), _item(b)]))
    v = store.version()
    store.replace_files(["/media/never-seen.jpg"], _rows([]))
    assert store.version() == v  # nothing to do, no commit
    store.replace_files([a], _rows([]))
    assert store.version() == v + 1
    assert _all_items(store.directory)["path"].to_pylist() == [b]


def test_replace_files_handles_quotes_unicode_and_spaces(store: Store) -> None:
    store.replace_files(WEIRD_PATHS, _rows([_item(p, seed=i) for i, p in enumerate(WEIRD_PATHS)]))
    assert sorted(store.file_states()) == sorted(WEIRD_PATHS)
    for i, path in enumerate(WEIRD_PATHS):
        v = store.version()
        store.replace_files([path], _rows(_segments(path, 2, "video")))
        assert store.version() == v + 1
        states = store.file_states()
        assert states[path].modalities == frozenset({"video"}), path
        assert all(states[p].modalities == {"image"} for p in WEIRD_PATHS[i + 1 :]), path
    assert len(_all_items(store.directory)) == 2 * len(WEIRD_PATHS)
    assert store.delete_paths(WEIRD_PATHS[:2]) == 4
    assert len(_all_items(store.directory)) == 2 * (len(WEIRD_PATHS) - 2)


def test_no_version_ever_holds_duplicates(store: Store) -> None:
    a, b = "/media/a.wav", "/media/b.wav"
    for count in (3, 2, 4, 1):
        store.replace_files([a, b], _rows(_segments(a, count) + _segments(b, 5 - count)))
        store.replace_files([a], _rows(_segments(a, count)))  # idempotent rerun
    store.optimize()
    store.replace_files([b], _rows(_segments(b, 2)))  # a merge through the new id index
    table = lancedb.connect(str(store.directory)).open_table("items")
    versions = [v["version"] for v in table.list_versions()]
    assert len(versions) >= 9
    for version in versions:
        table.checkout(version)
        items = table.to_arrow()
        assert len(set(items["id"].to_pylist())) == items.num_rows, version
    assert store.count_by_modality() == {"audio": 3}


def test_reader_keeps_its_snapshot_during_a_write(store: Store) -> None:
    a, b = "/media/long.wav", "/media/b.wav"
    store.replace_files([a, b], _rows(_segments(a, 3) + _segments(b, 1)))
    reader = Store.open(store.directory, create=False)
    plain = lancedb.connect(str(store.directory)).open_table("items")
    old_ids = _ids(plain.to_arrow())

    store.replace_files([a], _rows(_segments(a, 1)))
    store.optimize()  # compaction must not pull old files from under the reader

    assert _ids(reader.items_table().to_arrow()) == old_ids
    assert _ids(plain.to_arrow()) == old_ids
    assert reader.file_states()[a].modalities == {"audio"}
    plain.checkout_latest()
    assert len(plain.to_arrow()) == 2


@pytest.mark.parametrize(
    ("change", "match"),
    [
        (lambda t: t.drop_columns(["text"]), "missing columns \\['text'\\]"),
        (lambda t: t.append_column("extra", pa.array([1])), "unexpected columns"),
        (lambda t: t.set_column(0, "id", pa.array(["0" * 32])), "not make_item_id"),
        (lambda t: t.set_column(2, "modality", pa.array(["vision"])), "unknown item modality"),
        (lambda t: t.set_column(5, "sha256", pa.array([None], pa.string())), "'sha256' holds"),
        (lambda t: t.set_column(6, "size_bytes", pa.array(["big"])), "'size_bytes' has type"),
        (
            lambda t: t.set_column(12, "vector", pa.array([[2.0] * DIM], pa.list_(pa.float32()))),
            "unit vectors",
        ),
        (lambda t: t.set_column(12, "vector", pa.array([[float("nan")] * DIM])), "NaN"),
        (lambda t: t.set_column(3, "start_s", pa.array([1.0])), "both be set"),
    ],
)
def test_replace_files_rejects_rows_that_break_the_schema(store: Store, change, match) -> None:
    a = "/media/a.jpg"
    v = store.version()
    with pytest.raises(StoreError, match=match):
        store.replace_files([a], change(_rows([_item(a)])))
    assert store.version() == v


def test_replace_files_rejects_bad_paths(store: Store) -> None:
    a = "/media/a.jpg"
    with pytest.raises(StoreError, match="not listed in paths"):
        store.replace_files(["/media/other.jpg"], _rows([_item(a)]))
    with pytest.raises(StoreError, match="absolute"):
        store.replace_files(["rel.jpg"], _rows([_item("rel.jpg")]))
    with pytest.raises(StoreError, match="not a single string"):
        store.replace_files(a, _rows([_item(a)]))
    with pytest.raises(StoreError, match="repeat"):
        store.replace_files([a], _rows([_item(a), _item(a)]))


# --- reads for incremental ingest -------------------------------------------------------------


def test_file_states_aggregate_modalities_per_path(store: Store) -> None:
    video, image = "/media/clip.mp4", "/media/a.jpg"
    rows = _segments(video, 2, "video") + _segments(video, 2, "audio") + [_item(image)]
    store.replace_files([video, image], _rows(rows))
    states = store.file_states()
    assert states == {
        video: FileState(video, 1234, 1_700_000_000.5, _sha(video), frozenset({"video", "audio"})),
        image: FileState(image, 1234, 1_700_000_000.5, _sha(image), frozenset({"image"})),
    }
    assert store.count_by_modality() == {"video": 2, "audio": 2, "image": 1}


def test_find_vectors_by_sha256_returns_stored_vectors(store: Store) -> None:
    a, copy, other = "/media/a.wav", "/media/copy-of-a.wav", "/media/b.jpg"
    rows = _segments(a, 2) + [_item(other, sha256="f" * 64, seed=7)]
    store.replace_files([a, other], _rows(rows))
    found = store.find_vectors_by_sha256([_sha(a), "f" * 64, "0" * 64])
    assert set(found) == {
        (_sha(a), "audio", 0.0, 2.0),
        (_sha(a), "audio", 2.0, 4.0),
        ("f" * 64, "image", None, None),
    }
    np.testing.assert_array_equal(
        found[(_sha(a), "audio", 2.0, 4.0)], np.asarray(_unit(1), dtype=np.float32)
    )
    assert found[("f" * 64, "image", None, None)].dtype == np.float32
    assert store.find_vectors_by_sha256([]) == {} and copy not in store.file_states()


# --- errors and deletion ----------------------------------------------------------------------


def test_record_errors_upserts_one_row_per_path_and_modality(store: Store) -> None:
    bad, odd = "/media/it's bad.wav", "/media/odd.bin"
    for attempt in range(2):
        store.record_errors(
            [
                ErrorRecord(bad, "audio", "decode", f"boom {attempt}", 10, 1.0),
                ErrorRecord(odd, None, "discover", f"unknown kind {attempt}", 5, 2.0),
                ErrorRecord(odd, None, "discover", f"last wins {attempt}", 6, 3.0),
            ]
        )
    store.record_errors([ErrorRecord(bad, "video", "decode", "also", 10, 1.0)])
    rows = lancedb.connect(str(store.directory)).open_table("errors").to_arrow().to_pylist()
    pairs = sorted((r["path"], str(r["modality"]), r["error"]) for r in rows)
    assert pairs == [
        (bad, "audio", "boom 1"),
        (bad, "video", "also"),
        (odd, "None", "last wins 1"),
    ]
    states = store.error_states()
    assert states[odd] == ErrorRecord(odd, None, "discover", "last wins 1", 6, 3.0)
    assert states[bad].error == "also"


def test_clear_errors_removes_only_the_given_paths(store: Store) -> None:
    store.record_errors([ErrorRecord(f"/m/{n}", None, "read", "x", None, None) for n in "abc"])
    store.clear_errors(["/m/a", "/m/c", "/m/never"])
    assert sorted(store.error_states()) == ["/m/b"]
    store.clear_errors([])
    assert sorted(store.error_states()) == ["/m/b"]


def test_delete_paths_deletes_items_and_errors(store: Store) -> None:
    a, b = "/media/a.wav", "/media/b.jpg"
    store.replace_files([a, b], _rows(_segments(a, 3) + [_item(b)]))
    store.record_errors([ErrorRecord(a, "audio", "encode", "x", 1, 1.0)])
    assert store.delete_paths([a, "/media/gone.jpg"]) == 3
    assert store.error_states() == {}
    assert list(store.file_states()) == [b]
    assert store.delete_paths([]) == 0


def test_optimize_keeps_all_rows_and_indexes_the_keys(store: Store) -> None:
    for i in range(5):
        path = f"/media/{i}.wav"
        store.replace_files([path], _rows(_segments(path, 2)))
    store.record_errors([ErrorRecord("/media/x", None, "read", "x", None, None)])
    before = _ids(_all_items(store.directory))
    store.optimize()
    store.optimize()  # a second run has nothing to add and must not fail
    assert _ids(_all_items(store.directory)) == before and len(before) == 10
    indexed = {c for index in store.items_table().list_indices() for c in index.columns}
    assert {"id", "path", "sha256"} <= indexed
    assert list(store.error_states()) == ["/media/x"]

    # Rows written after indexing live in unindexed fragments; lookups must still see them.
    new = "/media/new.wav"
    store.replace_files([new], _rows(_segments(new, 3)))
    store.replace_files([new], _rows(_segments(new, 1)))
    assert store.count_by_modality() == {"audio": 11}
    assert len(store.find_vectors_by_sha256([_sha(new)])) == 1


# --- opening ----------------------------------------------------------------------------------


def test_open_without_create_needs_an_existing_index(tmp_path: Path) -> None:
    missing = tmp_path / "nope"
    with pytest.raises(ConfigError, match="does not exist"):
        Store.open(missing, create=False)
    assert not missing.exists()
    (tmp_path / "empty").mkdir()
    with pytest.raises(ConfigError, match="not a bindsearch index"):
        Store.open(tmp_path / "empty", create=False)


def test_open_refuses_files_and_foreign_folders(tmp_path: Path) -> None:
    photos = tmp_path / "photos"
    photos.mkdir()
    (photos / "cat.jpg").write_bytes(b"x")
    with pytest.raises(ConfigError, match="not empty"):
        Store.open(photos)
    assert sorted(p.name for p in photos.iterdir()) == ["cat.jpg"]
    with pytest.raises(ConfigError, match="is a file"):
        Store.open(photos / "cat.jpg")
    with pytest.raises(ConfigError, match="cannot create"):
        Store.open(photos / "cat.jpg" / "index")
