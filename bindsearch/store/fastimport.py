"""Faster ``import lancedb`` for short-lived processes (``bindsearch query``).

``lancedb`` imports ``lance_namespace``, which imports the generated REST client package
``lance_namespace_urllib3_client``; that package's ``__init__`` eagerly imports its nine API
modules (~0.5 s of pydantic ``validate_call`` decoration on 2 CPU cores), although only its
``models`` subpackage is needed unless a REST namespace is used. :func:`defer_rest_client`
registers the package without running its ``__init__``: its submodules (``models``) import as
usual, and the first attribute read on the package itself (``ApiClient``, ``TableApi`` ...)
runs the real ``__init__`` and answers from it. Nothing changes for code that uses the client.
"""

from __future__ import annotations

import importlib.util
import logging
import sys
import threading
from types import ModuleType
from typing import Any

logger = logging.getLogger(__name__)

REST_CLIENT = "lance_namespace_urllib3_client"


def defer_rest_client() -> None:
    """Register :data:`REST_CLIENT` with its ``__init__`` deferred (no-op once imported)."""
    if REST_CLIENT in sys.modules or "lancedb" in sys.modules:
        return
    try:
        spec = importlib.util.find_spec(REST_CLIENT)
    except (ImportError, ValueError):
        return
    if spec is None or spec.loader is None or spec.submodule_search_locations is None:
        return
    module = importlib.util.module_from_spec(spec)
    loader = spec.loader
    lock = threading.RLock()
    state = {"loaded": False}

    def load() -> ModuleType:
        with lock:
            if not state["loaded"]:
                state["loaded"] = True
                del module.__dict__["__getattr__"]
                loader.exec_module(module)
        return module

    def __getattr__(name: str) -> Any:  # noqa: N807 - the module-level hook (PEP 562)
        if name.startswith("__") and name.endswith("__"):
            raise AttributeError(name)
        loaded = load()
        try:
            return loaded.__dict__[name]
        except KeyError:
            raise AttributeError(f"module {REST_CLIENT!r} has no attribute {name!r}") from None

    module.__dict__["__getattr__"] = __getattr__
    sys.modules[REST_CLIENT] = module
