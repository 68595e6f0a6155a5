"""SHA-256 digests of weights files and the sidecars that pin them.

A checkpoint whose publisher states no digest is pinned on its first complete download: its
SHA-256 is written next to it in ``<file>.sha256`` as JSON ``{"sha256", "size", "mtime_ns"}``.
Later uses compare the file's size and mtime with the recorded ones and re-hash (seconds for a
multi-GB file) only when they differ, so a file that was replaced or modified in place is caught
without hashing gigabytes on every start. A change that keeps both size and mtime (a deliberate
``touch -d`` after editing) is not caught; that is the price of the cheap check.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import re
from dataclasses import asdict, dataclass
from pathlib import Path

from bindsearch.errors import ChecksumError, WeightsError

logger = logging.getLogger(__name__)

SIDECAR_SUFFIX = ".sha256"
HASH_CHUNK_BYTES = 8 << 20
_HEX64 = re.compile(r"^[0-9a-fA-F]{64}$")


@dataclass(frozen=True)
class PinnedDigest:
    """A file's SHA-256 together with the size and mtime it had when it was hashed."""

    sha256: str
    size: int
    mtime_ns: int


def file_sha256(path: str | Path, *, chunk_bytes: int = HASH_CHUNK_BYTES) -> str:
    """Hex SHA-256 of the file at ``path``, computed by streaming it (constant memory)."""
    hasher = hashlib.sha256()
    update_hash_from_file(hasher, Path(path), chunk_bytes=chunk_bytes)
    return hasher.hexdigest()


def update_hash_from_file(
    hasher: hashlib._Hash, path: Path, *, chunk_bytes: int = HASH_CHUNK_BYTES
) -> int:
    """Feed the whole file at ``path`` into ``hasher``; return the number of bytes read."""
    count = 0
    with open(path, "rb") as f:
        while chunk := f.read(chunk_bytes):
            hasher.update(chunk)
            count += len(chunk)
    return count


def sidecar_path(path: Path) -> Path:
    """Where the pinned digest of ``path`` is recorded."""
    return path.with_name(path.name + SIDECAR_SUFFIX)


def read_pinned_digest(path: Path) -> PinnedDigest | None:
    """The digest pinned for ``path``, or ``None`` when no sidecar exists.

    A bare hex digest (as written by ``sha256sum``) is accepted too; it carries no size or mtime,
    so the file is re-hashed once and the sidecar rewritten as JSON.
    """
    sidecar = sidecar_path(path)
    try:
        text = sidecar.read_text(encoding="utf-8").strip()
    except FileNotFoundError:
        return None
    except OSError as exc:
        raise WeightsError(f"cannot read the digest sidecar {sidecar}: {exc}") from exc
    first_token = text.split()[0] if text else ""
    if _HEX64.match(first_token):
        return PinnedDigest(sha256=first_token.lower(), size=-1, mtime_ns=-1)
    try:
        data = json.loads(text)
        return PinnedDigest(
            sha256=str(data["sha256"]).lower(),
            size=int(data["size"]),
            mtime_ns=int(data["mtime_ns"]),
        )
    except (ValueError, KeyError, TypeError) as exc:
        raise WeightsError(
            f"the digest sidecar {sidecar} is unreadable ({exc}); delete it to pin the current "
            f"{path.name} again, or delete both files to download them again"
        ) from exc


def write_pinned_digest(path: Path, sha256: str) -> PinnedDigest:
    """Record ``sha256`` with the current size and mtime of ``path`` in its sidecar (atomically)."""
    st = path.stat()
    pinned = PinnedDigest(sha256=sha256.lower(), size=st.st_size, mtime_ns=st.st_mtime_ns)
    sidecar = sidecar_path(path)
    tmp = sidecar.with_name(f"{sidecar.name}.{os.getpid()}.tmp")
    tmp.write_text(json.dumps(asdict(pinned)) + "\n", encoding="utf-8")
    os.replace(tmp, sidecar)
    return pinned


def verify_pinned_digest(path: Path, *, expected_sha256: str | None = None) -> str | None:
    """Check ``path`` against its pinned digest and, if given, ``expected_sha256``.

    Re-hashes only when the file's size or mtime differ from the pinned ones (or when only
    ``expected_sha256`` is known, in which case the digest is pinned afterwards). Returns the
    file's digest when known, ``None`` when neither a sidecar nor an expected digest exists.
    Raises ``ChecksumError`` on a mismatch.
    """
    pinned = read_pinned_digest(path)
    st = path.stat()
    if pinned is not None and (pinned.size, pinned.mtime_ns) == (st.st_size, st.st_mtime_ns):
        digest = pinned.sha256
    elif pinned is not None:
        logger.info("%s changed size or mtime since it was pinned; re-hashing it", path)
        digest = file_sha256(path)
        if digest != pinned.sha256:
            raise ChecksumError(
                f"cached weights {path} no longer match the hash recorded at download "
                f"({pinned.sha256}, now {digest}); the file was modified or replaced. Delete it "
                "(and its .sha256 sidecar) to download it again"
            )
        write_pinned_digest(path, digest)
    elif expected_sha256 is not None:
        digest = file_sha256(path)
    else:
        return None
    if expected_sha256 is not None and digest != expected_sha256.lower():
        raise ChecksumError(
            f"weights {path} have sha256 {digest}, expected {expected_sha256.lower()}; "
            "delete the file to download it again"
        )
    if pinned is None:
        write_pinned_digest(path, digest)
    return digest
