"""Soak: a live server under queries while writers ingest and prune and the index is rebuilt.

For ``--minutes`` (default 10) on loopback only:

* one ``bindsearch serve`` answers ``--clients`` (default 8) concurrent clients: text searches with
  and without filters (modality, a path glob, a ``where`` predicate), ``/stats``, ``/items/{id}``
  and ranged ``/items/{id}/media`` of ids seen in results;
* writer 1 changes, removes and restores files in folders A and B and runs
  ``bindsearch ingest A B --prune`` after each change; writer 2 does the same with C and runs
  ``bindsearch ingest B C --prune`` (B is shared: both write its rows);
* a third process runs ``bindsearch index build`` over and over.

At the end (all writers finished their last pass) it checks the table against the files on disk:
duplicate ids, duplicate (path, modality, window) rows, files on disk without a row or with a
stale hash (lost), rows of files no longer on disk (resurrected), and whether the server's
``/stats`` matches the table within 2 s. Targets: 0 server errors (5xx or transport failures),
0 duplicates, 0 lost. A 404 for an item pruned between a search and the follow-up request is
correct behaviour and counted separately.

    python benchmarks/soak.py                      # 10 minutes, imagebind-tiny on the CPU
    python benchmarks/soak.py --minutes 2 --write-results

The figures go to ``benchmarks/RESULTS.md`` (section "## Soak") with ``--write-results``.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import random
import re
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from collections import Counter
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "tests"))  # the media generators the tests use

from media import tone, write_image, write_soundfile  # noqa: E402

RESULTS_PATH = Path(__file__).with_name("RESULTS.md")
SECTION_TITLE = "## Soak"
MODEL = "imagebind-tiny"
WORDS = "dog rain engine bird street music voice water wind crowd bell door car train".split()
CLI = [sys.executable, "-m", "bindsearch"]


@dataclass
class Requests:
    """Per-request outcomes from all clients (appended under a lock)."""

    lock: threading.Lock = field(default_factory=threading.Lock)
    latencies_ms: dict[str, list[float]] = field(default_factory=dict)
    statuses: Counter = field(default_factory=Counter)
    failures: list[str] = field(default_factory=list)

    def add(self, kind: str, status: int | str, ms: float, note: str = "") -> None:
        with self.lock:
            self.latencies_ms.setdefault(kind, []).append(ms)
            self.statuses[f"{kind} {status}"] += 1
            if isinstance(status, str) or status >= 500:
                if len(self.failures) < 20:
                    self.failures.append(f"{kind} {status} {note[:200]}")


@dataclass
class WriterLog:
    """What one writer process did."""

    name: str
    passes: int = 0
    exit_codes: Counter = field(default_factory=Counter)
    failures: list[str] = field(default_factory=list)


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def make_folder(root: Path, name: str, files: int, seed: int) -> Path:
    """``files`` small media files (PNG, 1 s WAV, text) under ``root/name``."""
    folder = root / name
    folder.mkdir(parents=True)
    for i in range(files):
        kind = i % 3
        if kind == 0:
            write_image(folder / f"img_{i:03d}.png", 48, 40, seed=seed * 1000 + i)
        elif kind == 1:
            write_soundfile(folder / f"snd_{i:03d}.wav", tone(1.0, 16000, seed=seed * 1000 + i), 16000)
        else:
            words = random.Random(seed * 1000 + i).choices(WORDS, k=12)
            (folder / f"note_{i:03d}.txt").write_text(" ".join(words) + "\n")
    return folder


def mutate(folder: Path, trash: Path, rng: random.Random, generation: int) -> None:
    """Change one file, remove up to two, and restore what an earlier round removed."""
    trash.mkdir(parents=True, exist_ok=True)
    for parked in list(trash.iterdir()):
        if rng.random() < 0.6:
            shutil.move(str(parked), folder / parked.name)
    files = sorted(p for p in folder.iterdir() if p.is_file())
    if not files:
        return
    changed = rng.choice(files)
    if changed.suffix == ".txt":
        changed.write_text(" ".join(rng.choices(WORDS, k=12)) + f" {generation}\n")
    elif changed.suffix == ".wav":
        write_soundfile(changed, tone(1.0, 16000, seed=100_000 + generation), 16000)
    else:
        write_image(changed, 48, 40, seed=100_000 + generation)
    for victim in rng.sample(files, k=min(2, len(files) - 1)):
        if victim != changed and victim.exists():
            shutil.move(str(victim), trash / victim.name)


def run_cli(args: list[str], env: dict[str, str], timeout: float = 600) -> subprocess.CompletedProcess:
    return subprocess.run([*CLI, *args], capture_output=True, text=True, env=env, timeout=timeout)


def writer(
    log: WriterLog,
    index: Path,
    owned: list[Path],
    ingest: list[Path],
    trash: Path,
    deadline: float,
    env: dict[str, str],
    seed: int,
) -> None:
    rng = random.Random(seed)
    generation = 0
    while time.monotonic() < deadline:
        generation += 1
        for folder in owned:
            mutate(folder, trash / folder.name, rng, seed * 10_000 + generation)
        result = run_cli(
            ["ingest", *map(str, ingest), "--index", str(index), "--model", MODEL,
             "--workers", "0", "--prune", "--json"],
            env,
        )  # fmt: skip
        log.passes += 1
        log.exit_codes[result.returncode] += 1
        if result.returncode != 0 and len(log.failures) < 10:
            log.failures.append(result.stderr.strip().splitlines()[-1:][0] if result.stderr else "")


def rebuilder(log: WriterLog, index: Path, deadline: float, env: dict[str, str]) -> None:
    while time.monotonic() < deadline:
        result = run_cli(["index", "build", "--index", str(index), "--json"], env)
        log.passes += 1
        log.exit_codes[result.returncode] += 1
        if result.returncode != 0 and len(log.failures) < 10:
            log.failures.append(result.stderr.strip()[-300:])
        time.sleep(2.0)


def client(url: str, requests: Requests, deadline: float, seed: int, media: Path) -> None:
    import httpx

    rng = random.Random(seed)
    seen: list[str] = []
    with httpx.Client(base_url=url, timeout=60) as http:
        while time.monotonic() < deadline:
            roll = rng.random()
            started = time.perf_counter()
            try:
                if roll < 0.6 or not seen:
                    body: dict[str, Any] = {"parts": [{"text": " ".join(rng.choices(WORDS, k=3))}],
                                            "top_k": rng.choice([5, 10, 50])}  # fmt: skip
                    filt = rng.random()
                    if filt < 0.25:
                        body["modalities"] = [rng.choice(["image", "audio", "text"])]
                    elif filt < 0.45:
                        body["path"] = f"{media}/{rng.choice('ABC')}/*"
                    elif filt < 0.6:
                        body["where"] = "size_bytes > 10"
                    kind, resp = "search", http.post("/search", json=body)
                    if resp.status_code == 200:
                        hits = resp.json().get("hits", resp.json())
                        ids = [h["id"] for h in hits] if isinstance(hits, list) else []
                        seen = (ids + seen)[:50]
                elif roll < 0.8:
                    kind, resp = "stats", http.get("/stats")
                elif roll < 0.9:
                    kind, resp = "item", http.get(f"/items/{rng.choice(seen)}")
                else:
                    kind = "media"
                    resp = http.get(f"/items/{rng.choice(seen)}/media", headers={"Range": "bytes=0-99"})
                requests.add(kind, resp.status_code, (time.perf_counter() - started) * 1e3, resp.text)
            except httpx.HTTPError as exc:
                requests.add("transport", type(exc).__name__, (time.perf_counter() - started) * 1e3, str(exc))


def table_check(index: Path, media: Path, server_url: str) -> dict[str, Any]:
    """Duplicates, lost and resurrected rows against the files on disk; server freshness."""
    import hashlib

    import httpx
    import lancedb

    table = lancedb.connect(str(index)).open_table("items")
    rows = table.to_arrow().select(["id", "path", "modality", "start_s", "end_s", "sha256"]).to_pylist()
    ids = Counter(r["id"] for r in rows)
    keys = Counter((r["path"], r["modality"], r["start_s"], r["end_s"]) for r in rows)
    by_path: dict[str, set[str]] = {}
    for r in rows:
        by_path.setdefault(r["path"], set()).add(r["sha256"])
    on_disk = {
        str(p): hashlib.sha256(p.read_bytes()).hexdigest()
        for folder in ("A", "B", "C")
        for p in (media / folder).iterdir()
        if p.is_file()
    }
    lost = sorted(p for p, digest in on_disk.items() if digest not in by_path.get(p, set()))
    resurrected = sorted(p for p in by_path if p not in on_disk)
    fresh, server_rows = False, None
    server_error = None
    for _ in range(20):  # within 2 s
        try:
            server_rows = httpx.get(f"{server_url}/stats", timeout=30).json()["rows_total"]
        except (httpx.HTTPError, ValueError, KeyError) as exc:
            server_error = f"/stats failed after the run: {type(exc).__name__}: {exc}"
            break
        if server_rows == len(rows):
            fresh = True
            break
        time.sleep(0.1)
    return {
        "rows": len(rows),
        "files_on_disk": len(on_disk),
        "duplicate_ids": sum(n - 1 for n in ids.values() if n > 1),
        "duplicate_rows": sum(n - 1 for n in keys.values() if n > 1),
        "lost": len(lost),
        "lost_examples": lost[:5],
        "resurrected": len(resurrected),
        "resurrected_examples": resurrected[:5],
        "server_rows": server_rows,
        "server_fresh_within_2s": fresh,
        "server_error": server_error,
    }


def cpu_model() -> str:
    for line in Path("/proc/cpuinfo").read_text().splitlines():
        if line.startswith("model name"):
            return line.split(":", 1)[1].strip()
    return platform.processor() or platform.machine()


def versions() -> dict[str, str]:
    import importlib.metadata as md

    return {n: md.version(n) for n in ("torch", "lancedb", "pylance", "faiss-gpu", "uvicorn")
            if _installed(n)}  # fmt: skip


def _installed(name: str) -> bool:
    import importlib.metadata as md

    try:
        md.version(name)
    except md.PackageNotFoundError:
        return False
    return True


def percentile(values: list[float], q: float) -> float:
    if not values:
        return float("nan")
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


def run(args: argparse.Namespace) -> dict[str, Any]:
    work = Path(args.work or tempfile.mkdtemp(prefix="bindsearch-soak-"))
    media, index, trash = work / "media", work / "index", work / "trash"
    env = {**os.environ, "BINDSEARCH_HOME": str(work / "home")}
    for i, name in enumerate("ABC"):
        make_folder(media, name, args.files, seed=i + 1)
    first = run_cli(["ingest", str(media / "A"), str(media / "B"), str(media / "C"), "--index",
                     str(index), "--model", MODEL, "--workers", "0"], env)  # fmt: skip
    if first.returncode != 0:
        raise SystemExit(f"initial ingest failed: {first.stderr[-500:]}")
    run_cli(["index", "build", "--index", str(index)], env)
    port = _free_port()
    url = f"http://127.0.0.1:{port}"
    server = subprocess.Popen(
        [*CLI, "serve", "--index", str(index), "--host", "127.0.0.1", "--port", str(port),
         "--model", MODEL],
        env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True,
        start_new_session=True,
    )  # fmt: skip
    try:
        import httpx

        for _ in range(600):
            try:
                if httpx.get(f"{url}/health", timeout=2).status_code == 200:
                    break
            except httpx.HTTPError:
                pass
            if server.poll() is not None:
                raise SystemExit(f"server exited: {server.stderr.read()[-500:] if server.stderr else ''}")
            time.sleep(0.2)
        started = time.monotonic()
        deadline = started + args.minutes * 60
        requests = Requests()
        logs = [WriterLog("writer 1 (A, B)"), WriterLog("writer 2 (B, C)"), WriterLog("index build")]
        threads = [
            threading.Thread(target=writer, args=(logs[0], index, [media / "A", media / "B"],
                                                  [media / "A", media / "B"], trash, deadline, env, 1)),
            threading.Thread(target=writer, args=(logs[1], index, [media / "C"],
                                                  [media / "B", media / "C"], trash, deadline, env, 2)),
            threading.Thread(target=rebuilder, args=(logs[2], index, deadline, env)),
        ]  # fmt: skip
        threads += [
            threading.Thread(target=client, args=(url, requests, deadline, 100 + i, media))
            for i in range(args.clients)
        ]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        wall = time.monotonic() - started
        check = table_check(index, media, url)
    finally:
        os.killpg(server.pid, signal.SIGTERM)
        try:
            server.wait(timeout=30)
        except subprocess.TimeoutExpired:
            os.killpg(server.pid, signal.SIGKILL)
    all_ms = [ms for kind, values in requests.latencies_ms.items() if kind != "transport" for ms in values]
    errors = {k: v for k, v in requests.statuses.items() if not re.search(r" (2\d\d|206|404)$", k)}
    not_found = {k: v for k, v in requests.statuses.items() if k.endswith(" 404")}
    return {
        "date": datetime.now(timezone.utc).strftime("%Y-%m-%d"),
        "cpu": cpu_model(),
        "cores": os.cpu_count(),
        "versions": versions(),
        "minutes": args.minutes,
        "wall_s": round(wall, 1),
        "clients": args.clients,
        "files_per_folder": args.files,
        "requests": sum(requests.statuses.values()),
        "by_status": dict(sorted(requests.statuses.items())),
        "errors": sum(errors.values()),
        "error_examples": requests.failures,
        "not_found": sum(not_found.values()),
        "latency_ms": {
            kind: {"n": len(v), "p50": round(statistics.median(v), 1), "p99": round(percentile(v, 0.99), 1)}
            for kind, v in sorted(requests.latencies_ms.items())
        }
        | {"all": {"n": len(all_ms), "p50": round(percentile(all_ms, 0.5), 1),
                   "p99": round(percentile(all_ms, 0.99), 1)}},  # fmt: skip
        "writers": [{"name": w.name, "passes": w.passes, "exit_codes": dict(w.exit_codes),
                     "failures": w.failures} for w in logs],  # fmt: skip
        "table": check,
    }


def format_report(doc: dict[str, Any]) -> str:
    t = doc["table"]
    ok = doc["errors"] == 0 and t["duplicate_ids"] == 0 and t["duplicate_rows"] == 0 and t["lost"] == 0
    lines = [
        SECTION_TITLE,
        "",
        f"`python benchmarks/soak.py --minutes {doc['minutes']}` on {doc['date']}: {doc['cpu']}, "
        f"{doc['cores']} cores, no GPU; {', '.join(f'{k} {v}' for k, v in doc['versions'].items())}. "
        f"{doc['clients']} clients against one `bindsearch serve` ({MODEL}), two writers ingesting "
        f"and pruning overlapping folders ({doc['files_per_folder']} files each), one process "
        "rebuilding the FAISS index.",
        "",
        "| measure | value | target |",
        "|---|---|---|",
        f"| wall time | {doc['wall_s']} s | |",
        f"| requests | {doc['requests']} | |",
        f"| server errors (5xx, transport) | {doc['errors']} | 0 |",
        f"| 404 for items pruned meanwhile | {doc['not_found']} | (correct) |",
        f"| latency p50 / p99, all requests | {doc['latency_ms']['all']['p50']} / "
        f"{doc['latency_ms']['all']['p99']} ms | |",
    ]
    for kind in ("search", "stats", "item", "media"):
        if kind in doc["latency_ms"]:
            m = doc["latency_ms"][kind]
            lines.append(f"| {kind}: n, p50 / p99 | {m['n']}, {m['p50']} / {m['p99']} ms | |")
    for w in doc["writers"]:
        lines.append(f"| {w['name']}: passes, exit codes | {w['passes']}, {w['exit_codes']} | all 0 |")
    lines += [
        f"| rows at the end / files on disk | {t['rows']} / {t['files_on_disk']} | |",
        f"| duplicate ids / duplicate rows | {t['duplicate_ids']} / {t['duplicate_rows']} | 0 / 0 |",
        f"| lost (file on disk, no current row) | {t['lost']} | 0 |",
        f"| resurrected (row of a removed file) | {t['resurrected']} | 0 |",
        f"| server's /stats = table within 2 s | {t['server_fresh_within_2s']} | True |",
        "",
        f"Targets {'met' if ok else 'NOT met'}.",
    ]
    if doc["error_examples"]:
        lines += ["", "Errors seen:", ""] + [f"- `{e}`" for e in doc["error_examples"][:10]]
    return "\n".join(lines) + "\n"


def write_results(section: str, path: Path = RESULTS_PATH) -> None:
    """Replace the ``## Soak`` section of ``path`` (or append it), leaving the rest alone."""
    text = path.read_text() if path.exists() else "# Benchmark results\n"
    pattern = re.compile(rf"^{re.escape(SECTION_TITLE)}\n.*?(?=^## |\Z)", re.M | re.S)
    if pattern.search(text):
        text = pattern.sub(lambda _: section.rstrip("\n") + "\n\n", text)
    else:
        text = text.rstrip("\n") + "\n\n" + section
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    tmp.write_text(text.rstrip("\n") + "\n")
    os.replace(tmp, path)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=(__doc__ or "").split("\n\n")[0])
    parser.add_argument("--minutes", type=float, default=10.0, help="how long (default 10)")
    parser.add_argument("--clients", type=int, default=8, help="concurrent clients (default 8)")
    parser.add_argument("--files", type=int, default=24, help="files per folder (default 24)")
    parser.add_argument("--work", help="work directory (default: a new temp dir)")
    parser.add_argument("--json", action="store_true", help="print the JSON document")
    parser.add_argument("--write-results", action="store_true", help="update benchmarks/RESULTS.md")
    args = parser.parse_args(argv)
    doc = run(args)
    report = format_report(doc)
    print(json.dumps(doc, indent=2) if args.json else report)
    if args.write_results:
        write_results(report)


if __name__ == "__main__":
    main()
