"""Finding, downloading and verifying checkpoint files.

:func:`resolve_weights` turns a weights name into a local file: an explicit path, then
``$BINDSEARCH_WEIGHTS``, then the cache under ``settings.weights_dir()``, then a download.
:func:`download_file` is the resumable, verified download it uses (stdlib ``urllib`` only): bytes
go to ``<dest>.part``, an interrupted transfer resumes with an HTTP ``Range`` request, and the
file is renamed into place only after its size and digest check out.
"""

from __future__ import annotations

import errno
import hashlib
import http.client
import logging
import os
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import IO

from bindsearch import settings
from bindsearch.errors import ChecksumError, DownloadError, WeightsError
from bindsearch.models.digest import (
    file_sha256,
    update_hash_from_file,
    verify_pinned_digest,
    write_pinned_digest,
)
from bindsearch.models.weights import WeightsSpec, get_weights_spec

__all__ = ["download_file", "file_sha256", "resolve_weights"]

logger = logging.getLogger(__name__)

_USER_AGENT = "bindsearch (python-urllib)"
_HAVE_FILE_HINT = (
    "If you have the file, pass --weights PATH or set BINDSEARCH_WEIGHTS=PATH to use it."
)
_NO_NETWORK_HINT = (
    "Download it on a machine with network access and pass --weights PATH or set "
    "BINDSEARCH_WEIGHTS=PATH."
)


@dataclass(frozen=True)
class _Checks:
    """What a finished download must satisfy."""

    expected_size: int | None = None
    min_size: int | None = None
    sha256: str | None = None


@dataclass
class _Reply:
    """An open HTTP response (``None`` when the server answered 416) and where its body starts."""

    response: http.client.HTTPResponse | None
    start: int
    total: int | None


def resolve_weights(
    name: str | WeightsSpec,
    weights: str | Path | None = None,
    *,
    progress: bool = True,
    download: bool = True,
) -> Path:
    """Return a local checkpoint file for the weights ``name`` (a table name or a spec).

    Precedence: ``weights`` (an explicit path) > ``$BINDSEARCH_WEIGHTS`` > the cached file in
    ``settings.weights_dir()`` > a download into that cache (unless ``download`` is false).
    A cached file is checked against its pinned digest (see :mod:`bindsearch.models.digest`);
    explicit files are trusted as given. The licence notice is logged once per weights dir.
    Raises ``WeightsError`` (missing file, download disabled), ``DownloadError`` or
    ``ChecksumError``.
    """
    spec = name if isinstance(name, WeightsSpec) else get_weights_spec(name)
    cache_dir = settings.weights_dir()
    local = _local_weights(spec, weights, cache_dir)
    _emit_license_notice(spec, cache_dir)
    if local is not None:
        return local
    cached = cache_dir / spec.filename
    if not download:
        raise WeightsError(
            f"the {spec.name} weights are not in {cache_dir} and downloading is disabled. "
            f"Download {spec.url} yourself and pass --weights PATH or set "
            f"BINDSEARCH_WEIGHTS=PATH, or allow the download"
        )
    with _download_lock(cached):
        if cached.is_file():  # another process finished the download while we waited
            return _check_cached(spec, cached)
        logger.info("downloading %s weights from %s to %s", spec.name, spec.url, cached)
        checks = _Checks(spec.size_bytes, spec.min_size_bytes, spec.sha256)
        digest = _download(
            spec.url, cached, checks, progress=progress, chunk_bytes=1 << 20, timeout_s=60.0
        )
        write_pinned_digest(cached, digest)
    return cached


def _local_weights(spec: WeightsSpec, weights: str | Path | None, cache_dir: Path) -> Path | None:
    """The explicit, environment-named or cached file, or ``None`` when a download is needed."""
    if weights is not None:
        return _existing_file(Path(weights).expanduser(), "the weights file you passed")
    override = settings.weights_override()
    if override is not None:
        return _existing_file(override, f"${settings.WEIGHTS_ENV}")
    cached = cache_dir / spec.filename
    return _check_cached(spec, cached) if cached.is_file() else None


def _existing_file(path: Path, origin: str) -> Path:
    if not path.is_file():
        what = "is a directory" if path.is_dir() else "does not exist"
        raise WeightsError(f"{origin} {path} {what}; expected a checkpoint file")
    return path


def _check_cached(spec: WeightsSpec, path: Path) -> Path:
    """Verify a cached checkpoint's size bounds and pinned digest."""
    size = path.stat().st_size
    if (spec.size_bytes is not None and size != spec.size_bytes) or (
        spec.min_size_bytes is not None and size < spec.min_size_bytes
    ):
        raise WeightsError(
            f"cached weights {path} have {size:,} bytes, which cannot be the {spec.name} "
            "checkpoint (truncated?); delete the file to download it again"
        )
    verify_pinned_digest(path, expected_sha256=spec.sha256)
    return path


@contextmanager
def _download_lock(dest: Path) -> Iterator[None]:
    """Serialise downloads of one file across processes (POSIX; elsewhere a no-op)."""
    try:
        import fcntl
    except ImportError:  # Windows: concurrent first downloads are left to the user
        yield
        return
    try:
        dest.parent.mkdir(parents=True, exist_ok=True)
        lock = open(dest.with_name(dest.name + ".lock"), "a+b")
    except OSError as exc:
        raise _write_error(dest.parent, exc) from exc
    with lock:
        try:
            fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            logger.warning("another process is downloading %s; waiting for it", dest)
            fcntl.flock(lock, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(lock, fcntl.LOCK_UN)


def _emit_license_notice(spec: WeightsSpec, cache_dir: Path) -> None:
    """Log the spec's licence notice the first time its weights are used under ``cache_dir``."""
    marker = cache_dir / f".{spec.name}.license-notice"
    if marker.exists():
        return
    logger.warning("%s", spec.notice)
    try:
        cache_dir.mkdir(parents=True, exist_ok=True)
        marker.write_text(f"{spec.license} notice shown for {spec.name}\n", encoding="utf-8")
    except OSError as exc:  # a read-only cache only means the notice is shown again next time
        logger.debug("cannot record the licence notice in %s: %s", marker, exc)


def download_file(
    url: str,
    dest: Path,
    *,
    expected_size: int | None = None,
    min_size: int | None = None,
    sha256: str | None = None,
    progress: bool = True,
    chunk_bytes: int = 1 << 20,
    timeout_s: float = 60.0,
) -> Path:
    """Download ``url`` to ``dest``, resuming a previous partial download, and verify it.

    Bytes are written to ``dest`` + ``.part``; an existing part is resumed with a ``Range``
    request. The finished part is fsynced, checked against the server's length, ``expected_size``,
    ``min_size`` and ``sha256``, and only then renamed to ``dest``. A transfer cut midway keeps
    the part so that calling again resumes it. Raises ``DownloadError`` (unreachable host, HTTP
    error, disk full, cut or truncated transfer, wrong size) or ``ChecksumError`` (the part is
    deleted). ``timeout_s`` bounds each network wait, not the whole transfer.
    """
    checks = _Checks(expected_size, min_size, None if sha256 is None else sha256.lower())
    _download(
        url, Path(dest), checks, progress=progress, chunk_bytes=chunk_bytes, timeout_s=timeout_s
    )
    return Path(dest)


def _download(
    url: str, dest: Path, checks: _Checks, *, progress: bool, chunk_bytes: int, timeout_s: float
) -> str:
    """Body of :func:`download_file`; returns the file's hex SHA-256."""
    part = dest.with_name(dest.name + ".part")
    try:
        dest.parent.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise _write_error(dest.parent, exc) from exc
    if checks.expected_size is not None and _size(part) > checks.expected_size:
        part.unlink()
    hasher = hashlib.sha256()
    reply = _request(url, _size(part), timeout_s)
    if reply.response is None and not _part_complete(part, reply.total, checks):
        logger.info("server refused to resume %s; starting over", part)
        part.unlink()
        reply = _request(url, 0, timeout_s)
    if reply.start == 0:
        part.unlink(missing_ok=True)
    else:
        update_hash_from_file(hasher, part)
    if reply.response is not None:
        with reply.response as response:
            _stream(url, response, reply, part, hasher, progress=progress, chunk_bytes=chunk_bytes)
    digest = hasher.hexdigest()
    _verify(url, part, digest, checks)
    os.replace(part, dest)
    _fsync_dir(dest.parent)
    return digest


def _request(url: str, offset: int, timeout_s: float) -> _Reply:
    """Open ``url`` asking for bytes from ``offset`` on; map network failures to DownloadError."""
    headers = {"User-Agent": _USER_AGENT}
    if offset:
        headers["Range"] = f"bytes={offset}-"
    request = urllib.request.Request(url, headers=headers)
    try:
        response: http.client.HTTPResponse = urllib.request.urlopen(request, timeout=timeout_s)
    except urllib.error.HTTPError as exc:
        with exc:
            if exc.code == 416 and offset:
                return _Reply(None, offset, _content_range_total(exc.headers.get("Content-Range")))
        raise DownloadError(
            f"downloading {url} failed: HTTP {exc.code} {exc.reason}. {_HAVE_FILE_HINT}"
        ) from exc
    except urllib.error.URLError as exc:
        raise _unreachable(url, exc.reason) from exc
    except (OSError, http.client.HTTPException) as exc:
        raise _unreachable(url, exc) from exc
    length = _int_or_none(response.headers.get("Content-Length"))
    if response.status == 206:
        start = _content_range_start(response.headers.get("Content-Range"))
        if start != offset:
            response.close()
            if not offset:
                raise DownloadError(f"{url} answered a plain request with a partial response")
            logger.info("server resumed %s at byte %s, not %s; starting over", url, start, offset)
            return _request(url, 0, timeout_s)
        total = _content_range_total(response.headers.get("Content-Range"))
        return _Reply(response, offset, total if total is not None else _add(offset, length))
    if offset:
        logger.info("server ignored the Range request for %s; downloading from the start", url)
    return _Reply(response, 0, length)


def _stream(
    url: str,
    response: http.client.HTTPResponse,
    reply: _Reply,
    part: Path,
    hasher: hashlib._Hash,
    *,
    progress: bool,
    chunk_bytes: int,
) -> None:
    """Append ``response``'s body to ``part`` and ``hasher``; fsync; raise if it ends early."""
    received = reply.start
    try:
        f = open(part, "ab")
    except OSError as exc:
        raise _write_error(part, exc) from exc
    with f, _progress_bar(url, reply, enabled=progress) as advance:
        while True:
            try:
                chunk = response.read(chunk_bytes)
            except (OSError, http.client.HTTPException) as exc:
                _flush(f, part)
                raise DownloadError(
                    f"the connection to {_host(url)} was lost after {received:,} of "
                    f"{_describe_total(reply.total)} bytes ({exc}). The partial file {part} is "
                    "kept; run the same command again to resume the download"
                ) from exc
            if not chunk:
                break
            try:
                f.write(chunk)
            except OSError as exc:
                raise _write_error(part, exc) from exc
            hasher.update(chunk)
            received += len(chunk)
            advance(len(chunk))
        _flush(f, part)
    if reply.total is not None and received < reply.total:
        raise DownloadError(
            f"the download of {url} stopped after {received:,} of {reply.total:,} bytes (the "
            f"connection was cut or the server sent a truncated response). The partial file "
            f"{part} is kept; run the same command again to resume the download"
        )


@contextmanager
def _progress_bar(url: str, reply: _Reply, *, enabled: bool) -> Iterator[Callable[[int], None]]:
    """A Rich progress bar on stderr; yields a function that advances it by n bytes."""
    from rich.console import Console
    from rich.progress import (
        BarColumn,
        DownloadColumn,
        Progress,
        TextColumn,
        TimeRemainingColumn,
        TransferSpeedColumn,
    )

    columns = (
        TextColumn("[bold]{task.description}"),
        BarColumn(),
        DownloadColumn(),
        TransferSpeedColumn(),
        TimeRemainingColumn(),
    )
    name = Path(urllib.parse.urlsplit(url).path).name or url
    with Progress(*columns, console=Console(stderr=True), disable=not enabled) as bar:
        task = bar.add_task(name, total=reply.total, completed=reply.start)
        yield lambda n: bar.advance(task, n)


def _verify(url: str, part: Path, digest: str, checks: _Checks) -> None:
    """Check the finished part's size and digest; delete it when it can never become valid."""
    size = _size(part)
    if checks.expected_size is not None and size != checks.expected_size:
        part.unlink()
        raise DownloadError(
            f"{url} delivered {size:,} bytes, expected {checks.expected_size:,}; the server does "
            f"not hold the expected file. {_HAVE_FILE_HINT}"
        )
    if checks.min_size is not None and size < checks.min_size:
        part.unlink()
        raise DownloadError(
            f"{url} delivered only {size:,} bytes, but the file is at least "
            f"{checks.min_size:,} bytes; the server sent something else (an error page?) or a "
            f"truncated file. {_HAVE_FILE_HINT}"
        )
    if checks.sha256 is not None and digest != checks.sha256:
        part.unlink()
        raise ChecksumError(
            f"the file downloaded from {url} has sha256 {digest}, expected {checks.sha256}; it "
            "was deleted. Run again to download it afresh; if this repeats, the server's file "
            "changed or something between you and it alters downloads"
        )


def _part_complete(part: Path, total: int | None, checks: _Checks) -> bool:
    """After a 416: whether the part already holds the whole file."""
    size = _size(part)
    return size > 0 and size in {total, checks.expected_size}


def _flush(f: IO[bytes], part: Path) -> None:
    try:
        f.flush()
        os.fsync(f.fileno())
    except OSError as exc:
        raise _write_error(part, exc) from exc


def _fsync_dir(directory: Path) -> None:
    """Make a rename durable (POSIX only; Windows cannot open directories)."""
    if os.name != "posix":
        return
    fd = os.open(directory, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _write_error(path: Path, exc: OSError) -> DownloadError:
    if exc.errno in (errno.ENOSPC, errno.EDQUOT):
        return DownloadError(
            f"disk full while writing {path}; free space or set BINDSEARCH_HOME to a larger "
            "disk, then run again (a partial download resumes)"
        )
    return DownloadError(f"cannot write {path}: {exc}")


def _unreachable(url: str, reason: object) -> DownloadError:
    return DownloadError(f"cannot reach {_host(url)}: {reason}. {_NO_NETWORK_HINT}")


def _host(url: str) -> str:
    return urllib.parse.urlsplit(url).netloc or url


def _size(path: Path) -> int:
    try:
        return path.stat().st_size
    except FileNotFoundError:
        return 0


def _int_or_none(value: str | None) -> int | None:
    try:
        return int(value) if value is not None else None
    except ValueError:
        return None


def _add(offset: int, length: int | None) -> int | None:
    return None if length is None else offset + length


def _content_range_start(value: str | None) -> int | None:
    """First byte of ``Content-Range: bytes START-END/TOTAL``."""
    if not value or not value.startswith("bytes ") or "-" not in value:
        return None
    return _int_or_none(value[len("bytes ") :].split("-", 1)[0])


def _content_range_total(value: str | None) -> int | None:
    """TOTAL of ``Content-Range: bytes START-END/TOTAL`` or ``bytes */TOTAL``."""
    if not value or "/" not in value:
        return None
    return _int_or_none(value.rsplit("/", 1)[1])


def _describe_total(total: int | None) -> str:
    return "an unknown number of" if total is None else f"{total:,}"
