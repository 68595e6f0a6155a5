"""Helpers for the server tests: one ingested collection per session, real uvicorn servers on
127.0.0.1 with ephemeral ports, each in a background thread of the test process."""

from __future__ import annotations

import socket
import threading
import time
from dataclasses import dataclass
from pathlib import Path

import pytest
import uvicorn
from collection import build_collection

import bindsearch
from bindsearch.server import ServerConfig, create_app

API_KEY = "test-key-0123456789"
_SHARED: dict[str, tuple[Path, Path]] = {}


def shared_index(factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    """``(media_dir, index_dir)``: the generated collection ingested with imagebind-tiny and
    2 s segments, built once per test session and shared read-only."""
    if "index" not in _SHARED:
        media = build_collection(factory.mktemp("server-media"))
        index_dir = factory.mktemp("server-index")
        idx = bindsearch.connect(index_dir, model="imagebind-tiny", device="cpu")
        idx.ingest([media], workers=0, segment_s=2.0)
        _SHARED["index"] = (media, index_dir)
    return _SHARED["index"]


@dataclass
class RunningServer:
    """A uvicorn server in a daemon thread; ``url`` is ``http://127.0.0.1:PORT``."""

    url: str
    server: uvicorn.Server
    thread: threading.Thread

    @property
    def service(self):
        return self.server.config.app.state.service

    def stop(self) -> None:
        self.server.should_exit = True
        self.thread.join(timeout=30)


def start_server(config: ServerConfig, timeout_s: float = 120.0) -> RunningServer:
    """Serve ``config`` on a free loopback port; returns once the app has started."""
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind(("127.0.0.1", 0))
    port = sock.getsockname()[1]
    app = create_app(config)
    server = uvicorn.Server(uvicorn.Config(app, log_level="warning", lifespan="on"))
    thread = threading.Thread(target=server.run, kwargs={"sockets": [sock]}, daemon=True)
    thread.start()
    deadline = time.monotonic() + timeout_s
    while not server.started:
        if not thread.is_alive() or time.monotonic() > deadline:
            raise RuntimeError("the test server did not start")
        time.sleep(0.05)
    return RunningServer(f"http://127.0.0.1:{port}", server, thread)
