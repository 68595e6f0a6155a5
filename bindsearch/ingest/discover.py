"""Discover: the first ingest stage, which turns root paths into a stream of typed files.

The scan is a generator over an explicit stack (no recursion, so deep trees are fine) and never
holds more than the sorted entries of the directories on the current path, so it scales to
millions of files. Directory entries are visited in name order, depth first, so two scans of the
same tree yield the same files in the same order.

How a file's kind is decided (``classify_path``), first rule that applies wins:

1. ``forced`` (``--as MODALITY``): every file is that kind, whatever its extension.
2. Infix: ``.depth.``, ``.thermal.`` or ``.imu.`` right before the extension
   (``scan01.depth.png``, ``walk.imu.csv``).
3. Convention folder: the nearest enclosing directory named ``depth``, ``thermal`` or ``imu``
   (case-insensitive, at any level of the absolute path, including above the scanned root, so
   ``bindsearch ingest captures/depth`` works).
4. Extension: images, audio, video and text by their usual extensions.

A sensor rule (2 or 3) only applies when the extension is a format of that sensor: depth takes
``png``/``tif``/``tiff``/``npy``, thermal takes image extensions and ``npy``, IMU takes
``csv``/``npy``. Otherwise the next rule is tried, so ``depth/notes.txt`` is text and
``depth/photo.jpg`` is an image. ``npy`` and ``csv`` have no kind of their own: outside a
convention they are unknown and skipped.

Skipped, counted in ``ScanStats`` and never raised: hidden entries (name starting with ``.``;
a hidden directory counts once and is not entered), unknown extensions, special files (FIFOs,
sockets, devices: reading them could block), directories reached a second time (symlink loops,
symlinks to directories already scanned, overlapping roots; whichever path comes first in scan
order wins), and entries that cannot be read (permission denied, broken symlinks, symlinks
pointing at themselves, files that vanish mid-scan). Roots given explicitly are not subject to
the hidden rule.

Symlinks are followed. A file reached through a symlink is yielded with the link's path, not
the target's, and is classified by the link's name and folders; its size and mtime are the
target's. A target reachable through two links, or directly and through a link, is yielded once
per path: only directories are deduplicated.
"""

from __future__ import annotations

import logging
import os
import stat
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from operator import attrgetter
from pathlib import Path

from bindsearch.errors import ConfigError
from bindsearch.preprocess import InputKind

logger = logging.getLogger(__name__)

#: ``ScanStats.unreadable`` keeps at most this many ``(path, reason)`` entries; the count goes on.
MAX_UNREADABLE_REPORTED = 1000

IMAGE_EXTENSIONS = frozenset({"jpg", "jpeg", "png", "webp", "bmp", "gif", "tif", "tiff"})
AUDIO_EXTENSIONS = frozenset({"wav", "flac", "ogg", "opus", "mp3", "m4a", "aac"})
VIDEO_EXTENSIONS = frozenset({"mp4", "mov", "mkv", "webm", "avi"})
TEXT_EXTENSIONS = frozenset({"txt", "md"})

#: The formats each sensor kind accepts under a folder or infix convention.
SENSOR_EXTENSIONS: dict[InputKind, frozenset[str]] = {
    InputKind.DEPTH: frozenset({"png", "tif", "tiff", "npy"}),
    InputKind.THERMAL: IMAGE_EXTENSIONS | {"npy"},
    InputKind.IMU: frozenset({"csv", "npy"}),
}

_CONVENTION_NAMES: dict[str, InputKind] = {kind.value: kind for kind in SENSOR_EXTENSIONS}

_EXTENSION_KINDS: dict[str, InputKind] = {
    **{ext: InputKind.IMAGE for ext in IMAGE_EXTENSIONS},
    **{ext: InputKind.AUDIO for ext in AUDIO_EXTENSIONS},
    **{ext: InputKind.VIDEO for ext in VIDEO_EXTENSIONS},
    **{ext: InputKind.TEXT for ext in TEXT_EXTENSIONS},
}


@dataclass(frozen=True)
class DiscoveredFile:
    """One file to ingest, as found by the scan."""

    path: Path  # absolute and normalised, symlinks not resolved
    kind: InputKind
    size_bytes: int
    mtime: float  # st_mtime of the file (of the target for a symlink), seconds since the epoch


@dataclass
class ScanStats:
    """Counts filled in while a scan is consumed; final once the generator is exhausted."""

    files_found: int = 0
    hidden_skipped: int = 0
    unknown_skipped: int = 0
    loops_skipped: int = 0
    dirs_scanned: int = 0
    #: Every unreadable entry, including those past the cap on ``unreadable``.
    unreadable_count: int = 0
    #: ``(path, reason)`` for the first ``MAX_UNREADABLE_REPORTED`` unreadable entries.
    unreadable: list[tuple[str, str]] = field(default_factory=list)
    #: Files found per ``InputKind`` value.
    by_kind: dict[str, int] = field(default_factory=dict)

    def record_unreadable(self, path: str, reason: str) -> None:
        """Count an entry the scan could not read and keep its reason while under the cap."""
        self.unreadable_count += 1
        if len(self.unreadable) < MAX_UNREADABLE_REPORTED:
            self.unreadable.append((path, reason))
        logger.debug("cannot read %s: %s", path, reason)

    def record_file(self, kind: InputKind) -> None:
        """Count one discovered file of ``kind``."""
        self.files_found += 1
        self.by_kind[kind.value] = self.by_kind.get(kind.value, 0) + 1


def _split_extension(name: str) -> tuple[str, str]:
    """``("scan01.depth", "png")`` for ``scan01.depth.PNG``; no extension for ``.bashrc``."""
    stem, dot, ext = name.rpartition(".")
    if not dot or not stem:
        return name, ""
    return stem, ext.lower()


def _folder_kinds(dir_names: Sequence[str]) -> tuple[InputKind, ...]:
    """Convention kinds of the directories ``dir_names`` (outermost first), nearest first."""
    kinds = (_CONVENTION_NAMES.get(name.lower()) for name in reversed(dir_names))
    return tuple(kind for kind in kinds if kind is not None)


def _child_folder_kinds(name: str, parent_kinds: tuple[InputKind, ...]) -> tuple[InputKind, ...]:
    """Folder kinds for the entries of subdirectory ``name`` of a directory with ``parent_kinds``."""
    kind = _CONVENTION_NAMES.get(name.lower())
    return parent_kinds if kind is None else (kind, *parent_kinds)


def _classify_name(
    name: str, folder_kinds: tuple[InputKind, ...], forced: InputKind | None
) -> InputKind | None:
    """The kind of a file called ``name`` inside folders whose conventions are ``folder_kinds``."""
    if forced is not None:
        return forced
    stem, ext = _split_extension(name)
    if not ext:
        return None
    _, _, infix = stem.rpartition(".")
    infix_kind = _CONVENTION_NAMES.get(infix.lower()) if infix != stem else None
    for kind in (infix_kind, *folder_kinds):
        if kind is not None and ext in SENSOR_EXTENSIONS[kind]:
            return kind
    return _EXTENSION_KINDS.get(ext)


def classify_path(path: str | Path, forced: InputKind | None = None) -> InputKind | None:
    """Return the kind of the file at ``path``, or ``None`` when it is not ingestible.

    Pure string rules, no file system access: see the module docstring for the rules and their
    precedence. Folder conventions are read from ``path``'s parent directory names as given, so
    pass an absolute path to take every enclosing folder into account. Hidden names are not
    rejected here; the scan skips them before classifying.
    """
    path = Path(path)
    return _classify_name(path.name, _folder_kinds(path.parent.parts), forced)


def _normalise(root: str | os.PathLike[str]) -> Path:
    """Absolute, lexically normalised (``..`` and ``.`` collapsed), ``~`` expanded, unresolved."""
    return Path(os.path.abspath(os.path.expanduser(os.fspath(root))))


def validate_roots(roots: Sequence[str | os.PathLike[str]] | str | os.PathLike[str]) -> list[Path]:
    """Normalise ``roots`` and check that each is an existing file or directory.

    A single path is accepted as a one-element sequence (a bare ``str`` is not split into
    characters). Raises ``ConfigError`` for the first root that does not exist (a broken symlink
    counts as missing) or that is neither a regular file nor a directory.
    """
    if isinstance(roots, (str, os.PathLike)):
        roots = [roots]
    checked: list[Path] = []
    for root in roots:
        path = _normalise(root)
        try:
            mode = os.stat(path).st_mode
        except FileNotFoundError:
            raise ConfigError(
                f"{path} does not exist; give existing files or folders to ingest"
            ) from None
        except OSError as exc:
            raise ConfigError(f"cannot access {path}: {exc.strerror or exc}") from exc
        if not (stat.S_ISDIR(mode) or stat.S_ISREG(mode)):
            raise ConfigError(
                f"{path} is neither a regular file nor a folder (a FIFO, socket or device?); "
                "give files or folders to ingest"
            )
        checked.append(path)
    return checked


@dataclass
class _Frame:
    """One open directory on the scan stack: its remaining entries, sorted by name."""

    entries: Iterator[os.DirEntry[str]]
    folder_kinds: tuple[InputKind, ...]


def _open_dir(
    path: str,
    folder_kinds: tuple[InputKind, ...],
    visited: set[tuple[int, int]],
    stats: ScanStats,
) -> _Frame | None:
    """List ``path`` unless it was already visited or cannot be read (both are counted)."""
    try:
        target = os.stat(path)  # follows symlinks: the identity of the real directory
        key = (target.st_dev, target.st_ino)
        if key in visited:
            stats.loops_skipped += 1
            logger.debug("skipping %s: directory already scanned (symlink loop or duplicate)", path)
            return None
        visited.add(key)
        with os.scandir(path) as scan:
            entries = sorted(scan, key=attrgetter("name"))
    except OSError as exc:
        stats.record_unreadable(path, exc.strerror or str(exc))
        return None
    stats.dirs_scanned += 1
    return _Frame(iter(entries), folder_kinds)


def _broken_link_reason(path: str) -> str:
    """Why a symlink that resolves to nothing cannot be read, naming its target."""
    try:
        return f"broken symlink to {os.readlink(path)!r}"
    except OSError as exc:
        return f"unreadable symlink: {exc.strerror or exc}"


def _discover_entry(
    entry: os.DirEntry[str],
    folder_kinds: tuple[InputKind, ...],
    forced: InputKind | None,
    stats: ScanStats,
) -> DiscoveredFile | None:
    """The file ``entry`` names (not a directory) if it is ingestible; otherwise count why not."""
    try:
        is_file = entry.is_file()  # follows symlinks; False for a broken one
    except OSError as exc:
        stats.record_unreadable(entry.path, exc.strerror or str(exc))
        return None
    if not is_file:
        if entry.is_symlink():
            stats.record_unreadable(entry.path, _broken_link_reason(entry.path))
        else:
            stats.unknown_skipped += 1  # FIFO, socket or device
        return None
    kind = _classify_name(entry.name, folder_kinds, forced)
    if kind is None:
        stats.unknown_skipped += 1
        return None
    try:
        info = entry.stat()
    except OSError as exc:
        stats.record_unreadable(entry.path, exc.strerror or str(exc))
        return None
    stats.record_file(kind)
    return DiscoveredFile(Path(entry.path), kind, info.st_size, info.st_mtime)


def _walk_dir(
    root: Path,
    forced: InputKind | None,
    visited: set[tuple[int, int]],
    stats: ScanStats,
) -> Iterator[DiscoveredFile]:
    """Yield the ingestible files under directory ``root``, depth first in name order."""
    stack: list[_Frame] = []
    frame = _open_dir(str(root), _folder_kinds(root.parts), visited, stats)
    if frame is not None:
        stack.append(frame)
    while stack:
        frame = stack[-1]
        entry = next(frame.entries, None)
        if entry is None:
            stack.pop()
            continue
        if entry.name.startswith("."):
            stats.hidden_skipped += 1
            continue
        try:
            is_dir = entry.is_dir()  # follows symlinks; raises for a self-referencing link
        except OSError as exc:
            stats.record_unreadable(entry.path, exc.strerror or str(exc))
            continue
        if is_dir:
            kinds = _child_folder_kinds(entry.name, frame.folder_kinds)
            child = _open_dir(entry.path, kinds, visited, stats)
            if child is not None:
                stack.append(child)
            continue
        found = _discover_entry(entry, frame.folder_kinds, forced, stats)
        if found is not None:
            yield found


def _discover_root_file(
    root: Path, forced: InputKind | None, stats: ScanStats
) -> DiscoveredFile | None:
    """The root ``root`` (a file) if it is ingestible; otherwise count why not."""
    kind = classify_path(root, forced)
    if kind is None:
        stats.unknown_skipped += 1
        return None
    try:
        info = os.stat(root)
    except OSError as exc:
        stats.record_unreadable(str(root), exc.strerror or str(exc))
        return None
    stats.record_file(kind)
    return DiscoveredFile(root, kind, info.st_size, info.st_mtime)


def _walk(
    roots: list[Path], forced: InputKind | None, stats: ScanStats
) -> Iterator[DiscoveredFile]:
    """Yield the files of every root in the order given, sharing one set of visited directories."""
    visited: set[tuple[int, int]] = set()
    for root in roots:
        if root.is_dir():
            yield from _walk_dir(root, forced, visited, stats)
            continue
        found = _discover_root_file(root, forced, stats)
        if found is not None:
            yield found
    logger.debug(
        "scan done: %d files, %d dirs, %d hidden, %d unknown, %d loops, %d unreadable",
        stats.files_found,
        stats.dirs_scanned,
        stats.hidden_skipped,
        stats.unknown_skipped,
        stats.loops_skipped,
        stats.unreadable_count,
    )


def iter_files(
    roots: Sequence[str | os.PathLike[str]] | str | os.PathLike[str],
    *,
    forced: InputKind | None = None,
    stats: ScanStats | None = None,
) -> Iterator[DiscoveredFile]:
    """Stream the ingestible files under ``roots`` (files or folders), lazily and in a fixed order.

    Every root is validated before this returns, so a missing root raises ``ConfigError`` at
    call time and nothing is yielded. Problems found while scanning are counted in ``stats`` (pass
    your own ``ScanStats`` to read them; they are complete once the iterator is exhausted) and
    never raised. ``forced`` gives every file that kind and accepts any extension; hidden entries
    are still skipped.
    """
    checked = validate_roots(roots)
    return _walk(checked, forced, ScanStats() if stats is None else stats)
