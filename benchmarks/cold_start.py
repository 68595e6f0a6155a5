"""Cold start of ``bindsearch query --text`` with an imagebind-huge-sized checkpoint.

Generates a random checkpoint in the official format (1311 keys, 4.8 GB fp32), an index whose
recorded weights are that checkpoint, and times fresh processes running

* ours: ``bindsearch query --index DIR --weights CKPT --text "a dog" --json`` end to end
  (process start, imports, loading only the text tower from memory-mapped per-modality
  safetensors, encoding, search, output), and
* the named baseline, the reference's way to get a text embedding: build ``imagebind_huge``,
  ``load_state_dict(torch.load(ckpt))`` of the whole checkpoint, tokenize, forward,

alternating the two, and reports wall time and peak RSS of each. The first ``bindsearch`` use
of a checkpoint converts it once (also timed, reported separately). Target: < 5 s on CPU.

    python benchmarks/cold_start.py [--workdir DIR] [--rounds 3] [--json] [--write-results]
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import subprocess
import sys
import tempfile
import time
from datetime import datetime, timezone
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]

_MEASURE = """
import resource, runpy, sys, time
start = time.perf_counter()
sys.argv = {argv!r}
code = 0
try:
    runpy.run_module({module!r}, run_name="__main__")
except SystemExit as exc:
    code = exc.code or 0
rss_mb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
print("MEASURE", time.perf_counter() - start, rss_mb, code, file=sys.stderr)
"""

_BASELINE = """
import sys, torchvision.transforms.functional as F
sys.modules.setdefault("torchvision.transforms.functional_tensor", F)
import torch
from imagebind import data
from imagebind.models import imagebind_model
model = imagebind_model.imagebind_huge(pretrained=False)
model.load_state_dict(torch.load(sys.argv[1], map_location="cpu", weights_only=True))
model.eval()
with torch.inference_mode():
    out = model({"text": data.load_and_transform_text(["a dog"], "cpu")})["text"]
print(out.shape)
"""


def make_checkpoint(path: Path) -> None:
    """Random tensors under every imagebind-huge key, saved like the official file."""
    import torch

    from bindsearch.models import ImageBindModel, get_model_entry

    with torch.device("meta"):
        meta = ImageBindModel(get_model_entry("imagebind-huge").config)
    generator = torch.Generator().manual_seed(0)
    state = {}
    for key, value in meta.state_dict().items():
        tensor = torch.empty(value.shape)
        if key.endswith("log_logit_scale"):
            tensor.fill_(4.6052)
        elif tensor.ndim > 0:
            tensor.normal_(std=0.02, generator=generator)
        state[key] = tensor
    torch.save(state, path)


def make_index(index_dir: Path, ckpt: Path, rows: int) -> float:
    """Create the index (recording the checkpoint's weights id) with random rows; returns the
    seconds the one-time conversion took."""
    import numpy as np
    import pyarrow as pa

    from bindsearch.encode import create_encoder
    from bindsearch.store import Store, items_schema, make_item_id

    started = time.perf_counter()
    encoder = create_encoder("imagebind-huge", ckpt, device="cpu")  # hashes + converts once
    convert_s = time.perf_counter() - started
    store = Store.open(index_dir)
    store.ensure_model("imagebind-huge", encoder.weights_id, 1024)
    rng = np.random.default_rng(0)
    vectors = rng.normal(size=(rows, 1024)).astype(np.float32)
    vectors /= np.linalg.norm(vectors, axis=1, keepdims=True)
    paths = [f"/data/clip{i:06d}.wav" for i in range(rows)]
    schema = items_schema(1024)
    now = datetime.now(timezone.utc)
    columns = {
        "id": [make_item_id(p, "audio", None, None) for p in paths], "path": paths,
        "modality": ["audio"] * rows, "start_s": [None] * rows, "end_s": [None] * rows,
        "sha256": ["0" * 64] * rows, "size_bytes": [1] * rows, "mtime": [0.0] * rows,
        "duration_s": [10.0] * rows, "width": [None] * rows, "height": [None] * rows,
        "text": [None] * rows, "ingested_at": [now] * rows,
    }  # fmt: skip
    arrays = [pa.array(columns[f.name], type=f.type) for f in schema if f.name != "vector"]
    vector_type = schema.field("vector").type
    flat = pa.array(vectors.reshape(-1), pa.float32())
    arrays.insert(
        schema.names.index("vector"),
        pa.FixedSizeListArray.from_arrays(flat, 1024).cast(vector_type),
    )
    store.replace_files(paths, pa.Table.from_arrays(arrays, schema=schema))
    return convert_s


def timed(args: list[str], env: dict[str, str]) -> tuple[float, float]:
    """Wall seconds (outside the process) and peak RSS MB of one fresh process."""
    started = time.perf_counter()
    result = subprocess.run(args, capture_output=True, text=True, env=env)
    wall = time.perf_counter() - started
    if result.returncode != 0:
        raise RuntimeError(f"{args[:4]} failed:\n{result.stderr[-2000:]}")
    rss = 0.0
    for line in result.stderr.splitlines():
        if line.startswith("MEASURE"):
            rss = float(line.split()[2])
    return wall, rss


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--workdir", type=Path, help="keep the 10 GB of generated files here")
    parser.add_argument("--rows", type=int, default=100_000, help="rows in the index")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--json", action="store_true")
    parser.add_argument("--write-results", action="store_true")
    args = parser.parse_args()
    work = args.workdir or Path(tempfile.mkdtemp(prefix="bindsearch-cold-"))
    work.mkdir(parents=True, exist_ok=True)
    env = {**os.environ, "BINDSEARCH_HOME": str(work / "home")}
    os.environ["BINDSEARCH_HOME"] = env["BINDSEARCH_HOME"]
    ckpt, index_dir = work / "imagebind_huge.pth", work / "index"
    if not ckpt.exists():
        print("generating a 4.8 GB checkpoint ...", file=sys.stderr)
        make_checkpoint(ckpt)
    convert_s = make_index(index_dir, ckpt, args.rows) if not index_dir.exists() else None
    ours_argv = ["bindsearch", "query", "--index", str(index_dir), "--weights", str(ckpt),
                 "--text", "a dog", "--top-k", "10", "--json"]  # fmt: skip
    ours_cmd = [sys.executable, "-c", _MEASURE.format(argv=ours_argv, module="bindsearch")]
    base_cmd = [
        sys.executable,
        "-c",
        _MEASURE.format(argv=["baseline", str(ckpt)], module="__baseline__"),
    ]
    base_file = work / "__baseline__.py"
    base_file.write_text(_BASELINE)
    base_env = {**env, "PYTHONPATH": str(work)}
    ours, base = [], []
    for round_ in range(args.rounds):
        ours.append(timed(ours_cmd, env))
        base.append(timed(base_cmd, base_env))
        print(
            f"round {round_}: ours {ours[-1][0]:.2f} s, baseline {base[-1][0]:.2f} s",
            file=sys.stderr,
        )
    report = summarise(ours, base, convert_s, args.rows)
    if args.json:
        print(json.dumps(report, indent=2))
    else:
        print(render(report))
    if args.write_results:
        write_results(render(report))


def summarise(ours, base, convert_s, rows) -> dict:
    import torch

    ours_s = statistics.median(w for w, _ in ours)
    base_s = statistics.median(w for w, _ in base)
    cpu = next((line.split(":", 1)[1].strip() for line in Path("/proc/cpuinfo").read_text().splitlines()
                if line.startswith("model name")), platform.processor())  # fmt: skip
    return {
        "date": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        "device": f"{cpu}, {os.cpu_count()} cores", "torch": torch.__version__,
        "python": platform.python_version(), "index_rows": rows,
        "ours_wall_s": ours_s, "ours_peak_rss_mb": max(r for _, r in ours),
        "baseline_wall_s": base_s, "baseline_peak_rss_mb": max(r for _, r in base),
        "speedup": base_s / ours_s, "one_time_convert_s": convert_s,
        "target_met": ours_s < 5.0, "rounds": len(ours),
    }  # fmt: skip


def render(r: dict) -> str:
    convert = (
        "reused from an earlier run"
        if r["one_time_convert_s"] is None
        else f"{r['one_time_convert_s']:.1f} s"
    )
    return "\n".join([
        "## Query cold start (imagebind-huge-sized checkpoint)", "",
        f"- date: {r['date']}", f"- device: {r['device']}",
        f"- torch {r['torch']}, python {r['python']}; index of {r['index_rows']:,} rows; {r['rounds']} alternating rounds (medians)",
        "- command: `python benchmarks/cold_start.py --write-results`",
        f"- one-time hash + conversion of the 4.8 GB checkpoint into per-modality files: {convert}", "",
        "| process | wall s | peak RSS MB |", "|---|---|---|",
        f"| `bindsearch query --text` (ours, end to end) | {r['ours_wall_s']:.2f} | {r['ours_peak_rss_mb']:.0f} |",
        f"| baseline: reference `imagebind_huge` + full `load_state_dict` + text forward | {r['baseline_wall_s']:.2f} | {r['baseline_peak_rss_mb']:.0f} |",
        "", f"Speedup {r['speedup']:.1f}x; target < 5 s: {'met' if r['target_met'] else 'NOT met'}.", "",
    ])  # fmt: skip


def write_results(section: str) -> None:
    path = REPO / "benchmarks" / "RESULTS.md"
    text = path.read_text() if path.exists() else "# Benchmark results\n\n"
    heading = section.splitlines()[0]
    if heading in text:
        start = text.index(heading)
        nxt = text.find("\n## ", start + len(heading))
        text = text[:start] + section + (text[nxt + 1 :] if nxt != -1 else "")
    else:
        text = text.rstrip("\n") + "\n\n" + section
    path.write_text(text)


if __name__ == "__main__":
    main()
