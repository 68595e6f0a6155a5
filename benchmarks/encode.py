"""Encoder throughput of bindsearch's ImageBind against the reference implementation.

Both models run the same config, weights, device, batch and random inputs; each round times the
reference and ours back to back (alternating which goes first), and the medians over rounds and
their ratio are reported: a ratio taken this way is stable on a shared, noisy machine where an
absolute time is not. The reference (``imagebind-unofficial``, CC BY-NC-SA 4.0) is a
benchmark-only baseline; nothing of it is copied into bindsearch.

    python benchmarks/encode.py --size small --modalities vision,text
    python benchmarks/encode.py --size huge --batch 2 --rounds 3 --write-results
"""

from __future__ import annotations

import argparse
import copy
import datetime
import importlib.util
import json
import logging
import platform
import re
import statistics
import sys
import time
import warnings
from collections.abc import Callable
from dataclasses import asdict, dataclass
from pathlib import Path
from types import ModuleType

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from bindsearch import ImageBindConfig, ImageBindModel, Modality, create_model
from bindsearch.models import get_model_entry
from bindsearch.models.gemm import CpuGemm, cpu_gemm, set_cpu_gemm

logger = logging.getLogger("benchmarks.encode")

RESULTS_PATH = Path(__file__).with_name("RESULTS.md")
EOT_ID = 49407

SIZES: dict[str, ImageBindConfig] = {
    "huge": ImageBindConfig(),
    # Real token counts and geometry, narrower and shallower towers: a run of a minute or two.
    "small": ImageBindConfig(
        vision_embed_dim=384, vision_num_blocks=6, vision_num_heads=6,
        text_embed_dim=384, text_num_blocks=6, text_num_heads=6,
        audio_embed_dim=384, audio_num_blocks=6, audio_num_heads=6,
        depth_embed_dim=192, depth_num_blocks=4, depth_num_heads=4,
        thermal_embed_dim=384, thermal_num_blocks=4, thermal_num_heads=6,
        imu_embed_dim=256, imu_num_blocks=3, imu_num_heads=4,
        out_embed_dim=512,
    ),
    "tiny": get_model_entry("imagebind-tiny").config,
}  # fmt: skip


@dataclass
class ModalityResult:
    """Figures for one modality; throughput in items per second (medians over rounds)."""

    modality: str
    reference_items_per_s: float
    ours_items_per_s: float
    speedup: float
    max_rel_diff: float  # ours (fp32) vs the reference, normalised outputs
    gflop_per_item: float
    ours_gflop_per_s: float
    bf16_cosine_min: float | None = None  # ours-bf16 vs ours-fp32, when --dtype bf16
    peak_fraction: float | None = None  # ours' FLOP rate / --peak-tflops
    # Ours again with PyTorch's default CPU GEMM (MKL), when oneDNN is in use: how much of the
    # speedup is the GEMM library and how much the rest.
    ours_torch_gemm_items_per_s: float | None = None


def import_reference_model() -> ModuleType:
    """The reference's model module (see docs/reference-setup.md for the torchvision alias).

    ``import imagebind`` also imports its data loaders and their dependencies (pytorchvideo,
    PyAV...), which this benchmark does not use; where those are missing (a GPU machine with
    only the model's dependencies), the package is registered without running its
    ``__init__`` so that ``imagebind.models`` still imports.
    """
    import torchvision.transforms.functional as tvf

    sys.modules.setdefault("torchvision.transforms.functional_tensor", tvf)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        try:
            import imagebind  # noqa: F401
        except ModuleNotFoundError as exc:
            spec = importlib.util.find_spec("imagebind")
            if spec is None or spec.submodule_search_locations is None:
                raise
            logger.info("imagebind's loaders are unavailable (%s): importing its model only", exc)
            package = ModuleType("imagebind")
            package.__path__ = list(spec.submodule_search_locations)
            sys.modules["imagebind"] = package
        import imagebind.models.imagebind_model as reference

    return reference


def tower_shape(cfg: ImageBindConfig, m: Modality) -> tuple[int, int, int]:
    """(tokens L, width D, blocks) of one tower."""
    dim = getattr(cfg, f"{m.value}_embed_dim")
    blocks = getattr(cfg, f"{m.value}_num_blocks")
    if m is Modality.VISION:
        rows, cols = cfg.vision_grid()
        return 1 + rows * cols, dim, blocks
    if m is Modality.TEXT:
        return 77, dim, blocks
    if m is Modality.AUDIO:
        freq, time_steps = cfg.audio_grid()
        return 1 + freq * time_steps, dim, blocks
    if m is Modality.IMU:
        return 1 + cfg.imu_length // cfg.imu_kernel_size, dim, blocks
    patches = (cfg.image_size // getattr(cfg, f"{m.value}_kernel_size")) ** 2
    return 1 + patches, dim, blocks


def count_gflop(cfg: ImageBindConfig, m: Modality) -> float:
    """Nominal matmul GFLOP per item of the full model (the reference's work).

    Per block 2*L*12*D^2 (q|k|v, out_proj, fc1, fc2) + 4*L^2*D (scores and weighted sum); plus
    the patch stem and the head projection. Ours skips most of the last block's work, so its
    FLOP rate below is "model FLOPs per second", comparable with the reference's.
    """
    length, dim, blocks = tower_shape(cfg, m)
    trunk = blocks * (2 * length * 12 * dim**2 + 4 * length**2 * dim)
    if m is Modality.VISION:
        stem = 2 * (length - 1) * dim * 3 * cfg.kernel_size[1] * cfg.kernel_size[2]
    elif m is Modality.TEXT:
        stem = 0
    elif m is Modality.AUDIO:
        stem = 2 * (length - 1) * dim * cfg.audio_kernel_size**2
    elif m is Modality.IMU:
        stem = 2 * (length - 1) * dim * cfg.imu_channels * cfg.imu_kernel_size
    else:
        stem = 2 * (length - 1) * dim * getattr(cfg, f"{m.value}_kernel_size") ** 2
    head = 2 * dim * cfg.out_embed_dim
    return (trunk + stem + head) / 1e9


def make_input(cfg: ImageBindConfig, m: Modality, batch: int, device: torch.device) -> Tensor:
    """Random input in the reference layout; text ids end with EOT at a random position."""
    gen = torch.Generator().manual_seed(0)
    if m is Modality.VISION:
        x = torch.randn(batch, 3, cfg.image_size, cfg.image_size, generator=gen)
    elif m is Modality.TEXT:
        x = torch.randint(1, EOT_ID, (batch, 77), generator=gen)
        eot = torch.randint(2, 77, (batch,), generator=gen)
        for row, pos in enumerate(eot.tolist()):
            x[row, pos] = EOT_ID
            x[row, pos + 1 :] = 0
    elif m is Modality.AUDIO:
        x = torch.randn(batch, 1, cfg.audio_num_mel_bins, cfg.audio_target_len, generator=gen)
    elif m is Modality.IMU:
        x = torch.randn(batch, cfg.imu_channels, cfg.imu_length, generator=gen)
    else:
        x = torch.randn(batch, 1, cfg.image_size, cfg.image_size, generator=gen)
    return x.to(device)


def timed(fn: Callable[[], Tensor], device: torch.device) -> float:
    """Seconds for one call of ``fn``."""
    if device.type == "cuda":
        torch.cuda.synchronize(device)
    start = time.perf_counter()
    fn()
    if device.type == "cuda":
        torch.cuda.synchronize(device)
    return time.perf_counter() - start


def max_rel_diff(a: Tensor, b: Tensor) -> float:
    """max |a - b| / max |a| of L2-normalised rows."""
    a, b = F.normalize(a.float(), dim=-1), F.normalize(b.float(), dim=-1)
    return float((a - b).abs().max() / a.abs().max())


def bench_modality(
    reference: nn.Module,
    ours: ImageBindModel,
    cfg: ImageBindConfig,
    m: Modality,
    args: argparse.Namespace,
) -> ModalityResult:
    """Warm up both, check parity, then time ``args.rounds`` interleaved rounds."""
    device = torch.device(args.device)
    x = make_input(cfg, m, args.batch, device)
    bf16 = args.dtype == "bf16"

    def run_reference() -> Tensor:
        return reference({m.value: x})[m.value]

    def run_ours_fp32() -> Tensor:
        return ours.embed(m, x)

    # As the Encoder does: bf16 casts the weights (a bf16 copy of our tower).
    cast = bf16
    ours16 = copy.deepcopy(ours).to(torch.bfloat16) if cast else ours
    x16 = x.to(torch.bfloat16) if cast and m is not Modality.TEXT else x

    def run_ours() -> Tensor:
        with torch.autocast(device.type, dtype=torch.bfloat16, enabled=bf16 and not cast):
            return ours16.embed(m, x16)

    gemm_in_use = cpu_gemm()

    def run_ours_torch_gemm() -> Tensor:
        set_cpu_gemm(CpuGemm.TORCH)
        try:
            return run_ours()
        finally:
            set_cpu_gemm(gemm_in_use)

    # The third variant only where it differs: fp32 on a CPU whose GEMMs go through oneDNN.
    compare = device.type == "cpu" and not bf16 and gemm_in_use is CpuGemm.ONEDNN

    with torch.inference_mode():
        expected, ours_fp32 = run_reference(), run_ours_fp32()
        diff = max_rel_diff(expected, ours_fp32)
        cosine = None
        if bf16:
            cosine = float(F.cosine_similarity(run_ours().float(), ours_fp32, dim=-1).min())
        if compare:
            diff_torch_gemm = max_rel_diff(run_ours_torch_gemm(), ours_fp32)
            logger.info(
                "%s: ours oneDNN vs torch GEMM, max rel diff %.1e", m.value, diff_torch_gemm
            )
        order = [("reference", run_reference), ("ours", run_ours)]
        if compare:
            order.append(("ours_torch_gemm", run_ours_torch_gemm))
        times: dict[str, list[float]] = {name: [] for name, _ in order}
        for r in range(args.rounds):
            for name, fn in order if r % 2 == 0 else order[::-1]:
                times[name].append(timed(fn, device))
            logger.info(
                "%s round %d: %s", m.value, r + 1,
                ", ".join(f"{name} {t[-1]:.3f}s" for name, t in times.items()),
            )  # fmt: skip
    ref_rate = args.batch / statistics.median(times["reference"])
    ours_rate = args.batch / statistics.median(times["ours"])
    gflop = count_gflop(cfg, m)
    peak = ours_rate * gflop / (args.peak_tflops * 1e3) if args.peak_tflops else None
    torch_gemm_rate = args.batch / statistics.median(times["ours_torch_gemm"]) if compare else None
    return ModalityResult(
        modality=m.value,
        reference_items_per_s=ref_rate,
        ours_items_per_s=ours_rate,
        speedup=ours_rate / ref_rate,
        max_rel_diff=diff,
        gflop_per_item=gflop,
        ours_gflop_per_s=ours_rate * gflop,
        bf16_cosine_min=cosine,
        peak_fraction=peak,
        ours_torch_gemm_items_per_s=torch_gemm_rate,
    )


def describe_device(device: torch.device) -> str:
    if device.type == "cuda":
        return torch.cuda.get_device_name(device)
    model = "unknown CPU"
    cpuinfo = Path("/proc/cpuinfo")
    if cpuinfo.exists():
        found = re.search(r"^model name\s*:\s*(.+)$", cpuinfo.read_text(), re.MULTILINE)
        if found:
            model = found.group(1).strip()
    return f"{model}, {torch.get_num_threads()} threads, CPU capability {torch.backends.cpu.get_cpu_capability()}"


def run(args: argparse.Namespace) -> dict:
    cfg = SIZES[args.size]
    device = torch.device(args.device)
    set_cpu_gemm(args.cpu_gemm)
    modalities = [Modality.parse(name) for name in args.modalities.split(",") if name]
    logger.info("building the reference (%s)", args.size)
    torch.manual_seed(0)
    reference = import_reference_model().ImageBindModel(**cfg.to_reference())
    reference = reference.eval().requires_grad_(False).to(device)
    state = reference.state_dict()
    results = []
    for m in modalities:
        # Ours loads the reference's tensors for this tower (assigned, so shared, not copied).
        tower = {k: v for k, v in state.items() if k.split(".")[1] == m.value}
        ours = create_model(cfg, checkpoint=tower, modalities=[m])
        results.append(bench_modality(reference, ours, cfg, m, args))
        del ours
    return {
        "benchmark": "encode",
        "date": datetime.datetime.now().astimezone().isoformat(timespec="seconds"),
        "device": describe_device(device),
        "device_kind": device.type,
        "torch": torch.__version__,
        "python": platform.python_version(),
        "size": args.size,
        "config": asdict(cfg),
        "batch": args.batch,
        "rounds": args.rounds,
        "dtype": args.dtype,
        "reference_dtype": "fp32",
        "cpu_gemm": cpu_gemm().value if device.type == "cpu" else None,
        "results": [asdict(r) for r in results],
    }


def format_table(report: dict) -> str:
    bf16 = report["dtype"] == "bf16"
    peak = any(r["peak_fraction"] is not None for r in report["results"])
    split = any(r.get("ours_torch_gemm_items_per_s") for r in report["results"])
    head = ["modality", "reference items/s", f"ours items/s ({report['dtype']})", "ours/ref"]
    head += ["ours, torch GEMM items/s", "ours/ref, torch GEMM"] if split else []
    head += ["max rel diff (fp32)", "GFLOP/item", "ours GFLOP/s"]
    head += ["cos bf16 vs fp32 (min)"] if bf16 else []
    head += ["% of peak"] if peak else []
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for r in report["results"]:
        row = [
            r["modality"],
            f"{r['reference_items_per_s']:.3f}",
            f"{r['ours_items_per_s']:.3f}",
            f"{r['speedup']:.2f}x",
        ]
        if split:
            alt = r.get("ours_torch_gemm_items_per_s")
            row += [f"{alt:.3f}", f"{alt / r['reference_items_per_s']:.2f}x"] if alt else ["", ""]
        row += [
            f"{r['max_rel_diff']:.1e}",
            f"{r['gflop_per_item']:.3g}",
            f"{r['ours_gflop_per_s']:.3g}",
        ]
        row += [f"{r['bf16_cosine_min']:.5f}"] if bf16 else []
        row += [f"{100 * r['peak_fraction']:.1f}%"] if peak else []
        lines.append("| " + " | ".join(row) + " |")
    return "\n".join(lines)


def section_title(report: dict) -> str:
    return (
        f"## encode: {report['size']}, {report['device_kind']}, {report['dtype']}, "
        f"batch {report['batch']}"
    )


def write_results(report: dict, path: Path = RESULTS_PATH) -> None:
    """Replace this run's section (same size, device kind, dtype, batch) or append it."""
    title = section_title(report)
    cfg = report["config"]
    widths = ", ".join(
        f"{m} {cfg[f'{m}_embed_dim']}/{cfg[f'{m}_num_blocks']}"
        for m in ("vision", "text", "audio", "depth", "thermal", "imu")
    )
    body = "\n".join(
        [
            title,
            "",
            f"- date: {report['date']}",
            f"- device: {report['device']}",
            f"- torch {report['torch']}, python {report['python']}",
            *(
                [f"- CPU GEMM library (`BINDSEARCH_CPU_GEMM`): {report['cpu_gemm']}"]
                if report.get("cpu_gemm")
                else []
            ),
            f"- config: `{report['size']}` (width/blocks: {widths}; out {cfg['out_embed_dim']})",
            f"- batch {report['batch']}, {report['rounds']} interleaved rounds (medians); "
            f"ours in {report['dtype']}, the reference in fp32; random weights and inputs",
            "- command: `python benchmarks/encode.py " + " ".join(sys.argv[1:]) + "`",
            "",
            format_table(report),
            "",
        ]
    )
    replace_section(body, path)


def replace_section(body: str, path: Path = RESULTS_PATH) -> None:
    """Replace the ``## `` section titled by ``body``'s first line, or append ``body``."""
    title = body.splitlines()[0]
    text = path.read_text() if path.exists() else "# Benchmark results\n"
    pattern = re.compile(rf"^{re.escape(title)}\n.*?(?=^## |\Z)", re.MULTILINE | re.DOTALL)
    if pattern.search(text):
        text = pattern.sub(lambda _: body + "\n", text)
    else:
        text = text.rstrip("\n") + "\n\n" + body
    path.write_text(text.rstrip("\n") + "\n")


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--size", choices=sorted(SIZES), default="small")
    parser.add_argument(
        "--modalities", default=",".join(m.value for m in Modality), help="comma-separated"
    )
    parser.add_argument("--batch", type=int, default=2)
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--device", choices=("cpu", "cuda"), default="cpu")
    parser.add_argument("--dtype", choices=("fp32", "bf16"), default="fp32")
    parser.add_argument(
        "--peak-tflops", type=float, default=None, help="device peak, for %% of peak"
    )
    parser.add_argument(
        "--cpu-gemm",
        choices=("auto", "onednn", "torch"),
        default=None,
        help="CPU GEMM library for ours (default: BINDSEARCH_CPU_GEMM, else auto); with oneDNN "
        "in fp32, ours is also timed with torch's default GEMM in the same rounds",
    )
    parser.add_argument("--json", action="store_true", help="print the report as JSON")
    parser.add_argument(
        "--write-results", action="store_true", help=f"record the run in {RESULTS_PATH.name}"
    )
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> None:
    args = parse_args(argv)
    logging.basicConfig(level=logging.INFO, stream=sys.stderr, format="%(message)s")
    report = run(args)
    if args.json:
        print(json.dumps(report, indent=2))
    else:
        print(section_title(report).removeprefix("## "))
        print(f"{report['device']}; torch {report['torch']}")
        print(format_table(report))
    if args.write_results:
        write_results(report)


if __name__ == "__main__":
    main()
