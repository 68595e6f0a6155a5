"""What a benchmark loader returns, and the file helpers the loaders share.

A loader only parses annotation files and finds media on disk; it never decodes media, so it
can be tested without codecs, and the runner feeds the files it found to the normal ingest.
"""

from __future__ import annotations

import csv
import io
import os
import unicodedata
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from bindsearch.errors import DatasetError

#: Encodings tried in order for annotation files: UTF-8 (a BOM dropped), then Latin-1 (the
#: Clotho metadata files are ISO-8859-1; Latin-1 decodes any byte, so it is the last resort).
TEXT_ENCODINGS = ("utf-8-sig", "latin-1")


@dataclass(frozen=True)
class Query:
    """One text query and the key of the media item it describes."""

    text: str
    key: str


@dataclass
class MediaSet:
    """Media files of a dataset: ``files`` maps a dataset key to an existing file (in
    dataset order); ``missing`` names the expected files that were not found."""

    name: str
    media_root: Path
    files: dict[str, Path]
    missing: list[str] = field(default_factory=list)
    #: Loader facts for the report: annotation file, encoding, template, counts, subset.
    details: dict[str, Any] = field(default_factory=dict)


@dataclass
class RetrievalSet(MediaSet):
    """A text-to-media retrieval benchmark: ``queries`` in annotation order, every caption
    its own query; ``kind`` is the ingest kind of the media (``audio`` or ``video``)."""

    queries: list[Query] = field(default_factory=list)
    kind: str = "audio"


@dataclass
class ClassificationSet(MediaSet):
    """A zero-shot classification benchmark.

    ``class_names[c]`` holds the names of class ``c`` fed to the prompt templates (a class
    with several names scores as the max cosine over them, as ImageBind did for NYU-D
    "other"); ``labels[key]`` the classes of an item (one for single-label sets);
    ``folds[key]`` its fold where the set has folds. ``kind`` is the ingest kind.
    """

    class_names: list[list[str]] = field(default_factory=list)
    labels: dict[str, tuple[int, ...]] = field(default_factory=dict)
    folds: dict[str, int] = field(default_factory=dict)
    multi_label: bool = False
    kind: str = "audio"


def read_text(path: Path) -> tuple[str, str]:
    """A text file's content and the encoding that decoded it (see :data:`TEXT_ENCODINGS`)."""
    try:
        data = path.read_bytes()
    except OSError as exc:
        raise DatasetError(f"cannot read {path}: {exc.strerror or exc}") from exc
    for encoding in TEXT_ENCODINGS:
        try:
            return data.decode(encoding), encoding
        except UnicodeDecodeError:
            continue
    raise DatasetError(f"{path} is not text")  # unreachable: latin-1 decodes any byte


def read_csv(
    path: Path, required: Sequence[str], *, delimiter: str = ","
) -> tuple[list[dict[str, str]], str]:
    """Rows of a CSV file with a header (a real CSV parser: quoted commas and quotes work),
    and the encoding used. Raises ``DatasetError`` naming the missing columns."""
    text, encoding = read_text(path)
    reader = csv.DictReader(io.StringIO(text, newline=""), delimiter=delimiter)
    header = [h.strip() for h in reader.fieldnames or []]
    reader.fieldnames = header
    missing = [c for c in required if c not in header]
    if missing:
        raise DatasetError(
            f"{path}: missing column(s) {', '.join(missing)}; found {', '.join(header) or 'none'}"
            f" (expected {', '.join(required)})"
        )
    return [dict(row) for row in reader], encoding


def find_file(data_dir: Path, candidates: Iterable[str], what: str, given: Path | None) -> Path:
    """``given`` if set, else the first of ``candidates`` (relative to ``data_dir``) that
    exists; ``DatasetError`` naming every place looked at otherwise."""
    if given is not None:
        if not Path(given).is_file():
            raise DatasetError(f"{what} {given} does not exist")
        return Path(given)
    tried = [data_dir / c for c in candidates]
    for path in tried:
        if path.is_file():
            return path
    raise DatasetError(
        f"no {what} found under {data_dir}; looked for " + ", ".join(str(p) for p in tried)
    )


def check_data_dir(data_dir: Path) -> Path:
    """``data_dir`` as an absolute path, or ``DatasetError`` if it is not a folder."""
    path = Path(os.path.abspath(os.path.expanduser(os.fspath(data_dir))))
    if not path.is_dir():
        raise DatasetError(f"dataset folder {path} does not exist")
    return path


def existing(folder: Path, name: str) -> Path | None:
    """``folder / name`` if it exists, also under the other Unicode normalisation of ``name``
    (archives extracted on macOS store decomposed names)."""
    for form in (name, unicodedata.normalize("NFC", name), unicodedata.normalize("NFD", name)):
        path = folder / form
        if path.is_file():
            return Path(os.path.abspath(path))
    return None


def pick_media_dir(
    data_dir: Path, candidates: Sequence[str], names: Sequence[str], given: Path | None
) -> Path:
    """The media folder: ``given`` if set, else the candidate (relative to ``data_dir``)
    holding most of ``names`` (the first one on a draw, ``data_dir`` itself if none exists)."""
    if given is not None:
        folder = Path(os.path.abspath(os.path.expanduser(os.fspath(given))))
        if not folder.is_dir():
            raise DatasetError(f"media folder {folder} does not exist")
        return folder
    folders = [data_dir / c for c in candidates if (data_dir / c).is_dir()]
    if not folders:
        return data_dir
    sample = list(names)[:200]  # enough to tell the right folder from a wrong one
    return max(folders, key=lambda f: sum(existing(f, n) is not None for n in sample))


def locate(folder: Path, names: dict[str, str]) -> tuple[dict[str, Path], list[str]]:
    """Files for ``names`` (key -> file name relative to ``folder``) that exist, in order,
    and the names of those that do not."""
    found: dict[str, Path] = {}
    missing: list[str] = []
    for key, name in names.items():
        path = existing(folder, name)
        if path is None:
            missing.append(name)
        else:
            found[key] = path
    return found, missing


def label_name(raw: str) -> str:
    """A class name as prompt text: underscores as spaces, whitespace collapsed."""
    return " ".join(raw.replace("_", " ").split())


__all__ = [
    "ClassificationSet",
    "MediaSet",
    "Query",
    "RetrievalSet",
    "TEXT_ENCODINGS",
    "check_data_dir",
    "existing",
    "find_file",
    "label_name",
    "locate",
    "pick_media_dir",
    "read_csv",
    "read_text",
]
