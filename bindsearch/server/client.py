"""Talk to a running bindsearch server: ``bindsearch query --server URL`` and auto-detection.

Needs neither torch nor the model: the server encodes. Files named by query parts are
uploaded; texts, ids and vectors travel as JSON.
"""

from __future__ import annotations

import json
import logging
import os
from collections.abc import Sequence
from contextlib import ExitStack
from pathlib import Path
from typing import Any

import numpy as np

from bindsearch.errors import BindsearchError, ConfigError
from bindsearch.query.hit import Hit
from bindsearch.query.parts import QueryPart
from bindsearch.server.config import API_KEY_ENV, API_KEY_HEADER, DEFAULT_HOST, DEFAULT_PORT

logger = logging.getLogger(__name__)

DEFAULT_URL = f"http://{DEFAULT_HOST}:{DEFAULT_PORT}"
#: Environment variable naming a server for ``bindsearch query``.
SERVER_ENV = "BINDSEARCH_SERVER"
#: How long auto-detection waits for ``/health``.
DETECT_TIMEOUT_S = 0.3


def _headers(api_key: str | None) -> dict[str, str]:
    key = api_key if api_key is not None else os.environ.get(API_KEY_ENV)
    return {API_KEY_HEADER: key} if key else {}


def find_server(url: str | None = None, timeout_s: float = DETECT_TIMEOUT_S) -> str | None:
    """``url`` (default :data:`DEFAULT_URL`) when a bindsearch server answers ``/health``
    there within ``timeout_s`` and can be used (it needs no key, or ``$BINDSEARCH_API_KEY`` is
    set); else ``None``."""
    import httpx

    url = url or DEFAULT_URL
    try:
        response = httpx.get(f"{url.rstrip('/')}/health", timeout=timeout_s)
        health = response.json()
    except (httpx.HTTPError, ValueError):
        return None
    if response.status_code != 200 or not isinstance(health, dict):
        return None
    if health.get("service") != "bindsearch":
        return None
    if health.get("auth_required") and not os.environ.get(API_KEY_ENV):
        logger.info("a bindsearch server at %s needs an API key; searching locally", url)
        return None
    logger.warning(
        "sending the query to the bindsearch server at %s (--index searches locally)", url
    )
    return url


def _part_json(part: QueryPart, field: str) -> dict[str, Any]:
    if part.kind == "text":
        return {"text": str(part.value), "weight": part.weight}
    if part.kind == "id":
        return {"id": str(part.value), "weight": part.weight}
    if part.kind == "vector":
        return {"vector": np.asarray(part.value, dtype=np.float32).tolist(), "weight": part.weight}
    return {"upload": field, "kind": part.kind, "weight": part.weight}


def search_remote(
    url: str,
    parts: Sequence[QueryPart],
    *,
    modalities: Sequence[str] = (),
    path: str | None = None,
    where: str | None = None,
    segments: bool = False,
    k: int = 10,
    api_key: str | None = None,
    timeout_s: float = 300.0,
) -> list[Hit]:
    """Run a search on the server at ``url``; same arguments as ``Index.search``.

    A ``path`` filter is made absolute here, as a local search would.
    """
    import httpx

    body = {"parts": [_part_json(p, f"f{i}") for i, p in enumerate(parts)],
            "modalities": list(modalities), "segments": segments, "top_k": k,
            "path": os.path.abspath(path) if path else None, "where": where}  # fmt: skip
    endpoint = f"{url.rstrip('/')}/search"
    with ExitStack() as stack:
        files = []
        for i, part in enumerate(parts):
            if part.kind not in ("text", "id", "vector"):
                source = Path(str(part.value))
                try:
                    handle = stack.enter_context(open(source, "rb"))
                except OSError as exc:
                    raise ConfigError(f"cannot read {source}: {exc.strerror or exc}") from exc
                files.append((f"f{i}", (source.name, handle, "application/octet-stream")))
        try:
            if files:
                response = httpx.post(endpoint, data={"query": json.dumps(body)}, files=files,
                                      headers=_headers(api_key), timeout=timeout_s)  # fmt: skip
            else:
                response = httpx.post(endpoint, json=body, headers=_headers(api_key),
                                      timeout=timeout_s)  # fmt: skip
        except httpx.HTTPError as exc:
            raise BindsearchError(f"cannot reach the bindsearch server at {url}: {exc}") from exc
    return [_hit(h) for h in _checked(response, url)["hits"]]


def _checked(response: Any, url: str) -> dict[str, Any]:
    try:
        doc = response.json()
    except ValueError:
        doc = {"detail": response.text[:500]}
    if response.status_code >= 400:
        detail = doc.get("detail") if isinstance(doc, dict) else doc
        if not isinstance(detail, str):
            detail = json.dumps(detail)
        hint = f" (set ${API_KEY_ENV})" if response.status_code == 401 else ""
        raise BindsearchError(f"server {url} answered {response.status_code}: {detail}{hint}")
    return doc


def _hit(doc: dict[str, Any]) -> Hit:
    fields = Hit.__dataclass_fields__
    return Hit(**{key: value for key, value in doc.items() if key in fields})
