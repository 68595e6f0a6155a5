"""Decode/preprocess stage: one file -> its model inputs, run in worker processes.

Everything crossing the process boundary is a plain dataclass of numpy arrays and scalars.
A failure is data (:class:`ItemFailure`), never an exception escaping the worker.
"""

from __future__ import annotations

import hashlib
import math
import time
from dataclasses import dataclass, field

import numpy as np

from bindsearch.errors import BindsearchError, InputError
from bindsearch.preprocess import InputKind

#: Characters of a text file kept in the ``text`` column for display.
SNIPPET_CHARS = 300
_HASH_CHUNK_BYTES = 1 << 20


@dataclass(frozen=True)
class FileJob:
    """A file to prepare, as found by the scan."""

    path: str
    kind: InputKind
    size_bytes: int
    mtime: float
    segment_s: float | None = None
    audio_clips: int | None = None  # whole-file audio rows: None = 3, 0 = auto, N = N clips
    #: Images decoded exactly as the reference (True) or with reduced JPEG decoding (False);
    #: None = the ``BINDSEARCH_IMAGE_EXACT`` environment variable (default: reduced).
    exact_images: bool | None = None


@dataclass
class PreparedItem:
    """One future row: ``clips`` holds ``[S, *item_layout]`` inputs whose vectors are averaged."""

    modality: str  # the row's modality column: image, video, audio, text, depth, thermal, imu
    clips: np.ndarray
    start_s: float | None = None
    end_s: float | None = None
    duration_s: float | None = None
    width: int | None = None
    height: int | None = None
    text: str | None = None


@dataclass(frozen=True)
class ItemFailure:
    """Why one modality of a file could not be prepared."""

    modality: str | None
    stage: str
    error: str


@dataclass
class PreparedFile:
    """Result of preparing one file: its content hash, items and failures."""

    job: FileJob
    sha256: str | None = None
    items: list[PreparedItem] = field(default_factory=list)
    failures: list[ItemFailure] = field(default_factory=list)
    seconds: float = 0.0


def file_sha256(path: str) -> str:
    """Streaming sha256 of a file's content."""
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        while chunk := f.read(_HASH_CHUNK_BYTES):
            digest.update(chunk)
    return digest.hexdigest()


def segment_windows(duration_s: float, segment_s: float | None) -> list[tuple[float, float]]:
    """Windows ``[k*S, min((k+1)*S, duration)]`` for media longer than one segment, else none."""
    if not segment_s or duration_s <= segment_s:
        return []
    count = math.ceil(duration_s / segment_s)
    return [(k * segment_s, min((k + 1) * segment_s, duration_s)) for k in range(count)]


def audio_clip_count(duration_s: float, audio_clips: int | None) -> int:
    """2-s clips for a whole-file audio row: 3 for ``None`` (the reference loader's fixed
    count), ``audio_clips`` as given, or for ``0`` ("auto", full coverage) ``ceil(duration /
    2 s)`` and at least 3, the paper's "sample clips to cover the full length"."""
    from bindsearch.preprocess.audio import DEFAULT_CLIP_SECONDS, DEFAULT_CLIPS

    if audio_clips is None:
        return DEFAULT_CLIPS
    if audio_clips > 0:
        return audio_clips
    # A hair below the ratio, so 10.0000001 s counts as 5 windows, not 6.
    return max(DEFAULT_CLIPS, math.ceil(duration_s / DEFAULT_CLIP_SECONDS - 1e-6))


def prepare_file(job: FileJob) -> PreparedFile:
    """Hash and decode one file into model inputs; failures are recorded, not raised."""
    started = time.perf_counter()
    result = PreparedFile(job)
    try:
        result.sha256 = file_sha256(job.path)
    except OSError as exc:
        result.failures.append(ItemFailure(job.kind.value, "read", f"cannot read file: {exc}"))
        return result
    preparer = _PREPARERS[job.kind]
    try:
        preparer(job, result)
    except InputError as exc:
        result.failures.append(ItemFailure(job.kind.value, "decode", exc.reason))
    except BindsearchError as exc:
        result.failures.append(ItemFailure(job.kind.value, "decode", str(exc)))
    except Exception as exc:  # noqa: BLE001 - any decoder failure is this file's, recorded as data
        result.failures.append(
            ItemFailure(job.kind.value, "decode", f"{type(exc).__name__}: {exc}")
        )
    result.seconds = time.perf_counter() - started
    return result


def _as_clips(tensor, per_item_ndim: int) -> np.ndarray:  # tensor: torch.Tensor
    array = tensor.numpy()
    return array if array.ndim == per_item_ndim + 1 else array[None]


def _prepare_image(job: FileJob, out: PreparedFile) -> None:
    from bindsearch.preprocess.image import load_image_with_size

    tensor, (width, height) = load_image_with_size(job.path, exact=job.exact_images)
    out.items.append(PreparedItem("image", _as_clips(tensor, 3), width=width, height=height))


def _prepare_simple(job: FileJob, out: PreparedFile) -> None:
    from bindsearch.preprocess import load_file

    tensor = load_file(job.kind, job.path)  # depth/thermal [1,224,224], imu [6,2000]
    out.items.append(PreparedItem(job.kind.value, _as_clips(tensor, tensor.ndim)))


def _prepare_text(job: FileJob, out: PreparedFile) -> None:
    from bindsearch.preprocess.text import load_text_file, tokenize_text_file

    text = load_text_file(job.path)
    # Longer than one 77-token window: the file's vector is the mean of its chunks' vectors.
    ids = tokenize_text_file(job.path).numpy()  # [S, 77]
    snippet = " ".join(text.split())[:SNIPPET_CHARS]
    out.items.append(PreparedItem("text", ids, text=snippet))


def _prepare_audio(job: FileJob, out: PreparedFile) -> None:
    from bindsearch.preprocess.audio import decode_audio, load_audio_with_duration

    if not job.segment_s:  # decodes only what the clips read, where the format allows it
        clips, duration = load_audio_with_duration(
            job.path, clips=lambda seconds: audio_clip_count(seconds, job.audio_clips)
        )
        out.items.append(PreparedItem("audio", clips.numpy(), duration_s=duration))
        return
    waveform, rate = decode_audio(job.path)  # segments read all of it anyway: decode once
    _audio_items(waveform, rate, job, out)


def _audio_items(waveform: np.ndarray, rate: int, job: FileJob, out: PreparedFile) -> None:
    from bindsearch.preprocess.audio import waveform_to_clips

    duration = waveform.shape[1] / rate
    count = audio_clip_count(duration, job.audio_clips)
    clips = waveform_to_clips(waveform, rate, clips=count).numpy()  # [count, 1, 128, 204]
    out.items.append(PreparedItem("audio", clips, duration_s=duration))
    for start, end in segment_windows(duration, job.segment_s):  # segments keep 3 clips
        part = waveform[:, int(start * rate) : int(end * rate)]
        seg = waveform_to_clips(part, rate).numpy()
        out.items.append(PreparedItem("audio", seg, start_s=start, end_s=end, duration_s=duration))


def _prepare_video(job: FileJob, out: PreparedFile) -> None:
    from bindsearch.preprocess.video import load_video, probe_video

    info = probe_video(job.path)

    def item(clips: np.ndarray, start_s: float | None = None, end_s: float | None = None):
        return PreparedItem(
            "video", clips, start_s, end_s, info.duration_s, info.width, info.height
        )

    out.items.append(item(load_video(job.path).numpy()))
    for start, end in segment_windows(info.duration_s, job.segment_s):
        out.items.append(item(load_video(job.path, start_s=start, end_s=end).numpy(), start, end))
    if info.has_audio:
        _prepare_soundtrack(job, out)


def _prepare_soundtrack(job: FileJob, out: PreparedFile) -> None:
    """The video's sound as ``audio`` rows of the same path; its failure spares the frames."""
    from bindsearch.preprocess.audio import decode_audio

    try:
        waveform, rate = decode_audio(job.path)
        _audio_items(waveform, rate, job, out)
    except InputError as exc:
        out.failures.append(ItemFailure("audio", "decode", f"soundtrack: {exc.reason}"))


_PREPARERS = {
    InputKind.IMAGE: _prepare_image,
    InputKind.VIDEO: _prepare_video,
    InputKind.AUDIO: _prepare_audio,
    InputKind.TEXT: _prepare_text,
    InputKind.DEPTH: _prepare_simple,
    InputKind.THERMAL: _prepare_simple,
    InputKind.IMU: _prepare_simple,
}


def crashed_file(job: FileJob, detail: str) -> PreparedFile:
    """The result for a file whose decoding killed its worker process (e.g. a decoder crash)."""
    failure = ItemFailure(job.kind.value, "decode", f"decoder crashed the worker process: {detail}")
    return PreparedFile(job, failures=[failure])


def worker_init() -> None:
    """Per worker process: one intra-op thread (the pool supplies the parallelism)."""
    import torch

    torch.set_num_threads(1)


__all__ = [
    "FileJob",
    "ItemFailure",
    "PreparedFile",
    "PreparedItem",
    "audio_clip_count",
    "prepare_file",
]
