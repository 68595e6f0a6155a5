"""Ingest throughput and preprocessing speed of bindsearch against the reference loaders.

Three measurements on a generated, camera-like collection (JPEG photos, 44.1 kHz stereo WAV and
FLAC, H.264 videos with an AAC soundtrack):

1. Preprocessing only, per modality: ``bindsearch.preprocess.{image,audio,video}.load_*`` against
   the reference's ``imagebind.data.load_and_transform_*_data`` on the same files. Each round
   times ours and the reference back to back per file (alternating which goes first); the
   per-file medians over rounds are summed, so items/s is files / total time and the ratio is
   stable on a shared, noisy machine. Outputs are compared (max abs difference) too.
2. End to end: ``bindsearch.connect(...).ingest(...)`` with the tiny model (encoding is cheap,
   so the pipeline is what is measured), in a subprocess, with its per-stage seconds; one run
   per modality folder and one over the whole collection.
3. Peak memory: the same ingest on N files and on 10 N files (unique copies: ingest dedups by
   content hash), peak RSS of the main process and of its decode workers.

The reference (``imagebind-unofficial``, CC BY-NC-SA 4.0) is a benchmark-only baseline run
through the shims in ``tests/reference.py``; nothing of it is copied into bindsearch.

    python benchmarks/ingest.py                          # a few minutes on 2 cores
    python benchmarks/ingest.py --images 8 --audio 4 --videos 2 --parts preprocess
    python benchmarks/ingest.py --write-results
"""

from __future__ import annotations

import argparse
import datetime
import json
import logging
import os
import platform
import re
import shutil
import statistics
import struct
import subprocess
import sys
import tempfile
import threading
import time
import warnings
import zlib
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from types import ModuleType

import torch

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "tests"))  # media generators and the reference shims

from media import textured_rgb, tone, write_soundfile  # noqa: E402
from media_video import write_video  # noqa: E402

logger = logging.getLogger("benchmarks.ingest")

RESULTS_PATH = Path(__file__).with_name("RESULTS.md")
SECTION_TITLE = "## Ingest"
MODEL = "imagebind-tiny"
PARTS = ("preprocess", "e2e", "memory")

#: (width, height, format): phone/camera JPEGs (12 MP landscape and portrait, Full HD, 2 MP)
#: and small PNGs (screenshots, graphics).
IMAGE_SPECS = [
    (4000, 3000, "jpg"),
    (1920, 1080, "jpg"),
    (3024, 4032, "jpg"),
    (1600, 1200, "jpg"),
    (800, 600, "png"),
    (640, 480, "png"),
]
AUDIO_SECONDS = [10, 20, 30, 15, 25]
VIDEO_SECONDS = [10, 20, 30, 15]
AUDIO_RATE_HZ = 44100
VIDEO_SIZE = (640, 360)
VIDEO_FPS = 30

#: Speed targets (ours / reference) and output tolerances (max abs difference; video also a
#: mean, as in tests/test_preprocess_video.py).
#: "image" is the default (reduced JPEG decoding of large photos), compared with the reference
#: within the documented tolerance of that path; "image (exact)" is ``exact=True``.
TARGET_SPEEDUP = {"image": 1.5, "image (exact)": 1.0, "audio": 1.5, "video": 3.0}
TOLERANCE_MAX = {"image": 0.15, "image (exact)": 1e-5, "audio": 1e-4, "video": 0.035}
TOLERANCE_MEAN = {"image": 0.025, "video": 0.002}
#: Least cosine between the embeddings (imagebind-tiny) of ours and the reference's tensors.
TOLERANCE_COSINE = {"image": 0.999}
#: Peak memory may grow at most this much when the collection grows 10x.
MEMORY_TARGET_RATIO = 1.2


# --------------------------------------------------------------------------- the collection


@dataclass
class Collection:
    """Generated media files by kind, and a description for the report."""

    root: Path
    files: dict[str, list[Path]] = field(
        default_factory=lambda: {"image": [], "audio": [], "video": []}
    )

    @property
    def count(self) -> int:
        return sum(len(v) for v in self.files.values())

    def megabytes(self) -> float:
        return sum(p.stat().st_size for v in self.files.values() for p in v) / 1e6


def jpeg_with_comment(data: bytes, comment: str) -> bytes:
    """The JPEG ``data`` with a COM segment right after SOI (changes bytes, not pixels)."""
    if data[:2] != b"\xff\xd8":
        raise ValueError("not a JPEG")
    payload = comment.encode()
    return data[:2] + b"\xff\xfe" + struct.pack(">H", len(payload) + 2) + payload + data[2:]


def mp4_with_free_box(data: bytes, note: str) -> bytes:
    """The MP4 ``data`` with a top-level ``free`` box appended (ignored by demuxers)."""
    payload = note.encode()
    return data + struct.pack(">I4s", len(payload) + 8, b"free") + payload


def png_with_text(data: bytes, note: str) -> bytes:
    """The PNG ``data`` with a ``tEXt`` chunk right after IHDR (changes bytes, not pixels)."""
    if data[:8] != b"\x89PNG\r\n\x1a\n":
        raise ValueError("not a PNG")
    payload = b"Comment\x00" + note.encode()
    chunk = struct.pack(">I4s", len(payload), b"tEXt") + payload
    chunk += struct.pack(">I", zlib.crc32(b"tEXt" + payload) & 0xFFFFFFFF)
    ihdr_end = 8 + 8 + 13 + 4  # signature, IHDR length + type, IHDR data, CRC
    return data[:ihdr_end] + chunk + data[ihdr_end:]


def write_photo(path: Path, width: int, height: int, seed: int) -> Path:
    """A camera-like JPEG (quality 90, 4:2:0) with EXIF make/model and upright orientation,
    or a PNG (by suffix)."""
    from PIL import Image

    image = Image.fromarray(textured_rgb(width, height, seed))
    if path.suffix == ".png":
        image.save(path)
        return path
    exif = Image.Exif()
    exif[0x010F], exif[0x0110], exif[0x0112] = "bindsearch", "benchmark camera", 1
    image.save(path, quality=90, exif=exif.tobytes())
    return path


def write_music(path: Path, seconds: float, seed: int) -> Path:
    """44.1 kHz stereo, 16-bit PCM (WAV) or FLAC by suffix."""
    return write_soundfile(path, tone(seconds, AUDIO_RATE_HZ, 2, seed), AUDIO_RATE_HZ, "PCM_16")


def audio_name(i: int) -> str:
    return f"audio_{i:04d}.flac" if i % 3 == 2 else f"audio_{i:04d}.wav"


def make_collection(root: Path, images: int, audio: int, videos: int) -> Collection:
    """Write the benchmark collection under ``root`` (every file's bytes unique)."""
    col = Collection(root)
    for sub in ("photos", "music", "videos"):
        (root / sub).mkdir(parents=True, exist_ok=True)
    started = time.perf_counter()
    for i in range(images):
        width, height, suffix = IMAGE_SPECS[i % len(IMAGE_SPECS)]
        path = root / f"photos/img_{i:04d}.{suffix}"
        col.files["image"].append(write_photo(path, width, height, i))
    for i in range(audio):
        seconds = AUDIO_SECONDS[i % len(AUDIO_SECONDS)]
        col.files["audio"].append(write_music(root / "music" / audio_name(i), seconds, 1000 + i))
    # One encode per distinct duration; further videos are copies made unique by a free box.
    encoded: dict[int, bytes] = {}
    for i in range(videos):
        seconds = VIDEO_SECONDS[i % len(VIDEO_SECONDS)]
        path = root / f"videos/clip_{i:04d}.mp4"
        if seconds not in encoded:
            write_video(
                path,
                num_frames=seconds * VIDEO_FPS,
                width=VIDEO_SIZE[0],
                height=VIDEO_SIZE[1],
                fps=VIDEO_FPS,
                pattern="texture",
                with_audio=True,
            )
            encoded[seconds] = path.read_bytes()
        else:
            path.write_bytes(mp4_with_free_box(encoded[seconds], f"copy {i}"))
        col.files["video"].append(path)
    logger.info(
        "collection: %d files, %.0f MB, written in %.0f s",
        col.count, col.megabytes(), time.perf_counter() - started,
    )  # fmt: skip
    return col


def make_variants(source: Collection, root: Path, counts: dict[str, int]) -> Collection:
    """``counts[kind]`` files made from ``source``'s, cycling, each with unique bytes.

    Images get a JPEG comment, videos a trailing MP4 ``free`` box (same pixels and samples);
    audio is regenerated with a new seed (as cheap as copying, and valid by construction).
    """
    col = Collection(root)
    for kind, n in counts.items():
        (root / kind).mkdir(parents=True, exist_ok=True)
        originals = source.files[kind]
        for i in range(n):
            src = originals[i % len(originals)]
            if kind == "image":
                dst = root / kind / f"{i:05d}_{src.name}"
                unique = png_with_text if src.suffix == ".png" else jpeg_with_comment
                dst.write_bytes(unique(src.read_bytes(), f"variant {i}"))
            elif kind == "video":
                dst = root / kind / f"{i:05d}_{src.name}"
                dst.write_bytes(mp4_with_free_box(src.read_bytes(), f"variant {i}"))
            else:
                dst = root / kind / audio_name(i)
                write_music(dst, AUDIO_SECONDS[i % len(AUDIO_SECONDS)], 5000 + i)
            col.files[kind].append(dst)
    return col


def describe_collection(col: Collection) -> str:
    images, audio, videos = col.files["image"], col.files["audio"], col.files["video"]
    flac = sum(p.suffix == ".flac" for p in audio)
    jpeg = sorted({f"{w}x{h}" for w, h, f in IMAGE_SPECS[: len(images)] if f == "jpg"})
    png = sorted({f"{w}x{h}" for w, h, f in IMAGE_SPECS[: len(images)] if f == "png"})
    n_png = sum(p.suffix == ".png" for p in images)
    a_secs = [AUDIO_SECONDS[i % len(AUDIO_SECONDS)] for i in range(len(audio))]
    v_secs = [VIDEO_SECONDS[i % len(VIDEO_SECONDS)] for i in range(len(videos))]
    span = lambda s: f"{min(s)}-{max(s)} s" if s else "-"  # noqa: E731
    return (
        f"{len(images) - n_png} JPEG photos (q90, 4:2:0, {', '.join(jpeg)}) + {n_png} PNG "
        f"({', '.join(png)}), all textured with pixel noise (a worst case for reduced decoding); "
        f"{len(audio)} audio tracks ({len(audio) - flac} WAV PCM16 + {flac} FLAC, 44.1 kHz stereo, "
        f"{span(a_secs)}); {len(videos)} videos (H.264 {VIDEO_SIZE[0]}x{VIDEO_SIZE[1]} "
        f"{VIDEO_FPS} fps, x264 default GOP, AAC soundtrack, {span(v_secs)}); "
        f"{col.megabytes():.0f} MB"
    )


# --------------------------------------------------------------------------- the reference


def setup_reference() -> ModuleType:
    """The reference's ``imagebind.data`` with the shims of tests/reference.py applied.

    Audio: ``torchaudio.load`` -> a soundfile decode (no TorchCodec/FFmpeg here) and the clip
    sampler of the pinned pytorchvideo commit. Video: ``EncodedVideo.from_path`` without the
    ``sample_rate`` argument PyPI pytorchvideo rejects, and the same pinned clip sampler.
    The patches stay for the life of this process (bindsearch does not use ``torchaudio.load``).
    """
    import pytest
    import reference

    try:
        data = reference.import_reference()
    except pytest.skip.Exception as exc:
        raise SystemExit(f"reference unavailable: {exc}") from None
    from pytorchvideo.data.encoded_video import EncodedVideo

    from_path = EncodedVideo.__dict__["from_path"]

    def from_path_without_sample_rate(cls, file_path, **kwargs):
        kwargs.pop("sample_rate", None)
        return from_path.__func__(cls, file_path, **kwargs)

    EncodedVideo.from_path = classmethod(from_path_without_sample_rate)
    data.torchaudio.load = reference.soundfile_load
    data.ConstantClipsPerVideoSampler = reference.pinned_clip_sampler_class()
    return data


# --------------------------------------------------------------------------- preprocessing


@dataclass
class PreprocessResult:
    """Ours against the reference for one modality (times: sums of per-file medians)."""

    modality: str
    files: int
    rounds: int
    reference_seconds: float
    ours_seconds: float
    reference_items_per_s: float
    ours_items_per_s: float
    speedup: float
    per_file_speedup_min: float
    per_file_speedup_median: float
    max_abs_diff: float
    mean_abs_diff: float
    tolerance_max: float
    tolerance_mean: float | None
    outputs_equal: bool
    target_speedup: float
    target_met: bool
    by_format: dict[str, dict[str, float]] = field(default_factory=dict)
    #: Cosine between the imagebind-tiny embeddings of ours and the reference's tensors.
    min_cosine: float | None = None
    mean_cosine: float | None = None
    tolerance_cosine: float | None = None


def loaders(data: ModuleType) -> dict[str, tuple[str, Callable, Callable]]:
    """``label -> (kind, ours, reference)``, each loader ``path -> tensor`` of one file."""
    from functools import partial

    from bindsearch.preprocess.audio import load_audio
    from bindsearch.preprocess.image import load_image
    from bindsearch.preprocess.video import load_video

    ref_image = lambda p: data.load_and_transform_vision_data([str(p)], "cpu")[0]  # noqa: E731
    return {
        "image": ("image", partial(load_image, exact=False), ref_image),
        "image (exact)": ("image", partial(load_image, exact=True), ref_image),
        "audio": (
            "audio",
            load_audio,
            lambda p: data.load_and_transform_audio_data([str(p)], "cpu")[0],
        ),
        "video": (
            "video",
            load_video,
            lambda p: data.load_and_transform_video_data([str(p)], "cpu")[0],
        ),
    }


def embedding_cosines(ours: list[torch.Tensor], ref: list[torch.Tensor]) -> list[float]:
    """Per file, the cosine of the imagebind-tiny (random-init) vision embeddings of two inputs."""
    import bindsearch

    encoder = bindsearch.create_encoder(MODEL, device="cpu", progress=False)
    a = encoder.embed_tensor("vision", torch.stack(ours))
    b = encoder.embed_tensor("vision", torch.stack(ref))
    return [float(x) for x in (a * b).sum(axis=1)]  # unit rows


def timed(fn: Callable, path: Path) -> tuple[float, torch.Tensor]:
    started = time.perf_counter()
    out = fn(path)
    return time.perf_counter() - started, out


def bench_preprocess(kind: str, files: list[Path], ours, ref, rounds: int) -> PreprocessResult:
    ours(files[0]), ref(files[0])  # warm-up: lazy imports, first-call allocations
    times: dict[str, list[list[float]]] = {"ours": [[] for _ in files], "ref": [[] for _ in files]}
    max_diff, mean_diffs = 0.0, []
    kept: dict[str, list[torch.Tensor]] = {"ours": [], "ref": []}  # images, for the cosines
    for r in range(rounds):
        for i, path in enumerate(files):
            order = [("ours", ours), ("ref", ref)]
            outputs = {}
            for name, fn in order if (r + i) % 2 == 0 else order[::-1]:
                seconds, outputs[name] = timed(fn, path)
                times[name][i].append(seconds)
            if r == 0:
                a, b = outputs["ours"], outputs["ref"]
                if a.shape != b.shape:
                    raise AssertionError(f"{path}: shape {tuple(a.shape)} vs {tuple(b.shape)}")
                diff = (a - b).abs()
                max_diff = max(max_diff, diff.max().item())
                mean_diffs.append(diff.mean().item())
                if kind in TOLERANCE_COSINE:
                    kept["ours"].append(a)
                    kept["ref"].append(b)
        logger.info("%s: round %d/%d done", kind, r + 1, rounds)
    ours_med = [statistics.median(t) for t in times["ours"]]
    ref_med = [statistics.median(t) for t in times["ref"]]
    ratios = [r / o for r, o in zip(ref_med, ours_med, strict=True)]
    tol_mean = TOLERANCE_MEAN.get(kind)
    equal = max_diff <= TOLERANCE_MAX[kind] and (tol_mean is None or max(mean_diffs) <= tol_mean)
    cosines = embedding_cosines(kept["ours"], kept["ref"]) if kept["ours"] else []
    tol_cos = TOLERANCE_COSINE.get(kind)
    if cosines and tol_cos is not None:
        equal = equal and min(cosines) >= tol_cos
    speedup = sum(ref_med) / sum(ours_med)
    by_format = {}
    for suffix in sorted({p.suffix.lower() for p in files}):
        picked = [i for i, p in enumerate(files) if p.suffix.lower() == suffix]
        ref_s, ours_s = sum(ref_med[i] for i in picked), sum(ours_med[i] for i in picked)
        by_format[suffix] = {
            "files": len(picked),
            "reference_items_per_s": len(picked) / ref_s,
            "ours_items_per_s": len(picked) / ours_s,
            "speedup": ref_s / ours_s,
        }
    return PreprocessResult(
        modality=kind,
        files=len(files),
        rounds=rounds,
        reference_seconds=sum(ref_med),
        ours_seconds=sum(ours_med),
        reference_items_per_s=len(files) / sum(ref_med),
        ours_items_per_s=len(files) / sum(ours_med),
        speedup=speedup,
        per_file_speedup_min=min(ratios),
        per_file_speedup_median=statistics.median(ratios),
        max_abs_diff=max_diff,
        mean_abs_diff=max(mean_diffs),
        tolerance_max=TOLERANCE_MAX[kind],
        tolerance_mean=tol_mean,
        outputs_equal=equal,
        target_speedup=TARGET_SPEEDUP[kind],
        target_met=equal and speedup >= TARGET_SPEEDUP[kind],
        by_format=by_format,
        min_cosine=min(cosines) if cosines else None,
        mean_cosine=statistics.fmean(cosines) if cosines else None,
        tolerance_cosine=tol_cos,
    )


# --------------------------------------------------------------------------- ingest + memory

#: A fresh parent for one ingest: its RUSAGE_CHILDREN peak covers only that run's process tree
#: (the processes that were waited for; the main process always is).
_FRESH_PARENT = """
import json, resource, subprocess, sys
rc = subprocess.call(sys.argv[2:])
peak_kib = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss
with open(sys.argv[1], "w") as f:
    json.dump({"rc": rc, "maxrss_kib": peak_kib}, f)
"""

#: The ingest itself, through the public API: ``bindsearch.connect(...).ingest(...)``; the
#: IngestReport's fields and this process's own peak RSS (exact, from the kernel) go to a file.
_INGEST_CHILD = """
import dataclasses, json, resource, sys
import bindsearch
root, index, model, workers, batch, out = sys.argv[1:]
idx = bindsearch.connect(index, model=model, device="cpu")
report = idx.ingest([root], workers=int(workers), batch_size=int(batch) if batch else None)
def plain(value):
    if dataclasses.is_dataclass(value):
        return dataclasses.asdict(value)
    if isinstance(value, dict):
        return {k: plain(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [plain(v) for v in value]
    return value
doc = {k: plain(v) for k, v in vars(report).items()}
doc["maxrss_self_kib"] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
with open(out, "w") as f:
    json.dump(doc, f, default=str)
"""


def _children_by_parent() -> dict[int, list[int]]:
    tree: dict[int, list[int]] = {}
    for name in os.listdir("/proc"):
        if not name.isdigit():
            continue
        try:
            stat = Path(f"/proc/{name}/stat").read_text()
        except OSError:
            continue
        ppid = int(stat.rsplit(")", 1)[1].split()[1])
        tree.setdefault(ppid, []).append(int(name))
    return tree


def _status_kib(pid: int) -> tuple[int, int] | None:
    """(VmHWM, VmRSS) of ``pid`` in KiB, or None once it is gone."""
    try:
        text = Path(f"/proc/{pid}/status").read_text()
    except OSError:
        return None
    values = dict(re.findall(r"^(VmHWM|VmRSS):\s+(\d+) kB", text, re.MULTILINE))
    if "VmHWM" not in values:
        return None  # a zombie
    return int(values["VmHWM"]), int(values["VmRSS"])


class TreeMonitor(threading.Thread):
    """Polls the process tree under ``root_pid``: each process's high-water RSS (VmHWM, kept by
    the kernel, so exact up to the last poll before the process exits) and the largest sum of
    current RSS over the tree seen at one poll."""

    def __init__(self, root_pid: int, interval_s: float = 0.05) -> None:
        super().__init__(daemon=True)
        self.root_pid, self.interval_s = root_pid, interval_s
        self.hwm_kib: dict[int, int] = {}
        self.parent: dict[int, int] = {}
        self.tree_rss_kib = 0
        self._done = threading.Event()

    def run(self) -> None:
        while not self._done.is_set():
            self.poll()
            self._done.wait(self.interval_s)

    def poll(self) -> None:
        tree = _children_by_parent()
        pending, total = [self.root_pid], 0
        while pending:
            pid = pending.pop()
            for child in tree.get(pid, []):
                self.parent[child] = pid
                pending.append(child)
            if pid == self.root_pid:
                continue  # the fresh parent itself: a bare interpreter
            status = _status_kib(pid)
            if status is not None:
                self.hwm_kib[pid] = max(self.hwm_kib.get(pid, 0), status[0])
                total += status[1]
        self.tree_rss_kib = max(self.tree_rss_kib, total)

    def stop(self) -> None:
        self._done.set()
        self.join()


@dataclass
class IngestRun:
    """One ``bindsearch ingest`` subprocess: its report and memory figures (MiB)."""

    files: int
    wall_s: float
    report: dict
    main_peak_mib: float
    workers_peak_mib: float
    helper_processes: int
    tree_peak_mib: float
    rusage_peak_mib: float

    @property
    def files_per_s(self) -> float:
        return self.report["files_ingested"] / self.report["seconds_total"]


class IngestFailed(RuntimeError):
    """The ingest subprocess failed, or did not ingest every file."""


@dataclass(frozen=True)
class IngestSettings:
    workers: int
    batch_size: int | None  # None: bindsearch's default


def run_ingest(root: Path, index: Path, settings: IngestSettings, files: int) -> IngestRun:
    """Ingest ``root`` in a fresh process tree (a new interpreter), polled for memory."""
    with tempfile.TemporaryDirectory(prefix="bindsearch-ingest-") as tmp:
        rusage_path = Path(tmp, "rusage.json")
        out_path, err_path = Path(tmp, "report.json"), Path(tmp, "stderr.txt")
        batch = "" if settings.batch_size is None else str(settings.batch_size)
        child = [sys.executable, "-c", _INGEST_CHILD, str(root), str(index), MODEL]
        child += [str(settings.workers), batch, str(out_path)]
        started = time.perf_counter()
        with err_path.open("w") as err:
            proc = subprocess.Popen(
                [sys.executable, "-c", _FRESH_PARENT, str(rusage_path), *child],
                stderr=err,
                cwd=REPO,
            )
            monitor = TreeMonitor(proc.pid)
            monitor.start()
            proc.wait()
            monitor.stop()
        wall = time.perf_counter() - started
        rusage = json.loads(rusage_path.read_text())
        if rusage["rc"] != 0:
            tail = err_path.read_text().strip().splitlines()[-1:] or ["(no stderr)"]
            raise IngestFailed(f"exit status {rusage['rc']}: {tail[0]}")
        report = json.loads(out_path.read_text())
    if report["files_ingested"] != files or report["failures"]:
        raise IngestFailed(
            f"expected {files} files ingested, got {report['files_ingested']} "
            f"(failures: {report['failures'][:3]})"
        )
    main = {pid for pid, parent in monitor.parent.items() if parent == proc.pid}
    helpers = [pid for pid in monitor.hwm_kib if pid not in main]
    return IngestRun(
        files=files,
        wall_s=wall,
        report=report,
        main_peak_mib=report.pop("maxrss_self_kib") / 1024,
        workers_peak_mib=max((monitor.hwm_kib[pid] for pid in helpers), default=0) / 1024,
        helper_processes=len(helpers),
        tree_peak_mib=monitor.tree_rss_kib / 1024,
        rusage_peak_mib=rusage["maxrss_kib"] / 1024,
    )


def run_ingest_doc(root: Path, index: Path, settings: IngestSettings, files: int) -> dict:
    """:func:`run_ingest` as a JSON-ready dict; a failed run is recorded, not raised."""
    try:
        r = run_ingest(root, index, settings, files)
    except IngestFailed as exc:
        logger.warning("ingest of %s failed: %s", root, exc)
        return {"files": files, "error": str(exc)}
    return asdict(r) | {"files_per_s": r.files_per_s}


def bench_e2e(col: Collection, work: Path, settings: IngestSettings) -> dict[str, dict]:
    """One ingest per kind (its folder, fresh index), then the whole collection."""
    runs = {}
    for kind, folder in (("image", "photos"), ("audio", "music"), ("video", "videos")):
        if col.files[kind]:
            logger.info("end to end: %s (%d files)", kind, len(col.files[kind]))
            index = work / f"index_e2e_{kind}"
            runs[kind] = run_ingest_doc(col.root / folder, index, settings, len(col.files[kind]))
    logger.info("end to end: whole collection (%d files)", col.count)
    runs["all"] = run_ingest_doc(col.root, work / "index_e2e_all", settings, col.count)
    return runs


def bench_memory(
    source: Collection, work: Path, base: dict[str, int], factor: int, settings: IngestSettings
) -> dict:
    """Ingest N and ``factor`` x N unique files into fresh indexes; both runs and the ratios."""
    runs = {}
    for label, scale in (("N", 1), (f"{factor}N", factor)):
        counts = {kind: n * scale for kind, n in base.items()}
        root = work / f"memory_{label}"
        started = time.perf_counter()
        col = make_variants(source, root, counts)
        logger.info(
            "memory %s: %d files (%.0f MB) written in %.0f s; ingesting",
            label, col.count, col.megabytes(), time.perf_counter() - started,
        )  # fmt: skip
        runs[label] = run_ingest_doc(root, work / f"index_memory_{label}", settings, col.count)
        shutil.rmtree(root)
        if "error" in runs[label]:
            return {"base": base, "factor": factor, "runs": runs, "target_met": False}
        logger.info(
            "memory %s: main %.0f MiB, workers %.0f MiB, tree %.0f MiB",
            label, runs[label]["main_peak_mib"], runs[label]["workers_peak_mib"],
            runs[label]["tree_peak_mib"],
        )  # fmt: skip
    small, large = runs.values()
    ratios = {
        k: large[k] / small[k] for k in ("main_peak_mib", "workers_peak_mib", "tree_peak_mib")
    }
    return {
        "base": base,
        "factor": factor,
        "runs": runs,
        "ratios": ratios,
        "target_ratio": MEMORY_TARGET_RATIO,
        "target_met": all(v <= MEMORY_TARGET_RATIO for v in ratios.values()),
    }


# --------------------------------------------------------------------------- the report


def cpu_model() -> str:
    try:
        found = re.search(r"^model name\s*:\s*(.+)$", Path("/proc/cpuinfo").read_text(), re.M)
    except OSError:
        found = None
    return found.group(1).strip() if found else platform.processor() or "unknown CPU"


def versions() -> dict[str, str]:
    import importlib.metadata as md

    out = {"python": platform.python_version()}
    for dist in ("torch", "torchaudio", "torchvision", "av", "pillow", "soundfile", "lancedb"):
        try:
            out[dist] = md.version(dist)
        except md.PackageNotFoundError:
            out[dist] = "absent"
    for dist in ("imagebind-unofficial", "pytorchvideo", "decord"):  # the reference's stack
        try:
            out[dist] = md.version(dist)
        except md.PackageNotFoundError:
            out[dist] = "absent"
    return out


def command_line(argv: list[str]) -> str:
    """This run's command, with the text of ``--note`` remarks elided (they are listed)."""
    shown = ["..." if i > 0 and argv[i - 1] == "--note" else arg for i, arg in enumerate(argv)]
    return " ".join(["python benchmarks/ingest.py", *shown])


def run(args: argparse.Namespace) -> dict:
    torch.set_num_threads(args.threads)
    parts = set(args.parts.split(","))
    work = Path(args.workdir or tempfile.mkdtemp(prefix="bindsearch-bench-"))
    work.mkdir(parents=True, exist_ok=True)
    doc: dict = {
        "benchmark": "ingest",
        "date": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
        "device": f"{cpu_model()}, {os.cpu_count()} cores",
        "versions": versions(),
        "threads": args.threads,
        "rounds": args.rounds,
        "workers": args.workers,
        "batch_size": args.batch_size,
        "notes": args.note,
        "command": command_line(sys.argv[1:]),
    }
    try:
        col = make_collection(work / "collection", args.images, args.audio, args.videos)
        doc["collection"] = describe_collection(col)
        if "preprocess" in parts:
            data = setup_reference()
            results = []
            for label, (kind, ours, ref) in loaders(data).items():
                if col.files[kind]:
                    results.append(bench_preprocess(label, col.files[kind], ours, ref, args.rounds))
                    logger.info("%s: %.2fx", label, results[-1].speedup)
            doc["preprocess"] = [asdict(r) for r in results]
        settings = IngestSettings(args.workers, args.batch_size)
        if "e2e" in parts:
            doc["e2e"] = bench_e2e(col, work, settings)
        if "memory" in parts:
            base = dict(zip(("image", "audio", "video"), args.memory_base, strict=True))
            doc["memory"] = bench_memory(col, work, base, args.memory_factor, settings)
    finally:
        if not args.keep:
            shutil.rmtree(work, ignore_errors=True)
    return doc


def _met(ok: bool) -> str:
    return "met" if ok else "**not met**"


def format_report(doc: dict) -> str:
    v = doc["versions"]
    lines = [
        SECTION_TITLE,
        "",
        f"- date: {doc['date']}",
        f"- device: {doc['device']} (shared with other CPU-heavy jobs: ratios of interleaved "
        "runs are the reliable figures, absolute rates are noisy)",
        f"- python {v['python']}, torch {v['torch']}, torchaudio {v['torchaudio']}, "
        f"torchvision {v['torchvision']}, PyAV {v['av']}, Pillow {v['pillow']}, "
        f"soundfile {v['soundfile']}, lancedb {v['lancedb']}",
        f"- reference: imagebind-unofficial {v['imagebind-unofficial']}, pytorchvideo "
        f"{v['pytorchvideo']}, decord {v['decord']} (shims of tests/reference.py: soundfile "
        "for `torchaudio.load`, pinned clip sampler, `from_path` without `sample_rate`)",
        f"- collection: {doc['collection']}",
        f"- command: `{doc['command']}`",
    ]
    if "preprocess" in doc:
        lines += [
            "",
            "### Preprocessing only (decode + transform), ours vs the reference loaders",
            "",
            f"Same files, {doc['rounds']} rounds; per round each file runs ours and the reference "
            "back to back (alternating order); per-file medians summed. "
            f"{doc['threads']} torch thread(s) (as in an ingest worker); video decoders use "
            "their own default threading (PyAV and decord: auto). `image` is the default "
            "path (JPEGs with a short side >= 896 px decoded at 1/2-1/8 scale, short side kept "
            ">= 448 px), compared with the reference within that path's documented tolerance "
            "(max and mean abs difference of the normalised tensors, the largest per-file "
            "mean, and the cosine of the imagebind-tiny embeddings of the two tensors; the "
            "tiny model is random-init, so the cosine only shows how much the tensor change "
            "moves a ViT's output); `image (exact)` is `exact=True` "
            "(`BINDSEARCH_IMAGE_EXACT=1`), bit-identical to the reference. Audio: integer "
            "WAV/FLAC are decoded only around the three 2-s windows.",
            "",
            "| modality | files | reference files/s | ours files/s | ours/ref (per-file min, "
            "median) | target | max abs diff (mean) | tolerance | target |",
            "|---|---|---|---|---|---|---|---|---|",
        ]
        for r in doc["preprocess"]:
            tol = f"{r['tolerance_max']:.2g}"
            if r["tolerance_mean"] is not None:
                tol += f" (mean {r['tolerance_mean']:g})"
            diff = f"{r['max_abs_diff']:.1e} ({r['mean_abs_diff']:.1e})"
            if r.get("min_cosine") is not None:
                diff += f"; embedding cosine min {r['min_cosine']:.5f}"
            if r.get("tolerance_cosine") is not None:
                tol += f"; cosine >= {r['tolerance_cosine']:g}"
            lines.append(
                f"| {r['modality']} | {r['files']} | {r['reference_items_per_s']:.2f} | "
                f"{r['ours_items_per_s']:.2f} | **{r['speedup']:.2f}x** "
                f"({r['per_file_speedup_min']:.2f}x, {r['per_file_speedup_median']:.2f}x) | "
                f">= {r['target_speedup']:g}x | {diff} | {tol} | {_met(r['target_met'])} |"
            )
            if len(r["by_format"]) > 1:
                for suffix, f in r["by_format"].items():
                    lines.append(
                        f"| &nbsp;&nbsp;{suffix} only | {f['files']} | "
                        f"{f['reference_items_per_s']:.2f} | {f['ours_items_per_s']:.2f} | "
                        f"{f['speedup']:.2f}x | | | | |"
                    )
    batch = "default" if doc["batch_size"] is None else doc["batch_size"]
    settings = f"{MODEL}, cpu, workers={doc['workers']}, batch size {batch}"
    if "e2e" in doc:
        lines += [
            "",
            f"### End to end: `connect(...).ingest([folder])`, {settings}",
            "",
            "One ingest per modality folder, then the whole collection; each into a fresh index.",
            "",
            "| files | count | rows | ingest s | files/s | process wall s | seconds by stage |",
            "|---|---|---|---|---|---|---|",
        ]
        for label, e in doc["e2e"].items():
            if "error" in e:
                lines.append(f"| {label} | {e['files']} | **failed**: {e['error']} | | | | |")
                continue
            rep = e["report"]
            stages = ", ".join(f"{k} {v:.1f}" for k, v in sorted(rep["seconds_by_stage"].items()))
            rows = ", ".join(f"{k} {v}" for k, v in sorted(rep["rows_by_modality"].items()))
            lines.append(
                f"| {label} | {rep['files_ingested']} | {rep['rows_written']} ({rows}) | "
                f"{rep['seconds_total']:.1f} | **{e['files_per_s']:.2f}** | {e['wall_s']:.1f} | "
                f"{stages} |"
            )
        lines += [
            "",
            "ingest s: the report's `seconds_total` (model set-up, worker start, scan to final "
            "optimize); process wall s adds interpreter start and imports. Stage seconds: decode "
            "is the workers' summed busy time (it overlaps encode and write in the main process); "
            "a video also yields an audio row from its soundtrack.",
        ]
    if "memory" in doc:
        m = doc["memory"]
        lines += [
            "",
            f"### Peak memory: N vs {m['factor']}N files, {settings}",
            "",
            "| run | files | files/s | main process peak RSS MiB | worker/helper peak RSS MiB "
            "(processes) | whole tree peak RSS MiB | RUSAGE_CHILDREN max MiB |",
            "|---|---|---|---|---|---|---|",
        ]
        for label, r in m["runs"].items():
            if "error" in r:
                lines.append(f"| {label} | {r['files']} | **failed**: {r['error']} | | | | |")
                continue
            lines.append(
                f"| {label} | {r['files']} | {r['files_per_s']:.2f} | {r['main_peak_mib']:.0f} | "
                f"{r['workers_peak_mib']:.0f} ({r['helper_processes']}) | "
                f"{r['tree_peak_mib']:.0f} | {r['rusage_peak_mib']:.0f} |"
            )
        if "ratios" in m:
            ra = m["ratios"]
            lines.append(
                f"| ratio | {m['factor']}x | | **{ra['main_peak_mib']:.2f}** | "
                f"**{ra['workers_peak_mib']:.2f}** | **{ra['tree_peak_mib']:.2f}** | |"
            )
        lines += [
            "",
            f"N = {m['base']['image']} images + {m['base']['audio']} audio + "
            f"{m['base']['video']} videos, unique copies of the collection's files (JPEG comment, PNG tEXt chunk, "
            "MP4 free box, audio regenerated with new seeds). Peak RSS: main = the ingesting "
            "process's own `ru_maxrss` (exact); workers/helpers (forkserver, decode worker, "
            "resource tracker) = their VmHWM, polled every 50 ms; tree = the largest sum of "
            "current RSS at one poll (counts shared library pages once per process); "
            "RUSAGE_CHILDREN = the largest single process the run's fresh parent saw "
            "reaped (a cross-check of the main figure).",
        ]
    lines += ["", "### Targets", ""]
    for r in doc.get("preprocess", []):
        lines.append(
            f"- {r['modality']} preprocessing >= {r['target_speedup']:g}x the reference with "
            f"outputs within tolerance: {_met(r['target_met'])} ({r['speedup']:.2f}x, max abs "
            f"diff {r['max_abs_diff']:.1e}"
            + (f", embedding cosine min {r['min_cosine']:.5f})" if r.get("min_cosine") else ")")
        )
    if "memory" in doc:
        m = doc["memory"]
        worst = f"largest ratio {max(m['ratios'].values()):.2f}" if "ratios" in m else "run failed"
        lines.append(
            f"- peak memory flat (<= {MEMORY_TARGET_RATIO:.1f}x) at {m['factor']}x files: "
            f"{_met(m['target_met'])} ({worst})"
        )
    if doc.get("notes"):
        lines += ["", "### Notes", ""] + [f"- {note}" for note in doc["notes"]]
    return "\n".join(lines) + "\n"


def write_results(section: str, path: Path = RESULTS_PATH) -> None:
    """Replace the ``## Ingest`` section of ``path`` (or append it), leaving the rest alone.

    The file is re-read right before writing (other benchmarks write their own sections) and
    replaced atomically.
    """
    text = path.read_text() if path.exists() else "# Benchmark results\n"
    pattern = re.compile(rf"^{re.escape(SECTION_TITLE)}\n.*?(?=^## |\Z)", re.M | re.S)
    if pattern.search(text):
        text = pattern.sub(lambda _: section.rstrip("\n") + "\n\n", text)
    else:
        text = text.rstrip("\n") + "\n\n" + section
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    tmp.write_text(text.rstrip("\n") + "\n")
    os.replace(tmp, path)


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--images", type=int, default=24, help="JPEG photos (default 24)")
    parser.add_argument("--audio", type=int, default=12, help="WAV/FLAC tracks (default 12)")
    parser.add_argument("--videos", type=int, default=4, help="H.264 videos (default 4)")
    parser.add_argument("--rounds", type=int, default=5, help="timing rounds per file")
    parser.add_argument(
        "--threads", type=int, default=1, help="torch threads for preprocessing (default 1)"
    )
    parser.add_argument("--workers", type=int, default=1, help="ingest decode processes")
    parser.add_argument(
        "--batch-size", type=int, default=None, help="ingest --batch-size (default: its own)"
    )
    parser.add_argument(
        "--parts", default=",".join(PARTS), help=f"comma-separated subset of {','.join(PARTS)}"
    )
    parser.add_argument(
        "--memory-base",
        type=int,
        nargs=3,
        default=(20, 5, 2),
        metavar=("IMAGES", "AUDIO", "VIDEOS"),
        help="files of the small memory run (default 20 5 2)",
    )
    parser.add_argument("--memory-factor", type=int, default=10)
    parser.add_argument("--workdir", help="where to generate files (default: a temp dir)")
    parser.add_argument("--keep", action="store_true", help="keep the generated files")
    parser.add_argument(
        "--note", action="append", default=[], help="a remark for the results (repeatable)"
    )
    parser.add_argument("--json", action="store_true", help="print the report as JSON")
    parser.add_argument(
        "--write-results", action="store_true", help=f"record the run in {RESULTS_PATH.name}"
    )
    args = parser.parse_args(argv)
    unknown = set(args.parts.split(",")) - set(PARTS)
    if unknown:
        parser.error(f"unknown --parts {sorted(unknown)}; choose from {PARTS}")
    return args


def main(argv: list[str] | None = None) -> None:
    args = parse_args(argv)
    logging.basicConfig(level=logging.INFO, stream=sys.stderr, format="%(asctime)s %(message)s")
    warnings.filterwarnings("ignore", category=UserWarning, module="torchvision")
    doc = run(args)
    section = format_report(doc)
    if args.json:
        print(json.dumps(doc, indent=2))
    else:
        print(section)
    if args.write_results:
        write_results(section)
        logger.info("wrote the %r section of %s", SECTION_TITLE, RESULTS_PATH)


if __name__ == "__main__":
    main()
