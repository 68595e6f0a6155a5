"""The HTTP server: a FastAPI app over one index, with a search page at ``/``.

``bindsearch serve --index DIR`` runs it; :func:`create_app` builds it for embedding in another
ASGI server; :mod:`bindsearch.server.client` talks to a running one. Importing this package
does not import torch or FastAPI; the names below load on first use.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from bindsearch.server.config import (
    DEFAULT_HOST,
    DEFAULT_PORT,
    BatchConfig,
    ServerConfig,
    UploadLimits,
)

if TYPE_CHECKING:
    from bindsearch.server.app import create_app, serve

_LAZY = {"create_app": "bindsearch.server.app", "serve": "bindsearch.server.app"}


def __getattr__(name: str) -> Any:
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module 'bindsearch.server' has no attribute {name!r}")
    import importlib

    return getattr(importlib.import_module(module), name)


__all__ = [
    "DEFAULT_HOST",
    "DEFAULT_PORT",
    "BatchConfig",
    "ServerConfig",
    "UploadLimits",
    "create_app",
    "serve",
]
