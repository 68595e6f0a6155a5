"""Discover stage: classification rules, skips and their counts, symlinks, errors, order, laziness.

Every test scans real files under ``tmp_path``; nothing is mocked.
"""

from __future__ import annotations

import os
import shutil
import sys
from pathlib import Path

import pytest

from bindsearch.errors import ConfigError
from bindsearch.ingest.discover import (
    MAX_UNREADABLE_REPORTED,
    DiscoveredFile,
    ScanStats,
    classify_path,
    iter_files,
    validate_roots,
)
from bindsearch.preprocess import InputKind

IMAGE, VIDEO, TEXT, AUDIO = InputKind.IMAGE, InputKind.VIDEO, InputKind.TEXT, InputKind.AUDIO
DEPTH, THERMAL, IMU = InputKind.DEPTH, InputKind.THERMAL, InputKind.IMU


def touch(root: Path, *relpaths: str, data: bytes = b"x") -> None:
    """Create each file (and its parents) under ``root``."""
    for rel in relpaths:
        path = root / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(data)


def scan(*roots: Path, forced: InputKind | None = None) -> tuple[dict[str, InputKind], ScanStats]:
    """Scan ``roots``; return ``{path relative to the first root: kind}`` and the stats."""
    stats = ScanStats()
    found = list(iter_files(list(roots), forced=forced, stats=stats))
    base = roots[0].absolute()
    kinds = {os.path.relpath(f.path, base): f.kind for f in found}
    assert len(kinds) == len(found), "a path was yielded twice"
    return kinds, stats


EXTENSION_CASES = {
    **{f"a.{ext}": IMAGE for ext in ("jpg", "jpeg", "png", "webp", "bmp", "gif", "tif", "tiff")},
    **{f"a.{ext}": AUDIO for ext in ("wav", "flac", "ogg", "opus", "mp3", "m4a", "aac")},
    **{f"a.{ext}": VIDEO for ext in ("mp4", "mov", "mkv", "webm", "avi")},
    "a.txt": TEXT,
    "a.md": TEXT,
    "UPPER.JPG": IMAGE,
    "Mixed.Mp3": AUDIO,
    "clip.MoV": VIDEO,
    "archive.tar.gz": None,
    "data.npy": None,
    "table.csv": None,
    "noext": None,
    "trailing.": None,
    "photo.jpg.bak": None,
}


@pytest.mark.parametrize(("name", "kind"), EXTENSION_CASES.items())
def test_classify_by_extension(name: str, kind: InputKind | None) -> None:
    assert classify_path(Path("/data/photos") / name) is kind


CONVENTION_CASES = {
    # Folders, at any depth, case-insensitive; the nearest accepting one wins.
    "depth/a.png": DEPTH,
    "x/y/Depth/z/a.tiff": DEPTH,
    "depth/a.npy": DEPTH,
    "thermal/a.jpg": THERMAL,
    "THERMAL/deep/er/a.webp": THERMAL,
    "thermal/a.npy": THERMAL,
    "imu/a.csv": IMU,
    "imu/sub/a.npy": IMU,
    "thermal/depth/a.png": DEPTH,
    "depth/thermal/a.png": THERMAL,
    # A folder whose kind does not take the extension falls through to the next rule.
    "depth/notes.txt": TEXT,
    "depth/photo.jpg": IMAGE,
    "imu/photo.png": IMAGE,
    "imu/depth/a.csv": IMU,
    "thermal/song.mp3": AUDIO,
    "depth/a.csv": None,
    "thermal/a.csv": None,
    # Infixes beat folders, and only count right before the extension.
    "scan01.depth.png": DEPTH,
    "walk.imu.csv": IMU,
    "walk.IMU.npy": IMU,
    "cam.thermal.jpg": THERMAL,
    "imu/scan.depth.png": DEPTH,
    "depth/cam.thermal.png": THERMAL,
    "thermal/walk.imu.npy": IMU,
    "notes.depth.txt": TEXT,
    "a.depth.x.png": IMAGE,
    "depth.png": IMAGE,
    "depthy/a.png": IMAGE,
    "my-imu/a.csv": None,
}


@pytest.mark.parametrize(("relpath", "kind"), CONVENTION_CASES.items())
def test_classify_conventions(relpath: str, kind: InputKind | None) -> None:
    assert classify_path(Path("/data") / relpath) is kind


def test_classify_forced_accepts_any_extension() -> None:
    assert classify_path(Path("/d/readme.unknown"), forced=AUDIO) is AUDIO
    assert classify_path(Path("/d/depth/a.png"), forced=IMAGE) is IMAGE


def test_scan_classifies_every_class(tmp_path: Path) -> None:
    touch(tmp_path, *EXTENSION_CASES, *CONVENTION_CASES)
    kinds, stats = scan(tmp_path)
    expected = {k: v for k, v in {**EXTENSION_CASES, **CONVENTION_CASES}.items() if v is not None}
    assert kinds == expected
    skipped = [k for k, v in {**EXTENSION_CASES, **CONVENTION_CASES}.items() if v is None]
    assert stats.unknown_skipped == len(skipped)
    assert stats.files_found == len(expected)
    assert sum(stats.by_kind.values()) == len(expected)
    assert stats.by_kind["depth"] == sum(v is DEPTH for v in expected.values())


def test_scanned_root_named_as_convention_folder(tmp_path: Path) -> None:
    touch(tmp_path, "Thermal/cam1/a.png", "Thermal/log.csv")
    kinds, _ = scan(tmp_path / "Thermal" / "cam1")
    assert kinds == {"a.png": THERMAL}


def test_hidden_entries_skipped_and_counted(tmp_path: Path) -> None:
    touch(tmp_path, "a.jpg", ".hidden.jpg", ".git/objects/x.jpg", "sub/.DS_Store", "sub/b.wav")
    kinds, stats = scan(tmp_path)
    assert kinds == {"a.jpg": IMAGE, "sub/b.wav": AUDIO}
    assert stats.hidden_skipped == 3  # a hidden directory counts once, its contents not at all


def test_explicit_hidden_root_is_scanned(tmp_path: Path) -> None:
    touch(tmp_path, ".photos/a.jpg", ".b.png")
    kinds, _ = scan(tmp_path / ".photos")
    assert kinds == {"a.jpg": IMAGE}
    found = list(iter_files([tmp_path / ".b.png"]))
    assert [f.kind for f in found] == [IMAGE]


def test_forced_kind(tmp_path: Path) -> None:
    touch(tmp_path, "a.jpg", "b.weird", "depth/c.png", ".hidden.wav", "noext")
    kinds, stats = scan(tmp_path, forced=AUDIO)
    assert kinds == {"a.jpg": AUDIO, "b.weird": AUDIO, "depth/c.png": AUDIO, "noext": AUDIO}
    assert stats.hidden_skipped == 1
    assert stats.unknown_skipped == 0
    assert stats.by_kind == {"audio": 4}


def test_discovered_file_fields(tmp_path: Path) -> None:
    touch(tmp_path, "a.png", data=b"12345")
    os.utime(tmp_path / "a.png", (1_000_000_000.5, 1_000_000_000.5))
    (found,) = iter_files([tmp_path])
    assert found == DiscoveredFile(tmp_path / "a.png", IMAGE, 5, 1_000_000_000.5)
    assert found.path.is_absolute()


def test_paths_are_absolute_and_normalised(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    touch(tmp_path, "sub/a.png")
    monkeypatch.chdir(tmp_path)
    (found,) = iter_files(["./sub/../sub/"])
    assert found.path == tmp_path / "sub" / "a.png"
    assert validate_roots(["sub/./"]) == [tmp_path / "sub"]


def test_symlinked_file_yielded_with_link_path(tmp_path: Path) -> None:
    touch(tmp_path, "outside/target.jpg", data=b"123")
    root = tmp_path / "root"
    root.mkdir()
    (root / "link.png").symlink_to(tmp_path / "outside" / "target.jpg")
    (found,) = iter_files([root])
    assert found.path == root / "link.png"
    assert found.path.is_symlink()
    assert (found.kind, found.size_bytes) == (IMAGE, 3)


def test_symlinked_directory_followed_and_deduplicated(tmp_path: Path) -> None:
    touch(tmp_path, "root/b_real/x.png", "elsewhere/y.png")
    root = tmp_path / "root"
    (root / "a_link").symlink_to(root / "b_real")  # sorted first: wins over the real path
    (root / "c_ext").symlink_to(tmp_path / "elsewhere")
    kinds, stats = scan(root)
    assert kinds == {"a_link/x.png": IMAGE, "c_ext/y.png": IMAGE}
    assert stats.loops_skipped == 1


def test_symlink_loop_terminates_and_is_counted(tmp_path: Path) -> None:
    touch(tmp_path, "a/f.png", "a/b/g.png")
    (tmp_path / "a" / "b" / "up").symlink_to(tmp_path / "a")
    (tmp_path / "a" / "b" / "self").symlink_to(tmp_path / "a" / "b")
    (tmp_path / "a" / "root").symlink_to(tmp_path)
    kinds, stats = scan(tmp_path)
    assert kinds == {"a/f.png": IMAGE, "a/b/g.png": IMAGE}
    assert stats.loops_skipped == 3


def test_overlapping_roots_scanned_once(tmp_path: Path) -> None:
    touch(tmp_path, "sub/a.png")
    kinds, stats = scan(tmp_path, tmp_path / "sub", tmp_path)
    assert kinds == {"sub/a.png": IMAGE}
    assert stats.loops_skipped == 2


def test_broken_and_self_referencing_symlinks_reported(tmp_path: Path) -> None:
    touch(tmp_path, "ok.png")
    (tmp_path / "broken.png").symlink_to(tmp_path / "gone.png")
    (tmp_path / "gone_dir").symlink_to(tmp_path / "nowhere", target_is_directory=True)
    (tmp_path / "selfie").symlink_to(tmp_path / "selfie")
    kinds, stats = scan(tmp_path)
    assert kinds == {"ok.png": IMAGE}
    assert stats.unreadable_count == 3
    reasons = dict(stats.unreadable)
    assert "broken symlink" in reasons[str(tmp_path / "broken.png")]
    assert "gone.png" in reasons[str(tmp_path / "broken.png")]
    assert "broken symlink" in reasons[str(tmp_path / "gone_dir")]
    assert str(tmp_path / "selfie") in reasons


@pytest.mark.skipif(
    hasattr(os, "geteuid") and os.geteuid() == 0,
    reason="root reads a chmod 000 directory anyway; test_vanished_entries covers the error path",
)
def test_unreadable_directory_reported_and_scan_goes_on(tmp_path: Path) -> None:
    touch(tmp_path, "a/x.png", "locked/y.png", "z/w.png")
    (tmp_path / "locked").chmod(0)
    try:
        kinds, stats = scan(tmp_path)
    finally:
        (tmp_path / "locked").chmod(0o755)
    assert kinds == {"a/x.png": IMAGE, "z/w.png": IMAGE}
    assert stats.unreadable_count == 1
    assert stats.unreadable[0][0] == str(tmp_path / "locked")


def test_vanished_entries_reported_and_scan_goes_on(tmp_path: Path) -> None:
    """Files and folders deleted between listing and reading are unreadable, not fatal."""
    touch(tmp_path, "a/1.png", "a/2.png", "b/3.png", "c/4.png")
    stats = ScanStats()
    files = iter_files([tmp_path], stats=stats)
    first = next(files)
    assert first.path == tmp_path / "a" / "1.png"
    (tmp_path / "a" / "2.png").unlink()
    shutil.rmtree(tmp_path / "b")
    rest = [f.path for f in files]
    assert rest == [tmp_path / "c" / "4.png"]
    assert [p for p, _ in stats.unreadable] == [str(tmp_path / "a" / "2.png"), str(tmp_path / "b")]


def test_unreadable_list_is_capped_but_counted(tmp_path: Path) -> None:
    for i in range(MAX_UNREADABLE_REPORTED + 5):
        (tmp_path / f"l{i:05d}.png").symlink_to(tmp_path / "missing")
    _, stats = scan(tmp_path)
    assert stats.unreadable_count == MAX_UNREADABLE_REPORTED + 5
    assert len(stats.unreadable) == MAX_UNREADABLE_REPORTED


def test_root_that_is_a_file(tmp_path: Path) -> None:
    touch(tmp_path, "depth/scan.png", "notes.csv")
    stats = ScanStats()
    found = list(iter_files([tmp_path / "depth" / "scan.png", tmp_path / "notes.csv"], stats=stats))
    assert [(f.path, f.kind) for f in found] == [(tmp_path / "depth" / "scan.png", DEPTH)]
    assert stats.unknown_skipped == 1


def test_single_path_is_not_split_into_characters(tmp_path: Path) -> None:
    touch(tmp_path, "a.png")
    assert [f.path for f in iter_files(str(tmp_path))] == [tmp_path / "a.png"]


def test_missing_root_raises_before_anything_is_yielded(tmp_path: Path) -> None:
    touch(tmp_path, "a.png")
    missing = tmp_path / "nope"
    with pytest.raises(ConfigError, match="does not exist") as info:
        iter_files([tmp_path, missing])  # raises at call time, not on first next()
    assert str(missing) in str(info.value)
    (tmp_path / "dangling").symlink_to(missing)
    with pytest.raises(ConfigError, match="does not exist"):
        validate_roots([tmp_path / "dangling"])


def test_special_file_root_rejected(tmp_path: Path) -> None:
    if not hasattr(os, "mkfifo"):
        pytest.skip("no FIFOs on this platform")
    os.mkfifo(tmp_path / "pipe.wav")
    with pytest.raises(ConfigError, match="neither a regular file nor a folder"):
        validate_roots([tmp_path / "pipe.wav"])
    _, stats = scan(tmp_path)  # inside a tree a FIFO is skipped, never opened
    assert (stats.files_found, stats.unknown_skipped) == (0, 1)


def test_order_is_deterministic_depth_first_by_name(tmp_path: Path) -> None:
    names = ["b.png", "a/z.png", "a/b/c.png", "C.png", "a0.png", "a/a.png", "Z/q.png"]
    touch(tmp_path, *names)
    first = [f.path for f in iter_files([tmp_path])]
    second = [f.path for f in iter_files([tmp_path])]
    assert first == second
    rel = [str(p.relative_to(tmp_path)) for p in first]
    assert rel == ["C.png", "Z/q.png", "a/a.png", "a/b/c.png", "a/z.png", "a0.png", "b.png"]


def test_roots_are_scanned_in_the_order_given(tmp_path: Path) -> None:
    touch(tmp_path, "x/1.png", "y/2.png")
    found = [f.path.name for f in iter_files([tmp_path / "y", tmp_path / "x"])]
    assert found == ["2.png", "1.png"]


def test_scan_is_lazy(tmp_path: Path) -> None:
    for d in range(40):
        touch(tmp_path, *(f"d{d:02d}/f{i:03d}.jpg" for i in range(50)))
    stats = ScanStats()
    files = iter_files([tmp_path], stats=stats)
    first = next(files)
    assert first.path == tmp_path / "d00" / "f000.jpg"
    assert stats.files_found == 1
    assert stats.dirs_scanned == 2  # the root and the first folder, not all 41
    assert sum(1 for _ in files) == 40 * 50 - 1


def test_deep_tree_does_not_hit_the_recursion_limit(tmp_path: Path) -> None:
    depth = sys.getrecursionlimit() + 100
    path = tmp_path
    for _ in range(depth):
        path = path / "d"
        os.mkdir(path)  # not makedirs or rmtree: both recurse once per level
    try:
        (path / "deep.txt").write_text("bottom")
        (found,) = iter_files([tmp_path])
        assert found.path == path / "deep.txt"
        assert found.kind is TEXT
    finally:
        (path / "deep.txt").unlink(missing_ok=True)
        while path != tmp_path:
            path.rmdir()
            path = path.parent
