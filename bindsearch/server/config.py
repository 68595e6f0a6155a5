"""The server's settings: one ``ServerConfig`` value, built by the CLI or by a caller."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

#: Loopback only by default; any other interface needs an API key (or ``insecure``).
DEFAULT_HOST = "127.0.0.1"
DEFAULT_PORT = 8000
#: Environment variable holding the API key (keeps it out of process listings).
API_KEY_ENV = "BINDSEARCH_API_KEY"
#: Header that carries the API key (``Authorization: Bearer KEY`` is accepted too).
API_KEY_HEADER = "X-API-Key"


@dataclass(frozen=True)
class BatchConfig:
    """Micro-batching of query encodes.

    Up to ``max_items`` queued inputs of one tower go through one forward pass; the worker
    waits at most ``max_wait_ms`` after the first input for more to arrive. With
    ``enabled=False`` every input is encoded on its own, concurrently, as it arrives.
    """

    enabled: bool = True
    max_items: int = 32
    max_wait_ms: float = 2.0


@dataclass(frozen=True)
class UploadLimits:
    """What an upload may be: sizes in bytes, and how many files one request may carry."""

    max_request_bytes: int = 100 * 1024 * 1024
    max_files: int = 8
    #: Text files are tokenised whole (one forward row per 77 tokens): keep them small.
    max_text_bytes: int = 1024 * 1024


@dataclass(frozen=True)
class ServerConfig:
    """Everything ``create_app`` needs.

    ``index_dir`` is served; ``model``/``weights``/``device``/``dtype`` pick the encoder
    (default: the index's recorded model). ``api_key`` guards every API route when set.
    ``ingest_roots``: ``POST /ingest`` accepts only paths inside these folders (none: the
    route refuses every request). ``cors_origins``: CORS is off unless origins are given.
    ``preload``: towers loaded at start-up so the first query does not pay for it.
    """

    index_dir: Path
    model: str | None = None
    weights: Path | None = None
    device: str | None = None
    dtype: str | None = None
    host: str = DEFAULT_HOST
    port: int = DEFAULT_PORT
    api_key: str | None = None
    insecure: bool = False
    ingest_roots: tuple[Path, ...] = ()
    cors_origins: tuple[str, ...] = ()
    batch: BatchConfig = field(default_factory=BatchConfig)
    uploads: UploadLimits = field(default_factory=UploadLimits)
    preload: tuple[str, ...] = ("text",)
    #: Lifetime of the signed media links returned with hits (for <img>/<audio> tags).
    media_link_seconds: int = 3600
    max_jobs_kept: int = 100
    #: Decode processes of ingest jobs (``None``: the library's default; 0: in the job thread).
    ingest_workers: int | None = None
