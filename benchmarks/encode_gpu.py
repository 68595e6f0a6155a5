"""Vision-tower throughput of bindsearch's ImageBind on a CUDA GPU, by batch size and precision.

Complements ``benchmarks/encode.py`` (ours against the reference, interleaved): here only our
tower runs, at the batch sizes a GPU ingest uses, in each precision mode the encoder can use:

* ``fp32``: fp32 weights and math (TF32 off, PyTorch's default);
* ``autocast``: fp32 weights under ``torch.autocast(bfloat16)`` (the encoder's CUDA default);
* ``bf16``: weights and activations cast to bfloat16;
* ``bf16+compile``: ``bf16`` through ``torch.compile`` (Inductor fuses the norms, GELU and
  residual adds around the cuBLAS matmuls).

Reported per row: images/s, model TFLOP/s (the nominal matmul FLOPs of ``encode.count_gflop``)
and that rate as a share of ``--peak-tflops`` (dense bf16 peak of the GPU; 989.4 for an H100
SXM), plus the minimum cosine of the row's vectors to the fp32 vectors of the same inputs.

    python benchmarks/encode_gpu.py --size huge --batches 32,64,128,256 --write-results
"""

from __future__ import annotations

import argparse
import datetime
import json
import platform
import sys
import time
from collections.abc import Callable
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import Tensor

sys.path.insert(0, str(Path(__file__).parent))
import encode as enc  # noqa: E402  (benchmarks/encode.py: configs and FLOP counts)

from bindsearch import Modality, create_model  # noqa: E402

RESULTS_PATH = Path(__file__).with_name("RESULTS.md")
V = Modality.VISION


def time_per_batch(fn: Callable[[], Tensor], iters: int, warmup: int = 3) -> float:
    """Median seconds of one call, timed with CUDA events after ``warmup`` calls."""
    for _ in range(warmup):
        fn()
    torch.cuda.synchronize()
    times = []
    for _ in range(iters):
        start, end = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
        start.record()
        fn()
        end.record()
        torch.cuda.synchronize()
        times.append(start.elapsed_time(end) / 1e3)
    return sorted(times)[len(times) // 2]


def run(args: argparse.Namespace) -> dict:
    torch.backends.cuda.matmul.allow_tf32 = False
    torch.backends.cudnn.allow_tf32 = False
    cfg = enc.SIZES[args.size]
    device = torch.device("cuda")
    torch.manual_seed(0)
    model32 = create_model(cfg, modalities=[V]).eval().requires_grad_(False).to(device)
    model16 = create_model(cfg, modalities=[V]).eval().requires_grad_(False)
    model16.load_state_dict(model32.state_dict())
    model16 = model16.to(device=device, dtype=torch.bfloat16)
    compiled = torch.compile(lambda x: model16.embed(V, x), dynamic=False)
    gflop = enc.count_gflop(cfg, V)
    modes: dict[str, Callable[[Tensor], Tensor]] = {
        "fp32": lambda x: model32.embed(V, x),
        "autocast": lambda x: _autocast(model32, x),
        "bf16": lambda x: model16.embed(V, x.to(torch.bfloat16)),
        "bf16+compile": lambda x: compiled(x.to(torch.bfloat16)),
    }
    rows = []
    for batch in [int(b) for b in args.batches.split(",")]:
        x = torch.randn(batch, 3, cfg.image_size, cfg.image_size, device=device)
        with torch.inference_mode():
            reference = F.normalize(model32.embed(V, x).float(), dim=-1)
            for mode in args.modes.split(","):
                if mode == "bf16+compile" and str(batch) not in args.compile_batches.split(","):
                    continue
                fn = modes[mode]
                started = time.perf_counter()
                out = F.normalize(fn(x).float(), dim=-1)
                first_s = time.perf_counter() - started
                seconds = time_per_batch(lambda fn=fn, x=x: fn(x), args.iters)
                rate = batch / seconds
                rows.append({
                    "batch": batch, "mode": mode, "images_per_s": rate,
                    "tflop_per_s": rate * gflop / 1e3,
                    "peak_fraction": rate * gflop / 1e3 / args.peak_tflops,
                    "cosine_min_vs_fp32": float((out * reference).sum(-1).min()),
                    "first_call_s": first_s,
                    "max_memory_gib": torch.cuda.max_memory_allocated() / 2**30,
                })  # fmt: skip
                print(json.dumps(rows[-1]), file=sys.stderr, flush=True)
                torch.cuda.reset_peak_memory_stats()
        del x
    return {
        "benchmark": "encode_gpu",
        "date": datetime.datetime.now().astimezone().isoformat(timespec="seconds"),
        "device": torch.cuda.get_device_name(device),
        "torch": torch.__version__, "cuda": torch.version.cuda,
        "python": platform.python_version(), "size": args.size, "gflop_per_image": gflop,
        "peak_tflops": args.peak_tflops, "iters": args.iters, "rows": rows,
    }  # fmt: skip


def _autocast(model: torch.nn.Module, x: Tensor) -> Tensor:
    with torch.autocast("cuda", dtype=torch.bfloat16):
        return model.embed(V, x)


def render(report: dict) -> str:
    lines = [
        f"## encode GPU sweep: {report['size']} vision, {report['device']}", "",
        f"- date: {report['date']}",
        f"- torch {report['torch']} (CUDA {report['cuda']}), python {report['python']}",
        f"- {report['gflop_per_image']:.0f} model GFLOP per 224x224 image; peak taken as "
        f"{report['peak_tflops']} dense bf16 TFLOP/s; median of {report['iters']} timed batches "
        "(CUDA events) after 3 warm-ups; random weights and inputs",
        "- command: `python benchmarks/encode_gpu.py " + " ".join(sys.argv[1:]) + "`", "",
        "| batch | mode | images/s | TFLOP/s | % of bf16 peak | min cosine vs fp32 | GPU memory GiB |",
        "|---|---|---|---|---|---|---|",
    ]  # fmt: skip
    for r in report["rows"]:
        lines.append(
            f"| {r['batch']} | {r['mode']} | {r['images_per_s']:.1f} | {r['tflop_per_s']:.1f} | "
            f"{100 * r['peak_fraction']:.1f}% | {r['cosine_min_vs_fp32']:.5f} | "
            f"{r['max_memory_gib']:.1f} |"
        )
    return "\n".join(lines) + "\n"


def write_results(text: str, path: Path = RESULTS_PATH) -> None:
    """Replace the section with this title, or append it."""
    enc.replace_section(text, path)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--size", choices=sorted(enc.SIZES), default="huge")
    parser.add_argument("--batches", default="32,64,128,256")
    parser.add_argument("--modes", default="fp32,autocast,bf16,bf16+compile")
    parser.add_argument("--compile-batches", default="128", help="batches to run compiled")
    parser.add_argument("--iters", type=int, default=10)
    parser.add_argument("--peak-tflops", type=float, default=989.4)
    parser.add_argument("--json", action="store_true")
    parser.add_argument("--write-results", action="store_true")
    args = parser.parse_args()
    if not torch.cuda.is_available():
        parser.error("needs a CUDA device")
    report = run(args)
    text = render(report)
    print(json.dumps(report, indent=2) if args.json else text)
    if args.write_results:
        write_results(text)


if __name__ == "__main__":
    main()
