"""The sidecar's manifest and its crash-safe layout on disk.

Layout, inside the index directory (next to LanceDB's ``*.lance`` tables)::

    faiss/
      manifest.json            the current build: what it covers and which generation holds it
      <generation>/index.faiss the FAISS index; labels are 0..n_labels-1
      <generation>/ids.arrow   the label map: row ``label`` holds that label's ``id``,
                               ``ingested_at`` and ``state`` (see :mod:`bindsearch.indexes.labels`)

Every build or refresh writes a new generation into a hidden temporary directory, renames it
into place, then replaces ``manifest.json`` with :func:`os.replace` — the one atomic step. A
crash at any point leaves either the old manifest pointing at a complete old generation, or the
new one pointing at a complete new generation; never a half index. The generation a new
manifest replaces is kept (a reader that read the old manifest can still open its files); older
ones and leftover temporary directories are deleted.
"""

from __future__ import annotations

import json
import logging
import os
import shutil
import tempfile
import uuid
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path
from typing import Any

from bindsearch.errors import VectorIndexError

logger = logging.getLogger(__name__)

SIDECAR_DIR = "faiss"
MANIFEST_FILE = "manifest.json"
INDEX_FILE = "index.faiss"
LABELS_FILE = "ids.arrow"
#: Bumped when the layout or the meaning of a manifest field changes.
FORMAT_VERSION = 1
#: Vectors are unit vectors, so inner product is cosine similarity.
METRIC = "inner_product"
_TMP_PREFIX = ".tmp-"


@dataclass
class IndexManifest:
    """What a FAISS sidecar covers and how it was built.

    ``table_version`` is the ``items`` table version whose rows the index holds exactly;
    ``count`` the live rows it covers (``n_labels`` counts labels ever assigned, including
    ``n_deleted`` rows deleted since the build that are still inside the FAISS structure and
    excluded at search time). ``recall_at_10`` is measured against exact search on
    ``query_rows`` held-out stored vectors with ``search_params`` (nprobe, efSearch,
    k_factor); ``None`` only if no measurement was possible. ``factory_auto`` says whether the
    factory came from :func:`~bindsearch.indexes.choose.choose_factory`. ``candidates``: when
    the build raced several factories, each one's tuned ``search_params``, ``recall_at_10``,
    measured ``qps_single``/``qps_batch`` on the held-out queries, ``build_seconds``,
    estimated ``index_bytes`` and whether it was ``chosen`` (empty when only one was built).
    """

    table_version: int
    model: str
    weights_id: str
    factory: str
    metric: str
    dim: int
    count: int
    build_seconds: float
    recall_at_10: float | None
    search_params: dict[str, int]
    built_at: str
    recall_target: float = 0.95
    factory_auto: bool = True
    memory_bytes: int | None = None
    n_labels: int = 0
    n_deleted: int = 0
    index_bytes: int = 0
    train_rows: int = 0
    query_rows: int = 0
    build_device: str = "cpu"
    faiss_version: str = ""
    updated_at: str = ""
    generation: str = ""
    format_version: int = FORMAT_VERSION
    extra: dict[str, Any] = field(default_factory=dict)
    candidates: list[dict[str, Any]] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        """Return the manifest as JSON-ready data."""
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> IndexManifest:
        """Read a manifest, ignoring fields this version does not know."""
        known = {f.name for f in fields(cls)}
        try:
            return cls(**{key: value for key, value in data.items() if key in known})
        except TypeError as exc:
            raise VectorIndexError(f"FAISS manifest is missing fields: {exc}") from exc


def incompatibility(manifest: IndexManifest, info: dict[str, str] | None) -> str | None:
    """Why ``manifest``'s index cannot serve a table with model ``info``; ``None`` if it can."""
    if info is None:
        return "the index directory records no model"
    theirs = (info.get("model"), info.get("weights_id"), str(info.get("dim")))
    ours = (manifest.model, manifest.weights_id, str(manifest.dim))
    if theirs == ours:
        return None
    return (
        f"the FAISS index holds vectors of model {ours[0]!r} (weights {ours[1]!r}, dim {ours[2]}) "
        f"but the table holds {theirs[0]!r} (weights {theirs[1]!r}, dim {theirs[2]})"
    )


def sidecar_dir(index_dir: Path) -> Path:
    """The FAISS sidecar directory of an index directory."""
    return Path(index_dir) / SIDECAR_DIR


def read_manifest(index_dir: Path) -> IndexManifest | None:
    """Return the current manifest, or ``None`` if no FAISS index was ever built here."""
    path = sidecar_dir(index_dir) / MANIFEST_FILE
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        return None
    except OSError as exc:
        raise VectorIndexError(f"cannot read the FAISS manifest {path}: {exc}") from exc
    try:
        data = json.loads(text)
    except json.JSONDecodeError as exc:
        raise VectorIndexError(
            f"FAISS manifest {path} is not valid JSON ({exc}); rebuild with `bindsearch index build`"
        ) from exc
    manifest = IndexManifest.from_dict(data)
    if manifest.format_version > FORMAT_VERSION:
        raise VectorIndexError(
            f"FAISS sidecar {path.parent} has format {manifest.format_version}, newer than this "
            f"bindsearch reads ({FORMAT_VERSION}); upgrade bindsearch or rebuild the index"
        )
    return manifest


def generation_dir(index_dir: Path, manifest: IndexManifest) -> Path:
    """The directory holding the files of ``manifest``'s generation."""
    if not manifest.generation or "/" in manifest.generation or manifest.generation[0] == ".":
        raise VectorIndexError(f"FAISS manifest names no valid generation: {manifest.generation!r}")
    return sidecar_dir(index_dir) / manifest.generation


def new_generation(index_dir: Path) -> tuple[str, Path]:
    """Create an empty temporary directory for a new generation; return its name and path."""
    root = sidecar_dir(index_dir)
    try:
        root.mkdir(exist_ok=True)
    except OSError as exc:
        raise VectorIndexError(f"cannot create the FAISS sidecar directory {root}: {exc}") from exc
    name = uuid.uuid4().hex[:16]
    return name, Path(tempfile.mkdtemp(prefix=f"{_TMP_PREFIX}{name}-", dir=root))


def commit_generation(index_dir: Path, tmp_dir: Path, manifest: IndexManifest) -> None:
    """Move ``tmp_dir`` into place as ``manifest.generation`` and make it current, atomically."""
    root = sidecar_dir(index_dir)
    previous = read_manifest(index_dir)
    final = generation_dir(index_dir, manifest)
    try:
        _fsync_dir_files(tmp_dir)
        os.replace(tmp_dir, final)
        _write_json_atomic(root / MANIFEST_FILE, manifest.to_dict())
    except OSError as exc:
        raise VectorIndexError(f"cannot write the FAISS sidecar in {root}: {exc}") from exc
    keep = {manifest.generation, MANIFEST_FILE}
    if previous is not None:
        keep.add(previous.generation)
    _remove_stale(root, keep)


def write_manifest(index_dir: Path, manifest: IndexManifest) -> None:
    """Replace the current manifest (same generation, e.g. a newer ``table_version``)."""
    path = sidecar_dir(index_dir) / MANIFEST_FILE
    try:
        _write_json_atomic(path, manifest.to_dict())
    except OSError as exc:
        raise VectorIndexError(f"cannot write the FAISS manifest {path}: {exc}") from exc


def discard_generation(tmp_dir: Path) -> None:
    """Delete a temporary generation after a failed build."""
    shutil.rmtree(tmp_dir, ignore_errors=True)


def _write_json_atomic(path: Path, data: dict[str, Any]) -> None:
    tmp = path.with_name(f"{_TMP_PREFIX}{path.name}.{uuid.uuid4().hex[:8]}")
    with open(tmp, "w", encoding="utf-8") as handle:
        json.dump(data, handle, indent=2, sort_keys=True)
        handle.write("\n")
        handle.flush()
        os.fsync(handle.fileno())
    os.replace(tmp, path)


def _fsync_dir_files(directory: Path) -> None:
    for child in directory.iterdir():
        with open(child, "rb") as handle:
            os.fsync(handle.fileno())


def _remove_stale(root: Path, keep: set[str]) -> None:
    for child in root.iterdir():
        if child.name in keep:
            continue
        try:
            if child.is_dir():
                shutil.rmtree(child)
            else:
                child.unlink()
        except OSError as exc:  # a leftover costs disk only; the next commit retries
            logger.warning("could not remove stale FAISS sidecar entry %s: %s", child, exc)
