"""Splitting a reference checkpoint into one safetensors file per modality, and loading them.

The official ``imagebind_huge.pth`` is one 4.8 GB pickle: loading it to encode only text reads
every tower. :func:`prepare_modality_weights` converts it once into a directory

    <weights_dir>/converted/<stem>-<id>/{vision,text,audio,depth,thermal,imu}.safetensors
    <weights_dir>/converted/<stem>-<id>/manifest.json

and :func:`load_modality_state_dict` memory-maps only the towers asked for. Keys stay the
reference flat ``state_dict`` keys (``modality_{preprocessors,trunks,heads,postprocessors}.M.*``).
Every file is written under a temporary name and renamed into place, the manifest last: a
directory without a manifest is an interrupted conversion and is redone, never used.
"""

from __future__ import annotations

import errno
import hashlib
import json
import logging
import os
import uuid
import zipfile
from collections.abc import Callable, Iterable, Iterator, Mapping
from contextlib import contextmanager
from functools import partial
from pathlib import Path
from typing import Any

import torch
from torch import Tensor

from bindsearch import settings
from bindsearch.errors import WeightsError
from bindsearch.modality import MODALITIES, Modality
from bindsearch.models.digest import read_pinned_digest
from bindsearch.models.tensorfile import save_safetensors

logger = logging.getLogger(__name__)

MANIFEST_NAME = "manifest.json"
MANIFEST_FORMAT = 1
TOWER_PARTS = (
    "modality_preprocessors",
    "modality_trunks",
    "modality_heads",
    "modality_postprocessors",
)
_MODALITY_NAMES = frozenset(m.value for m in MODALITIES)
_DATA_PARALLEL_PREFIX = "module."
#: Marks the files as PyTorch tensors for tools that read safetensors metadata.
_FILE_METADATA = {"format": "pt"}

#: Reads tensors of a checkpoint: its keys and a getter (lazy, so one modality is in memory).
_Source = tuple[list[str], Callable[[str], Tensor]]


def modality_of_key(key: str) -> str | None:
    """The modality a reference ``state_dict`` key belongs to, or ``None``."""
    parts = key.split(".", 2)
    if len(parts) == 3 and parts[0] in TOWER_PARTS and parts[1] in _MODALITY_NAMES:
        return parts[1]
    return None


def split_by_modality(state_dict: Mapping[str, Tensor]) -> dict[str, dict[str, Tensor]]:
    """Group a flat reference ``state_dict`` by modality (in reference order, present ones only).

    A ``module.`` prefix (from ``DataParallel``) is dropped. Raises ``WeightsError`` for any key
    that belongs to no modality.
    """
    return {
        modality: {ref_key: state_dict[key] for key, ref_key in pairs}
        for modality, pairs in _group_keys(list(state_dict)).items()
    }


def convert_checkpoint(pth_path: Path, out_dir: Path) -> dict[str, Path]:
    """Write ``<modality>.safetensors`` per tower plus ``manifest.json`` into ``out_dir``.

    ``pth_path`` is a ``torch.save``d flat state_dict (or one wrapped under ``"model"`` /
    ``"state_dict"``), or a single flat ``.safetensors`` file. One tower's tensors are in memory
    at a time. Returns the written file of each modality present in the source.
    """
    pth_path, out_dir = Path(pth_path), Path(out_dir)
    try:
        out_dir.mkdir(parents=True, exist_ok=True)
        (out_dir / MANIFEST_NAME).unlink(missing_ok=True)
    except OSError as exc:
        raise _write_error(out_dir, exc) from exc
    identity = _source_identity(pth_path)
    written: dict[str, Path] = {}
    entries: dict[str, dict[str, Any]] = {}
    with _open_source(pth_path) as (keys, get):
        for modality, pairs in _group_keys(keys).items():
            tensors = {ref_key: get(key) for key, ref_key in pairs}
            path = out_dir / f"{modality}.safetensors"
            size = _atomic_write(path, partial(save_safetensors, tensors, metadata=_FILE_METADATA))
            written[modality] = path
            entries[modality] = _describe(path, size, tensors)
            del tensors
    for m in MODALITIES:  # a stale tower from an earlier conversion must not be picked up
        if m.value not in written:
            (out_dir / f"{m.value}.safetensors").unlink(missing_ok=True)
    manifest = {
        "format": MANIFEST_FORMAT,
        "bindsearch_version": _bindsearch_version(),
        "source": identity,
        "modalities": entries,
    }
    text = json.dumps(manifest, indent=2) + "\n"
    _atomic_write(out_dir / MANIFEST_NAME, lambda tmp: tmp.write_text(text, encoding="utf-8"))
    logger.info("converted %s into %s (%s)", pth_path, out_dir, ", ".join(written))
    return written


def prepare_modality_weights(pth_path: Path, cache_root: Path | None = None) -> Path:
    """The per-modality directory for checkpoint ``pth_path``, converting it on first use.

    ``pth_path`` may also be a directory of ``<modality>.safetensors`` files (returned as is) or
    a flat ``.safetensors`` file. Converted directories live under ``cache_root`` (default
    ``settings.weights_dir() / "converted"``), named by the source's stem and identity (its
    pinned sha256 when known, else its path, size and mtime), and are reused while their
    manifest matches the source.
    """
    pth_path = Path(pth_path).expanduser()
    if pth_path.is_dir():
        if not any((pth_path / f"{m.value}.safetensors").is_file() for m in MODALITIES):
            raise WeightsError(
                f"{pth_path} is a directory without any <modality>.safetensors file; pass a "
                "checkpoint file or a directory written by convert_checkpoint"
            )
        return pth_path
    if not pth_path.is_file():
        raise WeightsError(f"checkpoint {pth_path} does not exist")
    identity = _source_identity(pth_path)
    root = cache_root if cache_root is not None else settings.weights_dir() / "converted"
    out_dir = Path(root) / f"{pth_path.stem}-{_identity_key(pth_path, identity)}"
    if _manifest_matches(out_dir, identity):
        return out_dir
    logger.info("converting %s into per-modality files in %s (once)", pth_path, out_dir)
    convert_checkpoint(pth_path, out_dir)
    return out_dir


def load_modality_state_dict(
    converted_dir: Path,
    modalities: Iterable[str | Modality],
    *,
    device: str | torch.device = "cpu",
) -> dict[str, Tensor]:
    """Reference-keyed tensors of ``modalities`` only, read from ``converted_dir``.

    Opens just ``<modality>.safetensors`` of each requested tower (memory-mapped by
    ``safe_open``) and places the tensors on ``device``. Raises ``WeightsError`` when a file is
    missing or unreadable.
    """
    from safetensors import SafetensorError, safe_open

    converted_dir = Path(converted_dir)
    state: dict[str, Tensor] = {}
    for modality in dict.fromkeys(Modality.parse(m).value for m in modalities):
        path = converted_dir / f"{modality}.safetensors"
        if not path.is_file():
            raise WeightsError(
                f"{path} is missing: the checkpoint has no {modality} tower or its conversion "
                f"was interrupted. Delete {converted_dir} to convert the checkpoint again"
            )
        try:
            with safe_open(str(path), framework="pt", device=str(device)) as f:
                for key in f.keys():
                    state[key] = f.get_tensor(key)
        except (SafetensorError, OSError) as exc:
            raise WeightsError(
                f"cannot read {path} ({exc}); delete {converted_dir} to convert the checkpoint "
                "again"
            ) from exc
    return state


def _group_keys(keys: Iterable[str]) -> dict[str, list[tuple[str, str]]]:
    """``{modality: [(source key, reference key)]}`` in reference modality order."""
    groups: dict[str, list[tuple[str, str]]] = {m.value: [] for m in MODALITIES}
    unknown: list[str] = []
    for key in keys:
        ref_key = key.removeprefix(_DATA_PARALLEL_PREFIX)
        modality = modality_of_key(ref_key)
        if modality is None:
            unknown.append(key)
        else:
            groups[modality].append((key, ref_key))
    if unknown:
        shown = ", ".join(repr(k) for k in unknown[:5])
        more = f" and {len(unknown) - 5} more" if len(unknown) > 5 else ""
        raise WeightsError(
            f"checkpoint keys {shown}{more} belong to no ImageBind modality; expected keys "
            f"starting with {'/'.join(TOWER_PARTS)}.<modality>. Is this an ImageBind checkpoint?"
        )
    return {m: pairs for m, pairs in groups.items() if pairs}


@contextmanager
def _open_source(path: Path) -> Iterator[_Source]:
    """Keys and a tensor getter for a ``.pth`` or flat ``.safetensors`` checkpoint."""
    if path.suffix == ".safetensors":
        from safetensors import SafetensorError, safe_open

        try:
            with safe_open(str(path), framework="pt", device="cpu") as f:
                yield list(f.keys()), f.get_tensor
        except SafetensorError as exc:
            raise WeightsError(f"cannot read safetensors checkpoint {path}: {exc}") from exc
        return
    state = _unwrap(_torch_load(path), path)
    yield list(state), state.__getitem__


def _torch_load(path: Path) -> Any:
    """``torch.load`` without executing pickled code; memory-mapped for zip-format files."""
    mmap = zipfile.is_zipfile(path)  # the legacy (pre-1.6) format cannot be memory-mapped
    try:
        return torch.load(path, map_location="cpu", weights_only=True, mmap=mmap)
    except Exception as exc:  # torch.load raises many types for corrupt or foreign files
        raise WeightsError(
            f"cannot read checkpoint {path} ({type(exc).__name__}: {exc}); it is truncated, "
            "corrupt or not a PyTorch state_dict. Delete it to download it again"
        ) from exc


def _unwrap(obj: Any, path: Path) -> Mapping[str, Tensor]:
    """The flat state_dict inside ``obj`` (itself, or under ``"model"`` / ``"state_dict"``)."""
    if isinstance(obj, Mapping) and not any(
        isinstance(k, str) and modality_of_key(k.removeprefix(_DATA_PARALLEL_PREFIX)) for k in obj
    ):
        for wrapper in ("model", "state_dict"):
            if isinstance(obj.get(wrapper), Mapping):
                obj = obj[wrapper]
                break
    if not isinstance(obj, Mapping):
        raise WeightsError(f"checkpoint {path} holds a {type(obj).__name__}, not a state_dict")
    return obj


def _atomic_write(path: Path, write: Callable[[Path], object]) -> int:
    """Run ``write(tmp)`` on a unique temporary name next to ``path``, then rename it into place."""
    tmp = path.with_name(f".{path.name}.{os.getpid()}.{uuid.uuid4().hex[:8]}.tmp")
    try:
        write(tmp)
        os.replace(tmp, path)
    except OSError as exc:
        raise _write_error(path, exc) from exc
    finally:
        tmp.unlink(missing_ok=True)
    return path.stat().st_size


def _describe(path: Path, size: int, tensors: Mapping[str, Tensor]) -> dict[str, Any]:
    dtypes: dict[str, int] = {}
    for t in tensors.values():
        name = str(t.dtype).removeprefix("torch.")
        dtypes[name] = dtypes.get(name, 0) + 1
    return {"file": path.name, "size": size, "num_keys": len(tensors), "dtypes": dtypes}


def _source_identity(path: Path) -> dict[str, Any]:
    """What identifies a source file: size, mtime and its pinned sha256 if still valid."""
    st = path.stat()
    pinned = read_pinned_digest(path)
    fresh = pinned is not None and (pinned.size, pinned.mtime_ns) == (st.st_size, st.st_mtime_ns)
    return {
        "path": str(path.resolve()),
        "size": st.st_size,
        "mtime_ns": st.st_mtime_ns,
        "sha256": pinned.sha256 if fresh and pinned is not None else None,
    }


def _identity_key(path: Path, identity: Mapping[str, Any]) -> str:
    """16 hex digits naming a converted directory."""
    if identity["sha256"]:
        return str(identity["sha256"])[:16]
    # Without a digest, checkpoints of one architecture all have the same size, so the path
    # is part of the identity, not only size and mtime.
    raw = f"{identity['path']}\0{identity['size']}\0{identity['mtime_ns']}"
    return hashlib.sha256(raw.encode("utf-8")).hexdigest()[:16]


def _manifest_matches(out_dir: Path, identity: Mapping[str, Any]) -> bool:
    """Whether ``out_dir`` holds a complete conversion of the source described by ``identity``."""
    try:
        manifest = json.loads((out_dir / MANIFEST_NAME).read_text(encoding="utf-8"))
        source = manifest["source"]
        entries = manifest["modalities"]
        if manifest["format"] != MANIFEST_FORMAT:
            return False
        if identity["sha256"] and source.get("sha256") == identity["sha256"]:
            same_source = True
        else:
            same_source = (source["size"], source["mtime_ns"]) == (
                identity["size"],
                identity["mtime_ns"],
            )
        return same_source and all(
            (out_dir / e["file"]).stat().st_size == e["size"] for e in entries.values()
        )
    except (OSError, ValueError, KeyError, TypeError):  # absent or damaged: convert again
        return False


def _write_error(path: Path, exc: OSError) -> WeightsError:
    if exc.errno in (errno.ENOSPC, errno.EDQUOT):
        return WeightsError(
            f"disk full while writing {path}; free space or set BINDSEARCH_HOME to a larger disk "
            "(converting a checkpoint needs about as much free space as the checkpoint)"
        )
    return WeightsError(f"cannot write {path}: {exc}")


def _bindsearch_version() -> str:
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version("bindsearch")
    except PackageNotFoundError:
        return "unknown"
