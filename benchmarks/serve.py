"""``bindsearch serve`` under load: p50/p99 latency and throughput of text and audio queries at
1, 8 and 64 concurrent clients, with micro-batching on and off (the named baseline: every
request encoded on its own, concurrently, no batching).

Builds an index of ``--rows`` random unit vectors (fake paths) recorded for the model, with a
FAISS sidecar as ``bindsearch index build`` makes it, starts ``bindsearch serve`` in a separate
process for each batching mode, and drives it with asyncio httpx clients from this process for
``--seconds`` per cell. Text queries are distinct short sentences; audio queries upload a
generated 2 s, 16 kHz WAV (multipart). The server's ``/stats`` counters give the mean number of
inputs per forward pass in each cell.

    python benchmarks/serve.py                       # imagebind-tiny on the CPU
    python benchmarks/serve.py --size huge --device cuda [--weights imagebind_huge.pth]
    python benchmarks/serve.py --seconds 5 --write-results

With ``--size huge`` and no ``--weights``, a random checkpoint in the official layout (4.8 GB)
is generated once in the work dir (``cold_start.make_checkpoint``). Clients and server share
the machine: on a 2-core box the client's own CPU time is part of what is measured.
"""

from __future__ import annotations

import argparse
import asyncio
import io
import json
import os
import platform
import signal
import subprocess
import sys
import tempfile
import time
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import numpy as np

REPO = Path(__file__).resolve().parents[1]
RESULTS_PATH = REPO / "benchmarks" / "RESULTS.md"
HEADING = "## Serve"
WORDS = "dog rain engine bird street music voice water wind crowd bell door car train".split()


def make_index(directory: Path, model: str, weights_id: str, dim: int, rows: int) -> float:
    """An index of ``rows`` random unit vectors for ``model`` plus its FAISS sidecar; returns
    the sidecar's build seconds."""
    import pyarrow as pa

    from bindsearch.indexes import build_index
    from bindsearch.store import Store, items_schema, make_item_id

    store = Store.open(directory)
    store.ensure_model(model, weights_id, dim)
    schema = items_schema(dim)
    rng = np.random.default_rng(0)
    now = datetime.now(timezone.utc)
    kinds = ("audio", "image", "video", "text")
    for start in range(0, rows, 50_000):
        n = min(50_000, rows - start)
        vectors = rng.standard_normal((n, dim), dtype=np.float32)
        vectors /= np.linalg.norm(vectors, axis=1, keepdims=True)
        modality = [kinds[i % 4] for i in range(start, start + n)]
        paths = [
            f"/data/item{i:07d}.{m}" for i, m in zip(range(start, start + n), modality, strict=True)
        ]
        columns = {"id": [make_item_id(p, m, None, None) for p, m in zip(paths, modality, strict=True)],
                   "path": paths, "modality": modality, "start_s": [None] * n, "end_s": [None] * n,
                   "sha256": ["0" * 64] * n, "size_bytes": [1] * n, "mtime": [0.0] * n,
                   "duration_s": [10.0] * n, "width": [None] * n, "height": [None] * n,
                   "text": [None] * n, "ingested_at": [now] * n}  # fmt: skip
        arrays = {
            name: pa.array(values, type=schema.field(name).type) for name, values in columns.items()
        }
        flat = pa.array(vectors.reshape(-1), pa.float32())
        arrays["vector"] = pa.FixedSizeListArray.from_arrays(flat, dim).cast(
            schema.field("vector").type
        )
        store.replace_files(
            paths, pa.Table.from_arrays([arrays[f.name] for f in schema], schema=schema)
        )
    return build_index(store).build_seconds


def time_library_search(index_dir: Path, dim: int, queries: int = 50) -> float:
    """Median ms of an in-process ``Index.search`` with a ready vector (no encoding, no HTTP):
    the floor under every request of the table."""
    import bindsearch
    from bindsearch.query import Vector

    index = bindsearch.connect(index_dir, create=False)
    rng = np.random.default_rng(2)
    seconds = []
    for _ in range(queries):
        vector = rng.standard_normal(dim).astype(np.float32)
        started = time.perf_counter()
        index.search(Vector(vector), k=10)
        seconds.append(time.perf_counter() - started)
    return float(np.median(seconds[5:]) * 1000)


def wav_bytes(seconds: float = 2.0, rate: int = 16_000) -> bytes:
    """A 2 s noisy chord as 16-bit PCM WAV."""
    import soundfile

    t = np.arange(int(seconds * rate)) / rate
    rng = np.random.default_rng(1)
    signal_ = (
        0.3 * np.sin(2 * np.pi * 440 * t)
        + 0.2 * np.sin(2 * np.pi * 660 * t)
        + 0.05 * rng.standard_normal(t.size)
    )
    buffer = io.BytesIO()
    soundfile.write(buffer, signal_.astype(np.float32), rate, format="WAV", subtype="PCM_16")
    return buffer.getvalue()


def start_server(
    args: argparse.Namespace,
    port: int,
    index_dir: Path,
    weights: Path | None,
    batching: bool,
    env: dict,
) -> tuple[subprocess.Popen, str]:
    """``bindsearch serve`` in a new process; returns it and its URL once /health answers."""
    import httpx

    command = [sys.executable, "-m", "bindsearch", "serve", "--index", str(index_dir),
               "--port", str(port), "--batching" if batching else "--no-batching",
               "--batch-max", str(args.batch_max), "--batch-wait-ms", str(args.batch_wait_ms)]  # fmt: skip
    if weights is not None:
        command += ["--weights", str(weights)]
    if args.device:
        command += ["--device", args.device]
    process = subprocess.Popen(command, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 600
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"the server exited: {process.stderr.read().decode()[-2000:]}")  # type: ignore[union-attr]
        try:
            if httpx.get(f"{url}/health", timeout=1).status_code == 200:
                return process, url
        except httpx.HTTPError:
            pass
        time.sleep(0.2)
    process.kill()
    raise RuntimeError("the server did not start within 600 s")


async def run_cell(
    url: str, kind: str, clients: int, seconds: float, audio: bytes
) -> dict[str, Any]:
    """``clients`` concurrent loops of one request at a time for ``seconds``; latencies in ms."""
    import httpx

    latencies: list[float] = []
    errors = 0
    counter = 0

    async def one(client: httpx.AsyncClient) -> None:
        nonlocal counter, errors
        counter += 1
        started = time.perf_counter()
        if kind == "text":
            words = " ".join(WORDS[(counter * 7 + i) % len(WORDS)] for i in range(4))
            response = await client.post(
                "/search", json={"parts": [{"text": f"{words} {counter}"}], "top_k": 10}
            )
        else:
            response = await client.post("/search", data={"query": '{"top_k": 10}'},
                                         files={"f": ("clip.wav", audio, "audio/wav")})  # fmt: skip
        if response.status_code != 200:
            errors += 1
        latencies.append((time.perf_counter() - started) * 1000)

    async def loop(client: httpx.AsyncClient, until: float) -> None:
        while time.perf_counter() < until:
            await one(client)

    limits = httpx.Limits(max_connections=clients, max_keepalive_connections=clients)
    async with httpx.AsyncClient(base_url=url, timeout=600, limits=limits) as client:
        await asyncio.gather(*(one(client) for _ in range(min(clients, 8))))  # warm-up
        latencies.clear()
        before = (await client.get("/stats")).json()["batching"]
        started = time.perf_counter()
        await asyncio.gather(*(loop(client, started + seconds) for _ in range(clients)))
        elapsed = time.perf_counter() - started
        after = (await client.get("/stats")).json()["batching"]
    tower = "text" if kind == "text" else "audio"
    passes = after["passes"].get(tower, 0) - before["passes"].get(tower, 0)
    items = after["items"].get(tower, 0) - before["items"].get(tower, 0)
    return {"kind": kind, "clients": clients, "requests": len(latencies), "errors": errors,
            "p50_ms": float(np.percentile(latencies, 50)), "p99_ms": float(np.percentile(latencies, 99)),
            "rps": len(latencies) / elapsed, "mean_batch": items / passes if passes else 0.0}  # fmt: skip


def run(args: argparse.Namespace) -> dict[str, Any]:
    work = args.workdir or Path(tempfile.mkdtemp(prefix="bindsearch-serve-bench-"))
    work.mkdir(parents=True, exist_ok=True)
    env = {**os.environ, "BINDSEARCH_HOME": str(work / "home"), "BINDSEARCH_API_KEY": ""}
    os.environ["BINDSEARCH_HOME"] = env["BINDSEARCH_HOME"]
    model, weights = (
        ("imagebind-tiny", None) if args.size == "tiny" else ("imagebind-huge", args.weights)
    )
    if args.size == "huge" and weights is None:
        from cold_start import make_checkpoint

        weights = work / "imagebind_huge.pth"
        if not weights.exists():
            make_checkpoint(weights)
    from bindsearch.encode import create_encoder

    encoder = create_encoder(model, weights, device="cpu")  # the weights id the index records
    index_dir = work / f"index-{args.size}-{args.rows}"
    build_s = None
    if not index_dir.exists():
        build_s = make_index(index_dir, model, encoder.weights_id, encoder.embed_dim, args.rows)
    search_ms = time_library_search(index_dir, encoder.embed_dim)
    audio = wav_bytes()
    cells = []
    # Both servers run throughout and each cell is measured on then off, back to back, so
    # that the load of a shared machine falls on both alike.
    servers = {}
    try:
        for batching, port in ((True, args.port), (False, args.port + 1)):
            servers[batching] = start_server(args, port, index_dir, weights, batching, env)
        for kind in args.kinds:
            for clients in args.clients:
                for batching, (_, url) in servers.items():
                    cell = asyncio.run(run_cell(url, kind, clients, args.seconds, audio))
                    cell["batching"] = batching
                    cells.append(cell)
                    print(json.dumps(cell), file=sys.stderr)
    finally:
        for process, _ in servers.values():
            process.send_signal(signal.SIGINT)
            process.wait(timeout=60)
    load = os.getloadavg()[1]  # 5-minute load average over the run: other jobs on the machine
    config = {**describe(args, model, build_s), "search_ms": search_ms, "load": load}
    return {"config": config, "cells": cells}


def describe(args: argparse.Namespace, model: str, build_s: float | None) -> dict[str, Any]:
    import fastapi
    import torch
    import uvicorn

    cpu = next((line.split(":", 1)[1].strip() for line in Path("/proc/cpuinfo").read_text().splitlines()
                if line.startswith("model name")), platform.processor())  # fmt: skip
    device = args.device or ("cuda" if torch.cuda.is_available() else "cpu")
    if device.startswith("cuda"):
        device = f"{device} ({torch.cuda.get_device_name()})"
    return {"date": datetime.now(timezone.utc).isoformat(timespec="seconds"), "cpu": cpu,
            "cores": os.cpu_count(), "device": device, "model": model, "rows": args.rows,
            "seconds": args.seconds, "batch_max": args.batch_max, "batch_wait_ms": args.batch_wait_ms,
            "faiss_build_s": build_s, "torch": torch.__version__, "fastapi": fastapi.__version__,
            "uvicorn": uvicorn.__version__, "python": platform.python_version(),
            "command": "python benchmarks/serve.py " + " ".join(sys.argv[1:])}  # fmt: skip


def render(result: dict[str, Any]) -> str:
    c = result["config"]
    lines = [
        HEADING, "",
        f"### {c['model']} on {c['device']}, {c['rows']:,} rows", "",
        f"- date: {c['date']}; CPU: {c['cpu']}, {c['cores']} threads, shared with the clients "
        f"and other jobs (5-min load average {c['load']:.1f} at the end)",
        f"- torch {c['torch']}, fastapi {c['fastapi']}, uvicorn {c['uvicorn']}, python {c['python']}",
        f"- {c['seconds']} s per cell after a warm-up; micro-batching: up to {c['batch_max']} inputs, "
        f"wait ≤ {c['batch_wait_ms']} ms; baseline: batching off (each request encoded alone, concurrently)",
        "- text: distinct 5-word queries as JSON; audio: a 2 s 16 kHz WAV uploaded as multipart; top-k 10 "
        "through the FAISS sidecar (`bindsearch index build` default)",
        f"- in-process `Index.search` of a ready vector on this index (no encoding, no HTTP): "
        f"median {c['search_ms']:.1f} ms, the floor under every request below",
        f"- command: `{c['command']}`", "",
        "| query | clients | batching | requests | p50 ms | p99 ms | req/s | inputs/pass | req/s vs off |",
        "|---|---|---|---|---|---|---|---|---|",
    ]  # fmt: skip
    off = {(x["kind"], x["clients"]): x["rps"] for x in result["cells"] if not x["batching"]}
    for x in sorted(result["cells"], key=lambda x: (x["kind"], x["clients"], not x["batching"])):
        ratio = (
            x["rps"] / off[(x["kind"], x["clients"])]
            if off.get((x["kind"], x["clients"]))
            else float("nan")
        )
        errors = f" ({x['errors']} errors)" if x["errors"] else ""
        lines.append(f"| {x['kind']} | {x['clients']} | {'on' if x['batching'] else 'off'} | "
                     f"{x['requests']}{errors} | {x['p50_ms']:.1f} | {x['p99_ms']:.1f} | {x['rps']:.1f} | "
                     f"{x['mean_batch']:.1f} | {ratio:.2f}x |")  # fmt: skip
    if c["model"] == "imagebind-tiny":
        lines += ["", "Reading: with imagebind-tiny a forward pass costs about a millisecond, so "
                  "every request is bound by the search itself (the in-process floor above) and "
                  "by HTTP; micro-batching does coalesce concurrent inputs (inputs/pass), but "
                  "cannot buy much here and the on/off ratios are within this shared machine's "
                  "noise. Batching pays where the encoder dominates: huge-sized weights, above "
                  "all on a GPU (`--size huge --device cuda`)."]  # fmt: skip
    return "\n".join(lines) + "\n"


def write_results(section: str) -> None:
    """Replace (or append) the ``## Serve`` section of RESULTS.md; keep every other section.

    The file is re-read right before writing: other benchmarks write their own sections."""
    text = RESULTS_PATH.read_text() if RESULTS_PATH.exists() else "# Benchmark results\n"
    lines = text.splitlines(keepends=True)
    start = next((i for i, line in enumerate(lines) if line.rstrip("\n") == HEADING), None)
    if start is None:
        RESULTS_PATH.write_text(text.rstrip("\n") + "\n\n" + section)
        return
    end = next((i for i in range(start + 1, len(lines)) if lines[i].startswith("## ")), len(lines))
    tail = "".join(lines[end:])
    RESULTS_PATH.write_text("".join(lines[:start]) + section + ("\n" + tail if tail else ""))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--size", choices=["tiny", "huge"], default="tiny")
    parser.add_argument("--weights", type=Path, help="imagebind-huge checkpoint (--size huge)")
    parser.add_argument("--device", help="server device (default: best available)")
    parser.add_argument("--rows", type=int, default=100_000)
    parser.add_argument("--seconds", type=float, default=5.0, help="measured seconds per cell")
    parser.add_argument(
        "--clients", type=lambda s: [int(x) for x in s.split(",")], default=[1, 8, 64]
    )
    parser.add_argument("--kinds", type=lambda s: s.split(","), default=["text", "audio"])
    parser.add_argument("--batch-max", type=int, default=32)
    parser.add_argument("--batch-wait-ms", type=float, default=2.0)
    parser.add_argument("--port", type=int, default=8765, help="batching on; off uses PORT+1")
    parser.add_argument(
        "--workdir", type=Path, help="keep the index (and a generated checkpoint) here"
    )
    parser.add_argument("--json", action="store_true")
    parser.add_argument("--write-results", action="store_true")
    args = parser.parse_args()
    result = run(args)
    print(json.dumps(result, indent=2) if args.json else render(result))
    if args.write_results:
        write_results(render(result))


if __name__ == "__main__":
    sys.path.insert(0, str(Path(__file__).parent))
    main()
