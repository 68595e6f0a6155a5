"""The server's guards: bind address, API key, signed media links, request size limit."""

from __future__ import annotations

import hashlib
import hmac
import ipaddress
import logging
import os
import secrets
import time
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Annotated, Any

from fastapi import HTTPException, Security
from fastapi.security import APIKeyHeader, HTTPAuthorizationCredentials, HTTPBearer

from bindsearch.errors import ConfigError
from bindsearch.server.config import API_KEY_ENV, API_KEY_HEADER, ServerConfig

logger = logging.getLogger(__name__)

key_header_scheme = APIKeyHeader(name=API_KEY_HEADER, auto_error=False, description="The API key.")
bearer_scheme = HTTPBearer(auto_error=False, description="The API key as a bearer token.")


def is_loopback(host: str) -> bool:
    """Whether ``host`` names only this machine (``localhost``, ``127.0.0.0/8``, ``::1``).

    Any other name counts as non-loopback: a hostname may resolve to a public interface.
    """
    if host.strip().lower() == "localhost":
        return True
    try:
        return ipaddress.ip_address(host.strip().strip("[]")).is_loopback
    except ValueError:
        return False


def check_bind(config: ServerConfig) -> None:
    """Refuse to listen beyond loopback without an API key, unless ``insecure`` says so."""
    if is_loopback(config.host):
        return
    if config.api_key:
        logger.warning("listening on %s over plain HTTP: put a TLS proxy in front so that the API "
                       "key and results are not sent in the clear", config.host)  # fmt: skip
        return
    if not config.insecure:
        raise ConfigError(
            f"refusing to listen on {config.host} without an API key: anyone who can reach it "
            f"could search the index and read its media. Pass --api-key KEY (or set "
            f"${API_KEY_ENV}), bind to 127.0.0.1, or pass --insecure to accept the risk"
        )
    logger.warning("listening on %s with no API key (--insecure)", config.host)


def keys_match(given: str | None, expected: str) -> bool:
    """Constant-time comparison of a presented key with the configured one."""
    if not given:
        return False
    return hmac.compare_digest(given.encode("utf-8"), expected.encode("utf-8"))


def unauthorized() -> HTTPException:
    """The 401 answer for a missing or wrong key."""
    return HTTPException(
        status_code=401,
        detail=f"missing or wrong API key: send it in the {API_KEY_HEADER} header "
        "(or as 'Authorization: Bearer KEY')",
        headers={"WWW-Authenticate": "Bearer"},
    )


def presented_key(header: str | None, bearer: HTTPAuthorizationCredentials | None) -> str | None:
    """The key a request carries, from ``X-API-Key`` or a bearer token."""
    return header or (bearer.credentials if bearer is not None else None)


def create_key_dependency(api_key: str | None) -> Callable[..., Awaitable[None]]:
    """A FastAPI dependency that rejects requests without ``api_key`` (a no-op when ``None``)."""

    async def require_api_key(
        header: Annotated[str | None, Security(key_header_scheme)] = None,
        bearer: Annotated[HTTPAuthorizationCredentials | None, Security(bearer_scheme)] = None,
    ) -> None:
        if api_key is not None and not keys_match(presented_key(header, bearer), api_key):
            raise unauthorized()

    return require_api_key


class MediaSigner:
    """Short-lived signed links for ``GET /items/{id}/media``.

    ``<img>``, ``<video>`` and ``<audio>`` elements cannot send an API key header, so hits
    carry a link with ``token=EXPIRY.MAC``: an HMAC of the item id and expiry under a secret
    made at start-up. A token opens one item's media only, and only until it expires.
    """

    def __init__(self, lifetime_s: int, secret: bytes | None = None) -> None:
        self.lifetime_s = lifetime_s
        self._secret = secret or secrets.token_bytes(32)

    def _mac(self, item_id: str, expires: int) -> str:
        message = f"{item_id}:{expires}".encode()
        return hmac.new(self._secret, message, hashlib.sha256).hexdigest()[:32]

    def sign(self, item_id: str, now: float | None = None) -> str:
        """A token for ``item_id`` valid for ``lifetime_s`` seconds from ``now``."""
        expires = int(now if now is not None else time.time()) + self.lifetime_s
        return f"{expires}.{self._mac(item_id, expires)}"

    def verify(self, item_id: str, token: str, now: float | None = None) -> bool:
        """Whether ``token`` was made by :meth:`sign` for ``item_id`` and has not expired."""
        expires_text, _, mac = token.partition(".")
        if not expires_text.isdigit() or len(expires_text) > 12:
            return False
        expires = int(expires_text)
        if expires < (now if now is not None else time.time()):
            return False
        return hmac.compare_digest(mac.encode(), self._mac(item_id, expires).encode())


class RequestTooLarge(HTTPException):
    """The request body passed the configured limit (answered with 413)."""

    def __init__(self, limit: int) -> None:
        super().__init__(
            status_code=413,
            detail=f"request body larger than the server's limit of {limit:,} bytes",
        )


class BodyLimitMiddleware:
    """Caps request bodies at ``max_bytes``: by ``Content-Length`` before anything is read,
    and by counting while the body streams in (chunked uploads declare no length)."""

    def __init__(self, app: Any, max_bytes: int) -> None:
        self.app = app
        self.max_bytes = max_bytes

    async def __call__(self, scope: dict, receive: Callable, send: Callable) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        declared = dict(scope.get("headers") or []).get(b"content-length")
        if declared is not None and (not declared.isdigit() or int(declared) > self.max_bytes):
            await _drain(receive, _DRAIN_BYTES)
            await _send_413(send, self.max_bytes)
            return
        received = 0
        started = False

        async def limited_receive() -> dict:
            nonlocal received
            message = await receive()
            if message["type"] == "http.request":
                received += len(message.get("body", b""))
                if received > self.max_bytes:
                    if message.get("more_body", False):
                        await _drain(receive, _DRAIN_BYTES)
                    raise RequestTooLarge(self.max_bytes)
            return message

        async def tracking_send(message: dict) -> None:
            nonlocal started
            started = started or message["type"] == "http.response.start"
            await send(message)

        try:
            await self.app(scope, limited_receive, tracking_send)
        except RequestTooLarge:
            if started:
                raise
            await _send_413(send, self.max_bytes)


#: How much of a refused body is still read (and dropped) before answering 413.
_DRAIN_BYTES = 64 * 1024 * 1024


async def _drain(receive: Callable, limit: int) -> None:
    """Read and drop the rest of a refused body, up to ``limit`` bytes: HTTP clients send the
    whole body before reading the answer, so closing early would leave them a reset connection
    instead of the 413 and its message."""
    drained = 0
    while drained <= limit:
        message = await receive()
        if message["type"] != "http.request":
            return
        drained += len(message.get("body", b""))
        if not message.get("more_body", False):
            return


async def _send_413(send: Callable, limit: int) -> None:
    import json

    body = json.dumps({"detail": RequestTooLarge(limit).detail}).encode()
    headers = [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode()),
               (b"connection", b"close")]  # fmt: skip
    await send({"type": "http.response.start", "status": 413, "headers": headers})
    await send({"type": "http.response.body", "body": body})


def confine_path(path: str, roots: tuple[Path, ...]) -> Path:
    """``path`` (absolute, or relative to the first root) if it lies inside one of ``roots``
    both as written and with symlinks resolved; 403 otherwise, 404 when it does not exist.

    The only place a path from a request is used, and only under folders the operator named.
    """
    if not roots:
        raise HTTPException(
            403, "ingest over HTTP is off: start the server with --ingest-root DIR to allow it"
        )
    if "\x00" in path:
        raise HTTPException(400, "a path cannot contain NUL")
    lexical = Path(os.path.normpath(os.path.join(roots[0], path)))
    real = Path(os.path.realpath(lexical))
    inside = [r for r in roots if _within(lexical, r) and _within(real, Path(os.path.realpath(r)))]
    if not inside:
        raise HTTPException(403, f"{path!r} is outside the server's ingest roots")
    if not real.exists():
        raise HTTPException(404, f"{path!r} does not exist on the server")
    return lexical


def _within(path: Path, root: Path) -> bool:
    return path == root or root in path.parents
