"""A real HTTP file server on 127.0.0.1 for download tests, with scriptable failures.

It serves one payload at ``/<filename>`` with ``Range`` support and can be told to fail the way
real servers and networks do: cut the first connection after N body bytes (closing it cleanly
or resetting it), send fewer bytes than the ``Content-Length`` it announced, ignore ``Range``,
or answer with an HTTP error status.
"""

from __future__ import annotations

import socket
import struct
import threading
import time
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer


@dataclass
class Behaviour:
    """How the server misbehaves; every field's default means "serve correctly"."""

    status: int | None = None  # answer every request with this HTTP error status
    cut_after: int | None = None  # first request only: stop after this many body bytes
    cut_with_reset: bool = False  # end the cut with a TCP reset instead of a clean close
    truncate_to: int | None = None  # every request: send body bytes only up to this offset
    ignore_range: bool = False  # answer Range requests with the whole file (200)


@dataclass
class FileServer:
    """A running server; ``requests`` records each request's headers in arrival order."""

    payload: bytes
    filename: str = "checkpoint.pth"
    behaviour: Behaviour = field(default_factory=Behaviour)
    requests: list[dict[str, str]] = field(default_factory=list)
    _httpd: ThreadingHTTPServer | None = None

    @property
    def url(self) -> str:
        assert self._httpd is not None
        host, port = self._httpd.server_address[:2]
        return f"http://{host}:{port}/{self.filename}"

    def start(self) -> FileServer:
        handler = type("Handler", (_Handler,), {"file_server": self})
        self._httpd = ThreadingHTTPServer(("127.0.0.1", 0), handler)
        self._httpd.daemon_threads = True
        threading.Thread(target=self._httpd.serve_forever, args=(0.01,), daemon=True).start()
        return self

    def stop(self) -> None:
        if self._httpd is not None:
            self._httpd.shutdown()
            self._httpd.server_close()


def unused_port() -> int:
    """A localhost port nothing listens on (bound and released, so connecting is refused)."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class _Handler(BaseHTTPRequestHandler):
    file_server: FileServer

    def log_message(self, format: str, *args: object) -> None:  # keep test output clean
        return

    def do_GET(self) -> None:  # noqa: N802 (http.server's naming)
        server = self.file_server
        server.requests.append(dict(self.headers.items()))
        first_request = len(server.requests) == 1
        b = server.behaviour
        if b.status is not None:
            self.send_error(b.status)
            return
        if self.path != f"/{server.filename}":
            self.send_error(404)
            return
        start = self._start_byte(len(server.payload))
        if start is None:
            return
        end = len(server.payload)
        if b.truncate_to is not None:
            end = min(end, b.truncate_to)
        cut = b.cut_after if first_request else None
        if cut is not None:
            end = min(end, start + cut)
        self.wfile.write(server.payload[start:end])
        self.wfile.flush()
        if cut is not None and b.cut_with_reset:
            time.sleep(0.2)  # let the client read what was sent before the reset arrives
            self.connection.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
            # Closing here (before socketserver's shutdown(SHUT_WR) could send a FIN) makes the
            # zero-linger close send a bare RST, as a dropped connection does.
            self.connection.close()
        self.close_connection = True

    def _start_byte(self, total: int) -> int | None:
        """Send the status line and headers; return the first body byte (None: no body)."""
        requested = self.headers.get("Range")
        start = 0
        if requested and not self.file_server.behaviour.ignore_range:
            start = int(requested.removeprefix("bytes=").split("-", 1)[0])
            if start >= total:
                self.send_response(416)
                self.send_header("Content-Range", f"bytes */{total}")
                self.send_header("Content-Length", "0")
                self.end_headers()
                return None
            self.send_response(206)
            self.send_header("Content-Range", f"bytes {start}-{total - 1}/{total}")
        else:
            self.send_response(200)
        self.send_header("Content-Length", str(total - start))
        self.send_header("Accept-Ranges", "bytes")
        self.end_headers()
        return start
