"""The HTTP server, through a real uvicorn on 127.0.0.1 and httpx: search with every modality,
composed and filtered queries, media ranges, refused traversal, upload limits, the API key,
ingest jobs, micro-batching, the query client, and schemathesis over the OpenAPI schema."""

from __future__ import annotations

import asyncio
import json
import shutil
import socket
from pathlib import Path

import httpx
import numpy as np
import pytest
from collection import VALID
from hypothesis import HealthCheck, settings
from media import write_image
from serverkit import API_KEY, RunningServer, shared_index, start_server
from typer.testing import CliRunner

import bindsearch
from bindsearch.cli import app as cli_app
from bindsearch.errors import ConfigError
from bindsearch.query import File, Text
from bindsearch.server import BatchConfig, ServerConfig, UploadLimits, create_app
from bindsearch.server.security import MediaSigner, check_bind, is_loopback

KEY = {"X-API-Key": API_KEY}
LIMIT_BYTES = 3 * 1024 * 1024
#: relative path -> the kind to send when the file name alone does not tell (folder conventions).
_KIND = {"depth/room.png": "depth", "thermal/person.png": "thermal", "imu/walk.csv": "imu"}


@pytest.fixture(scope="module")
def collection(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    return shared_index(tmp_path_factory)


@pytest.fixture(scope="module")
def server(collection, tmp_path_factory: pytest.TempPathFactory):
    _, index_dir = collection
    config = ServerConfig(
        index_dir, api_key=API_KEY, ingest_roots=(tmp_path_factory.mktemp("empty-root"),),
        batch=BatchConfig(max_wait_ms=20.0), uploads=UploadLimits(max_request_bytes=LIMIT_BYTES,
        max_files=4, max_text_bytes=4096), device="cpu",
    )  # fmt: skip
    running = start_server(config)
    yield running
    running.stop()


@pytest.fixture(scope="module")
def client(server: RunningServer):
    with httpx.Client(base_url=server.url, headers=KEY, timeout=60) as c:
        yield c


@pytest.fixture(scope="module")
def local(collection):
    return bindsearch.connect(collection[1], device="cpu", create=False)


def _upload(
    client: httpx.Client, files: list[tuple[str, Path, str | None]], query: str | None = None, **kw
):
    """POST /search multipart: ``(field, path, content_type)`` per file."""
    parts = [(field, (path.name, path.read_bytes(), ctype or "application/octet-stream"))
             for field, path, ctype in files]  # fmt: skip
    data = {"query": query} if query is not None else {}
    return client.post("/search", data=data, files=parts, **kw)


# --- search ----------------------------------------------------------------------------


def test_text_search_matches_the_library(client, local):
    response = client.post("/search", json={"parts": [{"text": "rain"}], "top_k": 5})
    assert response.status_code == 200, response.text
    body = response.json()
    expected = local.search(Text("rain"), k=5)
    assert [h["id"] for h in body["hits"]] == [h.id for h in expected]
    assert np.allclose([h["score"] for h in body["hits"]], [h.score for h in expected], atol=1e-5)
    assert body["query"] == ["+1 x text:rain"]
    assert all(h["media_url"].startswith(f"/items/{h['id']}/media?token=") for h in body["hits"])


@pytest.mark.parametrize("rel", sorted(VALID))
def test_upload_of_every_modality_finds_its_own_file(client, collection, rel):
    media, _ = collection
    modality = sorted(VALID[rel])[-1]  # street.mp4 is queried as video: look for its video row
    query: dict = {"modalities": [modality], "top_k": 3}
    if rel in _KIND:  # otherwise the server tells the kind from the file name
        query["parts"] = [{"upload": "f", "kind": _KIND[rel]}]
    response = _upload(client, [("f", media / rel, None)], json.dumps(query))
    assert response.status_code == 200, response.text
    top = response.json()["hits"][0]
    assert top["path"] == str(media / rel)
    assert top["score"] > 0.999


def test_composed_query_with_negative_weight_matches_the_library(client, collection, local):
    media, _ = collection
    query = (
        '{"parts": [{"text": "rain", "weight": 1}, {"upload": "a", "weight": -0.5}], "top_k": 6}'
    )
    response = _upload(client, [("a", media / "sounds/rain.wav", "audio/wav")], query)
    assert response.status_code == 200, response.text
    expected = local.search(Text("rain"), File("audio", media / "sounds/rain.wav", -0.5), k=6)
    got = response.json()
    assert [h["id"] for h in got["hits"]] == [h.id for h in expected]
    assert got["query"] == ["+1 x text:rain", "-0.5 x file:rain.wav"]


def test_filters_and_segments(client, collection):
    media, _ = collection
    audio = client.post(
        "/search",
        json={"parts": [{"text": "x"}], "modalities": ["audio"], "segments": True, "top_k": 50},
    ).json()["hits"]
    assert {h["modality"] for h in audio} == {"audio"}
    assert any(h["start_s"] is not None for h in audio)  # 2 s segments of long.flac
    under = client.post(
        "/search", json={"parts": [{"text": "x"}], "path": str(media / "photos"), "top_k": 50}
    ).json()["hits"]
    assert under and all(h["path"].startswith(str(media / "photos") + "/") for h in under)
    long = client.post(
        "/search", json={"parts": [{"text": "x"}], "where": "duration_s > 5", "top_k": 50}
    ).json()["hits"]
    assert long and all(h["duration_s"] > 5 for h in long)
    bad = client.post("/search", json={"parts": [{"text": "x"}], "where": "nosuch = 1"})
    assert bad.status_code == 400 and "filter" in bad.json()["detail"]


def test_query_by_item_and_item_metadata(client):
    first = client.post(
        "/search", json={"parts": [{"text": "dog"}], "modalities": ["image"], "top_k": 1}
    ).json()["hits"][0]
    again = client.post("/search", json={"parts": [{"id": first["id"]}], "top_k": 1}).json()[
        "hits"
    ][0]
    assert again["id"] == first["id"] and again["score"] > 0.999
    item = client.get(f"/items/{first['id']}")
    assert item.status_code == 200 and item.json()["path"] == first["path"]
    assert item.json()["width"] is not None
    assert client.get(f"/items/{'0' * 32}").status_code == 404
    assert client.get("/items/not-an-id").status_code == 422
    missing = client.post("/search", json={"parts": [{"id": "0" * 32}]})
    assert missing.status_code == 400 and "no item" in missing.json()["detail"]


def test_classify_json_and_upload(client, collection):
    media, _ = collection
    by_text = client.post(
        "/classify", json={"part": {"text": "a dog"}, "labels": ["dog", "rain", "car"]}
    )
    assert by_text.status_code == 200, by_text.text
    scores = by_text.json()["scores"]
    assert sorted(s["label"] for s in scores) == ["car", "dog", "rain"]
    assert abs(sum(s["probability"] for s in scores) - 1) < 1e-4
    path = media / "sounds/rain.wav"
    upload = client.post("/classify", data={"query": '{"labels": ["dog", "rain"]}'},
                         files={"f": (path.name, path.read_bytes(), "audio/wav")})  # fmt: skip
    assert upload.status_code == 200, upload.text
    assert (
        client.post("/classify", json={"part": {"text": "x"}, "labels": ["one"]}).status_code == 422
    )


def test_concurrent_queries_are_micro_batched_and_correct(server, client, local):
    texts = [f"query number {i}" for i in range(16)]
    before = client.get("/stats").json()["batching"]

    async def run() -> list[dict]:
        async with httpx.AsyncClient(base_url=server.url, headers=KEY, timeout=60) as c:
            responses = await asyncio.gather(
                *(c.post("/search", json={"parts": [{"text": t}], "top_k": 3}) for t in texts)
            )
        return [r.json() for r in responses]

    results = asyncio.run(run())
    for text, result in zip(texts, results, strict=True):
        assert [h["id"] for h in result["hits"]] == [h.id for h in local.search(Text(text), k=3)]
    after = client.get("/stats").json()["batching"]
    passes = after["passes"]["text"] - before["passes"].get("text", 0)
    items = after["items"]["text"] - before["items"].get("text", 0)
    assert items == len(texts)
    assert passes < items and after["largest"]["text"] > 1


def test_stats_and_health(client, server, local):
    stats = client.get("/stats").json()
    assert stats["model"] == "imagebind-tiny" and stats["dim"] == 64
    assert stats["rows_by_modality"] == local.count_by_modality()
    assert stats["rows_total"] == sum(local.count_by_modality().values())
    health = httpx.get(f"{server.url}/health").json()
    assert health == {"status": "ok", "service": "bindsearch", "version": bindsearch.__version__,
                      "auth_required": True}  # fmt: skip


# --- media -----------------------------------------------------------------------------


def _audio_hit(client: httpx.Client) -> dict:
    hits = client.post(
        "/search", json={"parts": [{"text": "x"}], "modalities": ["audio"], "top_k": 20}
    ).json()["hits"]
    return next(h for h in hits if h["path"].endswith("rain.wav"))


def test_media_streams_with_ranges(client):
    hit = _audio_hit(client)
    data = Path(hit["path"]).read_bytes()
    whole = client.get(f"/items/{hit['id']}/media")
    assert whole.status_code == 200 and whole.content == data
    assert whole.headers["accept-ranges"] == "bytes"
    assert whole.headers["content-type"].startswith("audio/")
    part = client.get(f"/items/{hit['id']}/media", headers={"Range": "bytes=100-199"})
    assert part.status_code == 206 and part.content == data[100:200]
    assert part.headers["content-range"] == f"bytes 100-199/{len(data)}"
    tail = client.get(f"/items/{hit['id']}/media", headers={"Range": "bytes=-10"})
    assert tail.status_code == 206 and tail.content == data[-10:]
    beyond = client.get(f"/items/{hit['id']}/media", headers={"Range": f"bytes={len(data) + 5}-"})
    assert beyond.status_code == 416
    assert beyond.headers["content-range"] == f"bytes */{len(data)}"


def test_video_media_range(client, collection):
    media, _ = collection
    hits = client.post(
        "/search", json={"parts": [{"text": "x"}], "modalities": ["video"], "top_k": 5}
    ).json()["hits"]
    hit = next(h for h in hits if h["path"].endswith("street.mp4"))
    response = client.get(f"/items/{hit['id']}/media", headers={"Range": "bytes=0-15"})
    assert response.status_code == 206 and response.headers["content-type"] == "video/mp4"
    assert response.content == (media / "clips/street.mp4").read_bytes()[:16]


def test_signed_media_links_open_one_item_without_the_key(server, client):
    hit = _audio_hit(client)
    anonymous = httpx.Client(base_url=server.url)
    assert anonymous.get(hit["media_url"]).status_code == 200
    assert anonymous.get(f"/items/{hit['id']}/media").status_code == 401
    other = client.post(
        "/search", json={"parts": [{"text": "x"}], "modalities": ["image"], "top_k": 1}
    ).json()["hits"][0]
    token = hit["media_url"].split("token=")[1]
    assert anonymous.get(f"/items/{other['id']}/media", params={"token": token}).status_code == 401
    assert anonymous.get(f"/items/{hit['id']}/media", params={"token": "1.abc"}).status_code == 401
    signer = MediaSigner(60)
    assert not signer.verify("a" * 32, signer.sign("a" * 32, now=0), now=61)


def _raw_get(url: str, target: str) -> tuple[int, bytes]:
    """A GET with ``target`` sent byte for byte (no client-side path normalisation)."""
    host, port = url.removeprefix("http://").split(":")
    with socket.create_connection((host, int(port)), timeout=10) as sock:
        head = f"GET {target} HTTP/1.1\r\nHost: x\r\nX-API-Key: {API_KEY}\r\nConnection: close"
        sock.sendall(f"{head}\r\n\r\n".encode())
        data = b""
        while chunk := sock.recv(65536):
            data += chunk
    return int(data.split(b" ", 2)[1]), data


@pytest.mark.parametrize("target", [
    "/items/../../../../etc/passwd/media", "/items/..%2F..%2F..%2Fetc%2Fpasswd/media",
    "/items/%2e%2e/media", "/static/../../../../etc/passwd", "/static/..%2F..%2Fapp.py",
    "/static/%2e%2e/%2e%2e/server/app.py", "/items/0123/media?path=/etc/passwd",
])  # fmt: skip
def test_path_traversal_is_refused(server, target):
    status, data = _raw_get(server.url, target)
    assert status in (400, 404, 422)
    assert b"root:" not in data and b"def create_app" not in data


def test_upload_names_never_reach_the_filesystem(client, collection, tmp_path):
    media, _ = collection
    evil = tmp_path / "evil.wav"
    response = client.post(
        "/search", files={"f": (str(evil), (media / "sounds/rain.wav").read_bytes(), "audio/wav")}
    )
    assert response.status_code == 200
    assert response.json()["query"] == ["+1 x file:evil.wav"]
    climb = "../" * 12 + str(tmp_path / "sneaky.wav").lstrip("/")
    sneaky = client.post("/search", files={"f": (climb, b"RIFF", "audio/wav")})
    assert sneaky.status_code == 422 and "sneaky.wav" in sneaky.json()["detail"]
    assert list(tmp_path.iterdir()) == []


def test_uploads_are_deleted_after_the_request(server, client, collection, monkeypatch):
    import tempfile

    made: list[str] = []
    real = tempfile.TemporaryDirectory

    def spy(*args, **kwargs):
        directory = real(*args, **kwargs)
        made.append(directory.name)
        return directory

    monkeypatch.setattr("bindsearch.server.routes.tempfile.TemporaryDirectory", spy)
    media, _ = collection
    assert _upload(client, [("f", media / "photos/beach.png", "image/png")]).status_code == 200
    assert made and not any(Path(d).exists() for d in made)


def test_ingest_paths_are_confined_to_the_ingest_roots(client):
    for outside in ("/etc", "../../../etc", "/", "~", "\u0000"):
        response = client.post("/ingest", json={"paths": [outside]})
        assert response.status_code in (400, 403, 404), (outside, response.text)


# --- rejected input ----------------------------------------------------------------------


def test_oversize_uploads_are_rejected(client, collection, tmp_path):
    big = tmp_path / "big.wav"
    big.write_bytes(b"\0" * (LIMIT_BYTES + 1))
    response = _upload(client, [("f", big, "audio/wav")])
    assert response.status_code == 413 and "limit" in response.json()["detail"]

    def chunks():  # no Content-Length: the limit is enforced while the body streams in
        for _ in range(LIMIT_BYTES // 65536 + 2):
            yield b"x" * 65536

    streamed = client.post(
        "/search", content=chunks(), headers={"Content-Type": "application/json"}
    )
    assert streamed.status_code == 413
    text = tmp_path / "long.txt"
    text.write_text("word " * 2000)
    too_long = _upload(client, [("f", text, "text/plain")])
    assert too_long.status_code == 413 and "text files" in too_long.json()["detail"]


@pytest.mark.parametrize("rel,ctype,status,needle", [
    ("photos/corrupt.jpg", "image/jpeg", 422, "corrupt.jpg"),
    ("sounds/empty.wav", "audio/wav", 422, "empty"),
    ("clips/truncated.mp4", "video/mp4", 422, "truncated.mp4"),
    ("imu/bad.csv", "text/csv", 415, "modality"),
    ("docs/manual.pdf", "application/pdf", 415, "modality"),
    ("photos/beach.png", "audio/wav", 415, "not a image type"),
])  # fmt: skip
def test_malformed_uploads_are_rejected_with_a_message(
    client, collection, rel, ctype, status, needle
):
    media, _ = collection
    response = _upload(client, [("f", media / rel, ctype)])
    assert response.status_code == status, response.text
    assert needle in response.json()["detail"]


@pytest.mark.parametrize("kwargs,status", [
    ({"content": b"{not json", "headers": {"Content-Type": "application/json"}}, 422),
    ({"content": b"", "headers": {"Content-Type": "application/json"}}, 422),
    ({"json": {"parts": [{"text": "x", "id": "y"}]}}, 422),
    ({"json": {"parts": [{"text": "x", "weight": "heavy"}]}}, 422),
    ({"json": {"parts": [{"text": "x"}], "top_k": 0}}, 422),
    ({"json": {"parts": [{"text": "x"}], "modalities": ["smell"]}}, 422),
    ({"json": {"parts": []}}, 400),
    ({"json": {"parts": [{"vector": [1.0, 2.0]}]}}, 400),
    ({"json": {"parts": [{"upload": "nothing"}]}}, 400),
    ({"content": b"text=rain", "headers": {"Content-Type": "text/plain"}}, 415),
    ({"data": {"query": "{oops"}, "files": {"f": ("a.png", b"x", "image/png")}}, 422),
    ({"data": {"text": "rain"}, "files": {"f": ("a.png", b"x", "image/png")}}, 400),
    ({"files": [(f"f{i}", ("a.png", b"x", "image/png")) for i in range(5)]}, 400),
])  # fmt: skip
def test_malformed_requests_get_4xx_with_a_message(client, kwargs, status):
    response = client.post("/search", **kwargs)
    assert response.status_code == status, response.text
    assert response.json()["detail"]


# --- API key, bind, CORS ---------------------------------------------------------------------


@pytest.mark.parametrize("method,path", [
    ("POST", "/search"), ("POST", "/classify"), ("POST", "/ingest"), ("GET", "/stats"),
    ("GET", f"/items/{'0' * 32}"), ("GET", f"/items/{'0' * 32}/media"),
    ("GET", f"/jobs/{'0' * 32}"), ("GET", "/openapi.json"),
])  # fmt: skip
def test_api_key_is_required_on_every_route_but_health(server, method, path):
    body = {"json": {"parts": [{"text": "x"}]}} if method == "POST" else {}
    for headers in ({}, {"X-API-Key": "wrong"}, {"Authorization": "Bearer wrong"}):
        response = httpx.request(method, server.url + path, headers=headers, **body)
        assert response.status_code == 401, (path, headers)
        assert "API key" in response.json()["detail"]
    bearer = httpx.request(
        method, server.url + path, headers={"Authorization": f"Bearer {API_KEY}"}, **body
    )
    assert bearer.status_code != 401
    assert httpx.get(server.url + "/health").status_code == 200
    assert httpx.get(server.url + "/").status_code == 200  # the page itself holds no data


def test_bind_rules(tmp_path):
    assert is_loopback("127.0.0.1") and is_loopback("::1") and is_loopback("localhost")
    assert (
        not is_loopback("0.0.0.0")
        and not is_loopback("192.168.1.4")
        and not is_loopback("example.org")
    )
    with pytest.raises(ConfigError, match="api-key"):
        check_bind(ServerConfig(tmp_path, host="0.0.0.0"))
    check_bind(ServerConfig(tmp_path, host="0.0.0.0", api_key="k"))
    check_bind(ServerConfig(tmp_path, host="0.0.0.0", insecure=True))
    result = CliRunner().invoke(cli_app, ["serve", "--index", str(tmp_path), "--host", "0.0.0.0"])
    assert result.exit_code != 0 and "api-key" in str(result.exception or result.output)


def test_cors_is_off_unless_configured(tmp_path):
    from starlette.testclient import TestClient

    preflight = {"Origin": "http://example.org", "Access-Control-Request-Method": "POST"}
    off = TestClient(create_app(ServerConfig(tmp_path))).options("/search", headers=preflight)
    assert "access-control-allow-origin" not in off.headers
    on_app = create_app(ServerConfig(tmp_path, cors_origins=("http://example.org",)))
    on = TestClient(on_app).options("/search", headers=preflight)
    assert on.headers["access-control-allow-origin"] == "http://example.org"


# --- ingest jobs -----------------------------------------------------------------------------


def test_ingest_job_reports_progress_and_reloads_the_index(collection, tmp_path):
    _, index_dir = collection
    copy = tmp_path / "index"
    shutil.copytree(index_dir, copy)
    root = tmp_path / "incoming"
    (root / "new").mkdir(parents=True)
    write_image(root / "new/fresh.png", 40, 30, seed=9)
    (root / "escape").symlink_to("/etc")
    config = ServerConfig(
        copy, api_key=API_KEY, ingest_roots=(root,), ingest_workers=0, device="cpu"
    )
    running = start_server(config)
    try:
        with httpx.Client(base_url=running.url, headers=KEY, timeout=60) as c:
            before = c.get("/stats").json()["rows_total"]
            started = c.post("/ingest", json={"paths": ["new"]})
            assert started.status_code == 202, started.text
            job = started.json()
            for _ in range(600):
                job = c.get(f"/jobs/{job['id']}").json()
                if job["state"] in ("done", "failed"):
                    break
                asyncio.run(asyncio.sleep(0.1))
            assert job["state"] == "done", job
            assert job["progress"]["rows_written"] == 1 and job["report"]["files_ingested"] == 1
            assert c.get("/stats").json()["rows_total"] == before + 1
            hits = c.post(
                "/search", json={"parts": [{"text": "x"}], "path": str(root), "top_k": 5}
            ).json()["hits"]
            assert [h["path"] for h in hits] == [str(root / "new/fresh.png")]
            assert c.get(f"/jobs/{'0' * 32}").status_code == 404
            assert c.post("/ingest", json={"paths": ["missing"]}).status_code == 404
            assert c.post("/ingest", json={"paths": ["escape"]}).status_code == 403  # symlink out
            assert (
                c.post("/ingest", json={"paths": [str(root / "escape/passwd")]}).status_code == 403
            )
    finally:
        running.stop()


# --- the query command's client ----------------------------------------------------------------


def test_query_command_sends_to_a_server(server, collection, local, monkeypatch):
    media, _ = collection
    monkeypatch.setenv("BINDSEARCH_API_KEY", API_KEY)
    runner = CliRunner()
    args = [
        "query",
        "--text",
        "rain::1",
        "--audio",
        f"{media / 'sounds/rain.wav'}::-0.5",
        "--top-k",
        "4",
        "--json",
    ]
    result = runner.invoke(cli_app, [*args, "--server", server.url])
    assert result.exit_code == 0, result.output
    expected = local.search(Text("rain"), File("audio", media / "sounds/rain.wav", -0.5), k=4)
    assert [h["id"] for h in json.loads(result.stdout)] == [h.id for h in expected]
    assert set(json.loads(result.stdout)[0]) == set(expected[0].to_dict())
    # auto-detection: no --index, a bindsearch server answering on the default URL
    monkeypatch.setattr("bindsearch.server.client.DEFAULT_URL", server.url)
    detected = runner.invoke(cli_app, args)
    assert detected.exit_code == 0 and json.loads(detected.stdout) == json.loads(result.stdout)
    monkeypatch.delenv("BINDSEARCH_API_KEY")
    refused = runner.invoke(cli_app, [*args, "--server", server.url])
    assert refused.exit_code != 0 and "401" in str(refused.exception)


# --- schemathesis ------------------------------------------------------------------------------

#: Every operation of the schema (checked against it, so a new route cannot skip the fuzzing).
OPERATIONS = [("POST", "/search"), ("POST", "/classify"), ("GET", "/items/{item_id}"),
              ("GET", "/items/{item_id}/media"), ("POST", "/ingest"), ("GET", "/jobs/{job_id}"),
              ("GET", "/stats"), ("GET", "/health")]  # fmt: skip


@pytest.fixture(scope="module")
def api_schema(server):
    import schemathesis

    return schemathesis.openapi.from_url(f"{server.url}/openapi.json", headers=KEY)


def test_fuzzing_covers_every_operation(api_schema):
    found = {(op.ok().method.upper(), op.ok().path) for op in api_schema.get_all_operations()}
    assert found == set(OPERATIONS)


@pytest.mark.parametrize("method,path", OPERATIONS)
def test_openapi_fuzz_never_gives_a_5xx(api_schema, method, path):
    """Valid and invalid requests generated from the schema: any answer but a 5xx."""
    from hypothesis import given
    from hypothesis import strategies as st
    from schemathesis import GenerationMode

    operation = api_schema[path][method]
    cases = st.one_of(operation.as_strategy(GenerationMode.POSITIVE),
                      operation.as_strategy(GenerationMode.NEGATIVE))  # fmt: skip

    @given(case=cases)
    @settings(max_examples=25, deadline=None, database=None,
              suppress_health_check=list(HealthCheck))  # fmt: skip
    def check(case) -> None:
        response = case.call(headers=KEY, timeout=60)
        assert response.status_code < 500, (case.as_curl_command(), response.text[:500])

    check()
