"""Downloading, resuming, verifying and resolving weights against a real local HTTP server."""

from __future__ import annotations

import hashlib
import io
import json
import logging
import os
from collections.abc import Iterator
from pathlib import Path

import pytest
import torch
from httpserver import FileServer, unused_port

from bindsearch.errors import (
    ChecksumError,
    ConfigError,
    DownloadError,
    UnknownModelError,
    WeightsError,
)
from bindsearch.models.download import download_file, file_sha256, resolve_weights
from bindsearch.models.weights import WEIGHTS, WeightsSpec, get_weights_spec, register_weights

CHUNK = 64 * 1024
NOTICE = "TEST-NOTICE: these weights are CC BY-NC-SA 4.0, non-commercial use only"


@pytest.fixture(scope="module")
def payload() -> bytes:
    """A ~3 MB torch.save'd checkpoint with reference-style keys."""
    gen = torch.Generator().manual_seed(0)
    state = {
        "modality_trunks.text.blocks.0.attn.in_proj_weight": torch.randn(
            3 * 256, 256, generator=gen
        ),
        "modality_trunks.vision.blocks.0.mlp.fc1.weight": torch.randn(1024, 256, generator=gen),
        "modality_postprocessors.text.1.log_logit_scale": torch.tensor(4.6),
    }
    buf = io.BytesIO()
    torch.save(state, buf)
    return buf.getvalue()


@pytest.fixture(autouse=True)
def _isolated_env(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("BINDSEARCH_HOME", str(tmp_path / "home"))
    monkeypatch.delenv("BINDSEARCH_WEIGHTS", raising=False)
    for var in ("http_proxy", "HTTP_PROXY", "https_proxy", "HTTPS_PROXY", "all_proxy", "ALL_PROXY"):
        monkeypatch.delenv(var, raising=False)


@pytest.fixture
def server(payload: bytes) -> Iterator[FileServer]:
    srv = FileServer(payload).start()
    yield srv
    srv.stop()


@pytest.fixture
def spec(server: FileServer) -> WeightsSpec:
    return WeightsSpec(
        name="test-weights",
        url=server.url,
        filename="test_weights.pth",
        size_bytes=None,
        sha256=None,
        license="CC BY-NC-SA 4.0",
        license_url="https://creativecommons.org/licenses/by-nc-sa/4.0/",
        notice=NOTICE,
        min_size_bytes=1_000_000,
    )


def test_resolve_downloads_and_pins_sha256(spec: WeightsSpec, payload: bytes, tmp_path: Path):
    path = resolve_weights(spec, progress=False)
    assert path == tmp_path / "home" / "weights" / "test_weights.pth"
    assert path.read_bytes() == payload
    assert not path.with_name(path.name + ".part").exists()
    pinned = json.loads(path.with_name(path.name + ".sha256").read_text())
    assert pinned["sha256"] == hashlib.sha256(payload).hexdigest() == file_sha256(path)
    assert pinned["size"] == len(payload)


def test_cached_file_is_reused_without_network(spec: WeightsSpec, server: FileServer):
    first = resolve_weights(spec, progress=False)
    server.stop()
    assert resolve_weights(spec, progress=False, download=False) == first
    assert len(server.requests) == 1


@pytest.mark.parametrize("reset", [False, True], ids=["clean-close", "tcp-reset"])
def test_resume_after_cut_connection(
    server: FileServer, payload: bytes, tmp_path: Path, reset: bool
):
    server.behaviour.cut_after = 1_000_000
    server.behaviour.cut_with_reset = reset
    dest = tmp_path / "ckpt.pth"
    part = tmp_path / "ckpt.pth.part"
    with pytest.raises(DownloadError, match="run the same command again to resume") as info:
        download_file(server.url, dest, progress=False, chunk_bytes=CHUNK)
    assert ("was lost after" if reset else "stopped after 1,000,000 of") in str(info.value)
    kept = part.stat().st_size
    assert 0 < kept <= 1_000_000
    assert not dest.exists()

    download_file(
        server.url,
        dest,
        progress=False,
        chunk_bytes=CHUNK,
        sha256=hashlib.sha256(payload).hexdigest(),
    )
    assert server.requests[1]["Range"] == f"bytes={kept}-"
    assert dest.read_bytes() == payload
    assert not part.exists()


def test_checksum_mismatch_deletes_the_download(server: FileServer, tmp_path: Path):
    dest = tmp_path / "ckpt.pth"
    with pytest.raises(ChecksumError, match="expected 0000"):
        download_file(server.url, dest, sha256="0" * 64, progress=False)
    assert not dest.exists()
    assert not (tmp_path / "ckpt.pth.part").exists()


def test_truncated_response_keeps_part(server: FileServer, payload: bytes, tmp_path: Path):
    server.behaviour.truncate_to = len(payload) // 2
    dest = tmp_path / "ckpt.pth"
    with pytest.raises(DownloadError, match=f"stopped after {len(payload) // 2:,} of"):
        download_file(server.url, dest, progress=False)
    assert (tmp_path / "ckpt.pth.part").read_bytes() == payload[: len(payload) // 2]
    assert not dest.exists()


@pytest.mark.parametrize("status", [404, 500])
def test_http_error_is_download_error(server: FileServer, tmp_path: Path, status: int):
    server.behaviour.status = status
    with pytest.raises(DownloadError, match=f"HTTP {status}"):
        download_file(server.url, tmp_path / "ckpt.pth", progress=False)
    assert not (tmp_path / "ckpt.pth").exists()


def test_connection_refused_says_how_to_proceed(spec: WeightsSpec):
    url = f"http://127.0.0.1:{unused_port()}/imagebind_huge.pth"
    unreachable = WeightsSpec(**{**spec.__dict__, "url": url})
    with pytest.raises(DownloadError, match="cannot reach 127.0.0.1") as info:
        resolve_weights(unreachable, progress=False)
    assert "--weights PATH" in str(info.value) and "BINDSEARCH_WEIGHTS" in str(info.value)


def test_complete_part_is_finished_after_416(server: FileServer, payload: bytes, tmp_path: Path):
    (tmp_path / "ckpt.pth.part").write_bytes(payload)
    dest = download_file(
        server.url, tmp_path / "ckpt.pth", progress=False, expected_size=len(payload)
    )
    assert dest.read_bytes() == payload
    assert server.requests[0]["Range"] == f"bytes={len(payload)}-"


def test_server_ignoring_range_restarts(server: FileServer, payload: bytes, tmp_path: Path):
    server.behaviour.ignore_range = True
    (tmp_path / "ckpt.pth.part").write_bytes(b"stale bytes from another file")
    dest = download_file(server.url, tmp_path / "ckpt.pth", progress=False)
    assert dest.read_bytes() == payload


def test_too_small_download_is_rejected(server: FileServer, payload: bytes, tmp_path: Path):
    with pytest.raises(DownloadError, match="at least"):
        download_file(server.url, tmp_path / "ckpt.pth", min_size=len(payload) + 1, progress=False)
    assert not (tmp_path / "ckpt.pth.part").exists()


def test_tampered_cached_file_is_detected(spec: WeightsSpec, payload: bytes):
    path = resolve_weights(spec, progress=False)
    data = bytearray(payload)
    data[len(data) // 2] ^= 0xFF
    path.write_bytes(bytes(data))
    st = path.stat()
    os.utime(path, ns=(st.st_atime_ns, st.st_mtime_ns + 5_000_000_000))
    with pytest.raises(ChecksumError, match="no longer match the hash recorded at download"):
        resolve_weights(spec, progress=False)


def test_touched_but_identical_cached_file_is_accepted(spec: WeightsSpec):
    path = resolve_weights(spec, progress=False)
    st = path.stat()
    os.utime(path, ns=(st.st_atime_ns, st.st_mtime_ns + 5_000_000_000))
    assert resolve_weights(spec, progress=False) == path
    pinned = json.loads(path.with_name(path.name + ".sha256").read_text())
    assert pinned["mtime_ns"] == path.stat().st_mtime_ns


def test_explicit_path_then_env_then_cache(
    spec: WeightsSpec, server: FileServer, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
):
    explicit, from_env = tmp_path / "explicit.pth", tmp_path / "env.pth"
    explicit.write_bytes(b"a")
    from_env.write_bytes(b"b")
    monkeypatch.setenv("BINDSEARCH_WEIGHTS", str(from_env))
    assert resolve_weights(spec, explicit) == explicit
    assert resolve_weights(spec, str(explicit)) == explicit
    assert resolve_weights(spec) == from_env
    with pytest.raises(WeightsError, match="missing.pth does not exist"):
        resolve_weights(spec, tmp_path / "missing.pth")
    monkeypatch.setenv("BINDSEARCH_WEIGHTS", str(tmp_path / "gone.pth"))
    with pytest.raises(WeightsError, match=r"\$BINDSEARCH_WEIGHTS .*gone.pth does not exist"):
        resolve_weights(spec)
    assert server.requests == []


def test_no_download_allowed_explains_how_to_get_weights(spec: WeightsSpec, server: FileServer):
    with pytest.raises(WeightsError, match="BINDSEARCH_WEIGHTS") as info:
        resolve_weights(spec, download=False)
    assert not isinstance(info.value, DownloadError)
    assert server.requests == []


def test_license_notice_is_logged_once(spec: WeightsSpec, caplog: pytest.LogCaptureFixture):
    with caplog.at_level(logging.WARNING, logger="bindsearch.models.download"):
        resolve_weights(spec, progress=False)
        resolve_weights(spec, progress=False)
    notices = [r for r in caplog.records if NOTICE in r.getMessage()]
    assert len(notices) == 1


def test_weights_table():
    spec = get_weights_spec("imagebind-huge")
    assert spec.url == "https://dl.fbaipublicfiles.com/imagebind/imagebind_huge.pth"
    assert spec.license == "CC BY-NC-SA 4.0" and "non-commercial" in spec.notice
    assert spec.min_size_bytes == 4_803_147_960 and spec.sha256 is None
    with pytest.raises(UnknownModelError, match="imagebind-huge"):
        get_weights_spec("imagebind-tiny")


def test_register_weights_then_resolve_by_name(
    spec: WeightsSpec, payload: bytes, monkeypatch: pytest.MonkeyPatch
):
    monkeypatch.setitem(WEIGHTS, spec.name, spec)  # undone after the test
    assert register_weights(spec) is spec
    assert resolve_weights("test-weights", progress=False).read_bytes() == payload
    other = WeightsSpec(**{**spec.__dict__, "url": "http://127.0.0.1:1/elsewhere.pth"})
    with pytest.raises(ConfigError, match="already registered"):
        register_weights(other)
    assert register_weights(other, overwrite=True) is get_weights_spec("test-weights")
