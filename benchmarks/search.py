"""Search speed and recall of bindsearch's FAISS sidecars against exact search and LanceDB.

N unit vectors of dimension 1024 from a clustered synthetic distribution (1,000 Gaussian
clusters; ``cos(x, centre) ≈ 0.75``) are written to a bindsearch ``items`` table in a temporary
directory, in chunks (memory stays ~ N·d·4 bytes plus one index). Held-out queries come from
the same clusters. Side by side in one run, against the same exact ground truth:

* numpy brute force and FAISS exact search (``faiss.knn``) — the baselines;
* bindsearch indexes built with ``build_index`` (tuned to recall@10 ≥ 0.95 on its own
  held-out sample) and searched through ``VectorIndex.search``: ``Flat``, the automatic
  choice (IVF-Flat), the automatic choice under a small memory budget (IVF-PQ + refine), and
  ``HNSW32,Flat``;
* LanceDB's native ``IVF_PQ`` (partitions = N/4096, sub-vectors = d/8, its documented rules of
  thumb) with ``nprobes`` and ``refine_factor`` swept and the fastest setting that matches the
  recall of bindsearch's automatic index kept.

Reported per method: build seconds, recall@10, single-query and batched QPS, index bytes, and
QPS relative to exact FAISS search in the same run (ratios are stable on a noisy machine,
absolute times are not).

    python benchmarks/search.py --n 100000
    python benchmarks/search.py --n 1000000 --write-results
    python benchmarks/search.py --n 1000000 --gpu --skip hnsw,lancedb   # on a CUDA machine

With ``--gpu`` the bindsearch indexes are built (IVF k-means) and searched on the GPU through
FAISS's GPU indexes, and exact search on the GPU (``GpuIndexFlatIP``) joins the baselines.
"""

from __future__ import annotations

import argparse
import datetime
import json
import logging
import platform
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import faiss
import lancedb
import numpy as np
import pyarrow as pa
from lancedb.index import IvfPq

from bindsearch.indexes import build_index, choose_factory, load_index
from bindsearch.store import Store, items_schema, make_item_id

logger = logging.getLogger("benchmarks.search")
RESULTS_PATH = Path(__file__).with_name("RESULTS.md")
SECTION = "## Search"
K = 10
CHUNK_ROWS = 50_000
EXACT_METHODS = frozenset(
    {
        "FAISS exact (knn)",
        "numpy brute force",
        "bindsearch Flat",
        "FAISS exact GPU (GpuIndexFlatIP)",
    }
)


@dataclass
class Row:
    method: str
    factory: str
    build_s: float
    recall: float
    qps_single: float
    qps_batch: float
    index_bytes: int
    params: str = ""
    speedup_single: float = 0.0
    speedup_batch: float = 0.0


def generate(
    n: int, dim: int, clusters: int, seed: int, structure: str = "clusters"
) -> tuple[np.ndarray, np.ndarray]:
    """Cluster centres and a ``(n, dim)`` float32 array of unit vectors, made in chunks."""
    rng = np.random.default_rng(seed)
    centres = rng.standard_normal((clusters, dim)).astype(np.float32)
    centres /= np.linalg.norm(centres, axis=1, keepdims=True)
    data = np.empty((n, dim), dtype=np.float32)
    for start in range(0, n, CHUNK_ROWS):
        data[start : start + CHUNK_ROWS] = sample_near(
            centres, min(CHUNK_ROWS, n - start), rng, structure
        )
    return centres, data


def sample_near(
    centres: np.ndarray, n: int, rng: np.random.Generator, structure: str = "clusters"
) -> np.ndarray:
    """Unit vectors around random centres.

    ``clusters``: isotropic Gaussian noise of norm ~0.88, so cos(x, centre) ≈ 0.75. In 1024-d
    random centres are nearly orthogonal, so neighbours share a cluster and IVF lists align with
    clusters: an easy case for IVF. ``shared``: the noise lies mostly in a 32-dimensional
    subspace shared by all clusters (norm ~0.9, plus isotropic 0.3), so near neighbours also
    come from other clusters — a continuous structure that is much harder for IVF.
    """
    dim = centres.shape[1]
    x = centres[rng.integers(0, len(centres), n)]
    if structure == "clusters":
        noise = rng.standard_normal((n, dim), dtype=np.float32) * np.float32(0.88 / np.sqrt(dim))
    else:
        basis = np.random.default_rng(12345).standard_normal((32, dim)).astype(np.float32)
        basis /= np.float32(np.sqrt(dim))
        z = rng.standard_normal((n, 32), dtype=np.float32) * np.float32(0.9 / np.sqrt(32))
        iso = rng.standard_normal((n, dim), dtype=np.float32) * np.float32(0.3 / np.sqrt(dim))
        noise = z @ basis + iso
    x = x + noise
    return x / np.linalg.norm(x, axis=1, keepdims=True)


def write_table(directory: Path, data: np.ndarray) -> tuple[Store, list[str]]:
    """A bindsearch index whose ``items`` table holds ``data`` (one commit per chunk)."""
    n, dim = data.shape
    store = Store.open(directory)
    store.ensure_model("benchmark", "synthetic", dim)
    schema = items_schema(dim)
    table = store.items_table()
    ids = []
    now = datetime.datetime.now(datetime.timezone.utc)
    for start in range(0, n, CHUNK_ROWS):
        chunk = data[start : start + CHUNK_ROWS]
        paths = [f"/bench/{i}.jpg" for i in range(start, start + len(chunk))]
        chunk_ids = [make_item_id(p, "image", None, None) for p in paths]
        ids.extend(chunk_ids)
        m = len(chunk)
        columns = {
            "id": pa.array(chunk_ids), "path": pa.array(paths), "modality": pa.array(["image"] * m),
            "sha256": pa.array(["0" * 64] * m), "size_bytes": pa.array([1] * m, pa.int64()),
            "mtime": pa.array([0.0] * m), "ingested_at": pa.array([now] * m, schema.field("ingested_at").type),
            "vector": pa.FixedSizeListArray.from_arrays(pa.array(chunk.ravel()), dim),
        }  # fmt: skip
        arrays = [columns.get(f.name, pa.nulls(m, f.type)).cast(f.type) for f in schema]
        table.add(pa.Table.from_arrays(arrays, schema=schema))
    return Store.open(directory, create=False), ids


def time_single(search: Callable[[np.ndarray], Any], xq: np.ndarray, budget_s: float) -> float:
    """Single-query QPS: queries one at a time until ``budget_s`` or all are done (≥ 3)."""
    started = time.perf_counter()
    done = 0
    for i in range(len(xq)):
        search(xq[i : i + 1])
        done += 1
        if done >= 3 and time.perf_counter() - started > budget_s:
            break
    return done / (time.perf_counter() - started)


def time_batch(search: Callable[[np.ndarray], Any], xq: np.ndarray) -> tuple[float, Any]:
    started = time.perf_counter()
    result = search(xq)
    return len(xq) / (time.perf_counter() - started), result


def recall_of(found: list[list[str]], truth: list[list[str]]) -> float:
    return float(
        np.mean([len(set(f[:K]) & set(t[:K])) / K for f, t in zip(found, truth, strict=True)])
    )


def numpy_topk(data: np.ndarray, xq: np.ndarray) -> np.ndarray:
    out = []
    for start in range(0, len(xq), 64):
        scores = xq[start : start + 64] @ data.T
        top = np.argpartition(-scores, K, axis=1)[:, :K]
        order = np.argsort(-np.take_along_axis(scores, top, axis=1), axis=1)
        out.append(np.take_along_axis(top, order, axis=1))
    return np.concatenate(out)


def bench_exact(
    data: np.ndarray, xq: np.ndarray, budget_s: float, gpu: bool = False
) -> tuple[list[Row], np.ndarray]:
    def faiss_exact(q: np.ndarray) -> np.ndarray:
        return faiss.knn(q, data, K, faiss.METRIC_INNER_PRODUCT)[1]

    qps_batch, truth = time_batch(faiss_exact, xq)
    nbytes = data.nbytes
    rows = [
        Row(
            "FAISS exact (knn)",
            "-",
            0.0,
            1.0,
            time_single(faiss_exact, xq, budget_s),
            qps_batch,
            nbytes,
        )
    ]
    np_batch, np_found = time_batch(lambda q: numpy_topk(data, q), xq)
    np_recall = float(
        np.mean([len(set(a) & set(b)) / K for a, b in zip(np_found, truth, strict=True)])
    )
    np_single = time_single(lambda q: numpy_topk(data, q), xq, budget_s)
    rows.append(Row("numpy brute force", "-", 0.0, np_recall, np_single, np_batch, nbytes))
    if gpu:
        rows.append(bench_exact_gpu(data, xq, truth, budget_s))
    return rows, truth


def bench_exact_gpu(data: np.ndarray, xq: np.ndarray, truth: np.ndarray, budget_s: float) -> Row:
    """Exact inner-product search on the GPU(s): the baseline a GPU index has to beat."""
    started = time.perf_counter()
    index = faiss.index_cpu_to_all_gpus(faiss.IndexFlatIP(data.shape[1]))
    index.add(data)
    build_s = time.perf_counter() - started
    index.search(xq[:8], K)  # warm-up: kernels and scratch memory

    def search(q: np.ndarray) -> np.ndarray:
        return index.search(q, K)[1]

    qps_batch, found = time_batch(search, xq)
    recall = float(np.mean([len(set(a) & set(b)) / K for a, b in zip(found, truth, strict=True)]))
    return Row("FAISS exact GPU (GpuIndexFlatIP)", "Flat", round(build_s, 3), recall,
               time_single(search, xq, budget_s), qps_batch, data.nbytes)  # fmt: skip


def bench_bindsearch(
    store: Store, name: str, factory: str | None, memory: int | None, xq: np.ndarray,
    truth_ids: list[list[str]], budget_s: float, gpu: bool = False,
) -> Row:  # fmt: skip
    logger.info("building %s (%s)%s", name, factory or "auto", " on the GPU" if gpu else "")
    manifest = build_index(store, factory=factory, memory_bytes=memory, use_gpu=gpu)
    index = load_index(store, use_gpu=gpu)
    assert index is not None
    index.search(xq[:8], K)  # warm-up (GPU kernels, caches)

    def search(q: np.ndarray) -> list[list[str]]:
        return [[hit[0] for hit in hits] for hits in index.search(q, K)]

    qps_batch, found = time_batch(search, xq)
    return Row(
        name, manifest.factory, manifest.build_seconds, recall_of(found, truth_ids),
        time_single(search, xq, budget_s), qps_batch, manifest.index_bytes,
        params=f"{manifest.search_params} (build recall {manifest.recall_at_10}"
        f"{', built on ' + manifest.build_device if gpu else ''}"
        f"{', searched on the GPU' if gpu and index.on_gpu else ''}){raced(manifest)}",
    )  # fmt: skip


def raced(manifest: Any) -> str:
    """The build's race between candidate factories, as measured on its held-out queries."""
    if not manifest.candidates:
        return ""
    parts = [
        f"`{c['factory']}` {c['search_params']} recall {c['recall_at_10']}, "
        f"{c['qps_single']:.0f}/{c['qps_batch']:.0f} QPS, {c['build_seconds']:.0f} s"
        + (" (kept)" if c["chosen"] else "")
        for c in manifest.candidates
    ]
    return "; raced at build (single/batch QPS on held-out vectors): " + "; ".join(parts)


def bench_lancedb(
    store: Store, xq: np.ndarray, truth_ids: list[list[str]], match: float, budget_s: float
) -> Row:
    table = lancedb.connect(str(store.directory)).open_table("items")
    n, dim = table.count_rows(), xq.shape[1]
    partitions = max(1, round(n / 4096))
    started = time.perf_counter()
    config = IvfPq(distance_type="dot", num_partitions=partitions, num_sub_vectors=dim // 8)
    table.create_index("vector", config=config)
    build_s = time.perf_counter() - started

    def run(q: np.ndarray, nprobes: int, refine: int | None) -> list[list[str]]:
        """One LanceDB query for all of ``q`` (a multi-vector query when ``len(q) > 1``)."""
        query = table.search(q if len(q) > 1 else q[0], vector_column_name="vector")
        query = query.distance_type("dot").nprobes(nprobes).limit(K).select(["id", "_distance"])
        if refine:
            query = query.refine_factor(refine)
        result = query.to_arrow()
        if len(q) == 1:
            return [result.column("id").to_pylist()]
        out: list[list[str]] = [[] for _ in range(len(q))]
        ranked = zip(
            result.column("query_index").to_pylist(), result.column("id").to_pylist(), strict=True
        )
        for position, item_id in ranked:
            out[position].append(item_id)
        return out

    sweep = xq[:200]
    best: tuple[float, float, int, int | None] | None = None  # (seconds, -recall, nprobes, refine)
    candidates = sorted({p for p in (4, 8, 16, 32, 64, 128, 256) if p < partitions} | {partitions})
    matched: set[int | None] = set()  # refine factors already matched at a smaller nprobes
    for nprobes in candidates:
        for refine in (None, 2, 5, 10, 20, 50):
            if refine in matched:  # more nprobes only costs time once the recall is matched
                continue
            started = time.perf_counter()
            recall = recall_of(run(sweep, nprobes, refine), truth_ids[:200])
            seconds = time.perf_counter() - started
            logger.info("lancedb nprobes %d refine %s: recall %.4f, %.1f qps", nprobes, refine,
                        recall, len(sweep) / seconds)  # fmt: skip
            if recall >= match:
                matched.add(refine)
            key = (seconds if recall >= match else float("inf"), -recall, nprobes, refine)
            best = key if best is None or key < best else best
    assert best is not None
    _, _, nprobes, refine = best
    qps_batch, found = time_batch(lambda q: run(q, nprobes, refine), xq)
    index_bytes = sum(
        p.stat().st_size
        for p in (store.directory / "items.lance" / "_indices").rglob("*")
        if p.is_file()
    )
    return Row(
        "LanceDB IVF_PQ", f"IVF_PQ p={partitions} sv={dim // 8}", round(build_s, 3),
        recall_of(found, truth_ids), time_single(lambda q: run(q, nprobes, refine), xq, budget_s),
        qps_batch, index_bytes, params=f"nprobes={nprobes} refine_factor={refine}",
    )  # fmt: skip


def run_benchmark(args: argparse.Namespace) -> dict[str, Any]:
    centres, data = generate(args.n, args.dim, args.clusters, seed=0, structure=args.structure)
    xq = sample_near(centres, args.queries, np.random.default_rng(1), args.structure)
    workdir = Path(tempfile.mkdtemp(prefix="bindsearch-bench-", dir=args.tmp))
    skip = set(args.skip.split(",")) if args.skip else set()
    try:
        store, ids = write_table(workdir / "index", data)
        rows, truth = bench_exact(data, xq, args.single_budget, gpu=args.gpu)
        for row in rows:
            logger.info("%s", row)
        truth_ids = [[ids[i] for i in row] for row in truth]
        small_budget = args.n * (args.dim * 2 + args.dim // 4 + 16) + (64 << 20)
        plans = [
            ("flat", "bindsearch Flat", "Flat", None),
            ("auto", "bindsearch auto", None, None),
            ("pq", "bindsearch auto, small memory", None, small_budget),
            ("hnsw", "bindsearch HNSW", "HNSW32,Flat", None),
        ]
        for key, name, factory, memory in plans:
            if key not in skip:
                row = bench_bindsearch(
                    store, name, factory, memory, xq, truth_ids, args.single_budget, args.gpu
                )
                rows.append(row)
                logger.info("%s", row)
        auto = next(r for r in rows if r.method == "bindsearch auto")
        if "lancedb" not in skip:
            rows.append(bench_lancedb(store, xq, truth_ids, auto.recall, args.single_budget))
            logger.info("%s", rows[-1])
        add_speedups(rows)
        config = describe(args, choose_factory(args.n, args.dim))
        config["skipped"] = sorted(skip)
        return {"config": config, "rows": [asdict(r) for r in rows],
                "targets": targets(rows, args.n)}  # fmt: skip
    finally:
        shutil.rmtree(workdir, ignore_errors=True)


def add_speedups(rows: list[Row]) -> None:
    """QPS relative to exact search: the fastest exact method of the run, for each mode.

    FAISS exact, numpy and bindsearch's ``Flat`` run the same computation; taking the best of
    them keeps a slow moment of a shared machine from inflating the speedups.
    """
    exact = [r for r in rows if r.method in EXACT_METHODS]
    best_single = max(r.qps_single for r in exact)
    best_batch = max(r.qps_batch for r in exact)
    for row in rows:
        row.speedup_single = round(row.qps_single / best_single, 2)
        row.speedup_batch = round(row.qps_batch / best_batch, 2)


def targets(rows: list[Row], n: int) -> dict[str, Any]:
    """The issue's targets: recall ≥ 0.95 at ≥ 20x exact QPS, and ahead of LanceDB."""
    auto = next(r for r in rows if r.method == "bindsearch auto")
    lance = next((r for r in rows if r.method == "LanceDB IVF_PQ"), None)
    out: dict[str, Any] = {
        "n": n,
        "auto_recall_ge_0.95": auto.recall >= 0.95,
        "auto_20x_exact_single": auto.speedup_single >= 20,
        "auto_20x_exact_batch": auto.speedup_batch >= 20,
    }
    if lance is not None:
        out["lancedb_matched_recall"] = lance.recall >= auto.recall - 0.005
        out["auto_ahead_of_lancedb_single"] = auto.qps_single > lance.qps_single
        out["auto_ahead_of_lancedb_batch"] = auto.qps_batch > lance.qps_batch
    return out


def describe(args: argparse.Namespace, auto_factory: str) -> dict[str, Any]:
    return {
        "date": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
        "cpu": _cpu_model(), "cores": faiss.omp_get_max_threads(),
        "python": platform.python_version(), "faiss": faiss.__version__,
        "lancedb": lancedb.__version__, "numpy": np.__version__,
        "n": args.n, "dim": args.dim, "clusters": args.clusters, "structure": args.structure,
        "queries": args.queries, "gpu": _gpu_model() if args.gpu else None,
        "k": K, "auto_factory": auto_factory,
        "command": "python benchmarks/search.py " + " ".join(sys.argv[1:]),
    }  # fmt: skip


def _cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown"


def _gpu_model() -> str:
    try:
        out = subprocess.run(["nvidia-smi", "-L"], capture_output=True, text=True, timeout=30)
        names = [line.split(" (UUID")[0] for line in out.stdout.splitlines() if line.strip()]
        return "; ".join(names) or f"{faiss.get_num_gpus()} CUDA device(s)"
    except (OSError, subprocess.SubprocessError):
        return f"{faiss.get_num_gpus()} CUDA device(s)"


def heading(config: dict[str, Any]) -> str:
    where = ", GPU" if config.get("gpu") else ""
    return f"### N = {config['n']:,}, dim {config['dim']}, structure `{config['structure']}`{where}"


def render(result: dict[str, Any]) -> str:
    c = result["config"]
    lines = [
        heading(c), "",
        f"- date: {c['date']}; CPU: {c['cpu']}, {c['cores']} threads"
        + (f"; GPU: {c['gpu']}" if c.get("gpu") else " (shared, noisy); no GPU"),
        f"- faiss {c['faiss']}, lancedb {c['lancedb']}, numpy {c['numpy']}, python {c['python']}",
        f"- {c['clusters']} Gaussian clusters (see `sample_near`), {c['queries']} held-out "
        f"queries, recall@{c['k']} against exact search; automatic choice: `{c['auto_factory']}`",
        f"- command: `{c['command']}`",
        f"- not run: {', '.join(c.get('skipped') or []) or 'nothing'}", "",
        "Speedups are against the fastest exact method of the run, per mode.", "",
        "| method | factory | build s | recall@10 | QPS single | QPS batch | x exact single | "
        "x exact batch | index MB | search params |",
        "|---|---|---|---|---|---|---|---|---|---|",
    ]  # fmt: skip
    for r in result["rows"]:
        lines.append(
            f"| {r['method']} | `{r['factory']}` | {r['build_s']:.1f} | {r['recall']:.4f} | "
            f"{r['qps_single']:.1f} | {r['qps_batch']:.1f} | {r['speedup_single']:.1f} | "
            f"{r['speedup_batch']:.1f} | {r['index_bytes'] / 1e6:.0f} | {r['params']} |"
        )
    lines += ["", "Targets (recall@10 ≥ 0.95 at ≥ 20x exact QPS; ahead of LanceDB): " + ", ".join(
        f"{key}: {'met' if value is True else 'NOT met' if value is False else value}"
        for key, value in result["targets"].items())]  # fmt: skip
    return "\n".join(lines) + "\n"


def write_results(text: str) -> None:
    """Replace this run's ``###`` block inside ``## Search`` of RESULTS.md, or append it.

    Other sections (``## Encode``, ``## Ingest``, ...) are written by other benchmarks: the
    file is re-read right before writing and only this block changes.
    """
    current = RESULTS_PATH.read_text() if RESULTS_PATH.exists() else "# Benchmark results\n"
    lines = current.splitlines(keepends=True)
    start = next((i for i, line in enumerate(lines) if line.rstrip() == SECTION), None)
    if start is None:
        RESULTS_PATH.write_text(current.rstrip("\n") + f"\n\n{SECTION}\n\n" + text)
        return
    if start > 0 and lines[start - 1].strip():  # keep a blank line before the heading
        lines.insert(start, "\n")
        start += 1
    end = next((i for i in range(start + 1, len(lines)) if lines[i].startswith("## ")), len(lines))
    title = text.splitlines()[0]
    block = [i for i in range(start + 1, end) if lines[i].rstrip() == title]
    if block:
        b_start = block[0]
        b_end = next((i for i in range(b_start + 1, end) if lines[i].startswith("### ")), end)
        new = lines[:b_start] + [text, "\n" if b_end < end else ""] + lines[b_end:]
    else:
        body = "".join(lines[:end]).rstrip("\n") + "\n\n" + text
        new = [body, "\n" if end < len(lines) else ""] + lines[end:]
    RESULTS_PATH.write_text("".join(new))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=100_000)
    parser.add_argument("--dim", type=int, default=1024)
    parser.add_argument("--clusters", type=int, default=1000)
    parser.add_argument("--structure", choices=["clusters", "shared"], default="clusters")
    parser.add_argument("--queries", type=int, default=1000)
    parser.add_argument(
        "--single-budget", type=float, default=10.0, help="seconds per single-query timing"
    )
    parser.add_argument(
        "--skip", default="", help="comma-separated: flat, auto, pq, hnsw, lancedb (auto is needed)"
    )
    parser.add_argument(
        "--gpu", action="store_true", help="build and search on the GPU (needs faiss with CUDA)"
    )
    parser.add_argument("--tmp", default=None, help="directory for the temporary LanceDB table")
    parser.add_argument("--json", action="store_true", help="print the result as JSON")
    parser.add_argument("--write-results", action="store_true", help="update benchmarks/RESULTS.md")
    args = parser.parse_args()
    logging.basicConfig(level=logging.INFO, stream=sys.stderr, format="%(asctime)s %(message)s")
    result = run_benchmark(args)
    text = render(result)
    print(json.dumps(result, indent=2) if args.json else text)
    if args.write_results:
        write_results(text)


if __name__ == "__main__":
    main()
