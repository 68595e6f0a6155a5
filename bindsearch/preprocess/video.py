"""Video files -> ImageBind vision input ``[clips * crops, 3, frames, 224, 224]``.

Follows the reference transform (spec section 3.4) with a faster decoder:

1. Clip windows: ``clips`` windows of ``clip_seconds`` spread evenly over the video, start
   ``k * max(duration - clip_seconds, 0) / max(clips - 1, 1)`` (pytorchvideo's
   ``ConstantClipsPerVideoSampler`` as pinned upstream), with ``duration = num_frames / fps``.
   The reference's mix of float and ``Fraction`` arithmetic is mirrored so that frame indices
   match it exactly, even when ``fps * t`` lands on an integer.
2. Frames: of the window's frame indices ``[ceil(fps * start), ceil(fps * end))`` (cut at the
   last frame), keep ``linspace(0, T - 1, frames_per_clip)`` -- the first and last for 2 frames.
   Only those frames are decoded (``VideoReader`` seeks to each), not the whole window.
3. Pixels: RGB / 255, short side scaled to 224 with bilinear ``F.interpolate``
   (``align_corners=False``, no antialias; long side ``floor(long / short * 224)``), CLIP mean/std.
4. Spatial crops of 224 x 224 along the long axis: start, centre, end (3 crops) or centre only
   (1 crop); the short axis is centred with ``ceil((S - 224) / 2)``.

The output is clip-major: for each clip its crops, like the reference's stacking order. The
model averages the ``clips * crops`` embeddings.

Differences from the reference, on purpose: display-rotation metadata is applied (portrait phone
videos come out upright; decord ignores it), and a ``start_s``/``end_s`` window can restrict
sampling to one segment of a longer video.
"""

from __future__ import annotations

import logging
import math
from fractions import Fraction
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

from bindsearch.errors import ConfigError, EmptyInputError
from bindsearch.preprocess.common import CLIP_MEAN, CLIP_STD, IMAGE_SIZE, clip_windows
from bindsearch.preprocess.video_reader import (
    VideoInfo,
    VideoReader,
    find_video_stream,
    open_container,
    read_video_info,
)

logger = logging.getLogger(__name__)

__all__ = ["VideoInfo", "clip_windows", "load_video", "probe_video", "select_frame_indices"]

#: Defaults of the reference: 5 windows of 2 s, 2 frames each, 3 spatial crops.
DEFAULT_CLIPS = 5
DEFAULT_CLIP_SECONDS = 2.0
DEFAULT_FRAMES_PER_CLIP = 2
DEFAULT_CROPS = 3


def probe_video(path: str | Path) -> VideoInfo:
    """Read duration, frame rate, size, frame count and audio presence from the headers only."""
    container = open_container(path)
    try:
        return read_video_info(container, find_video_stream(container, path), path)
    finally:
        container.close()


def load_video(
    path: str | Path,
    *,
    clips: int = DEFAULT_CLIPS,
    clip_seconds: float = DEFAULT_CLIP_SECONDS,
    frames_per_clip: int = DEFAULT_FRAMES_PER_CLIP,
    crops: int = DEFAULT_CROPS,
    start_s: float | None = None,
    end_s: float | None = None,
) -> torch.Tensor:
    """Load a video as ImageBind vision input.

    Args:
        path: any container/codec FFmpeg (as bundled with PyAV) can read.
        clips: number of temporal windows.
        clip_seconds: length of each window.
        frames_per_clip: frames kept per window; the model's stem needs 2.
        crops: 3 (start/centre/end along the long side, as the reference) or 1 (centre).
        start_s, end_s: sample only inside ``[start_s, end_s)`` (defaults: the whole video).

    Returns:
        float32 ``[clips * crops, 3, frames_per_clip, 224, 224]``, clip-major.

    Raises:
        DecodeError: missing, corrupt, truncated or non-video file.
        EmptyInputError: no frames, or the window lies past the end.
        ConfigError: invalid knob values.
    """
    _check_knobs(clips, clip_seconds, frames_per_clip, crops, start_s, end_s)
    with VideoReader(path) as reader:
        info = reader.info
        stop = _stop_index(info, path, start_s, end_s)
        begin_s = Fraction(start_s or 0)
        span_s = info.duration_s if end_s is None else min(end_s, info.duration_s)
        span_s -= float(begin_s)
        per_clip = [
            select_frame_indices(info.fps, begin_s + a, begin_s + b, stop, frames_per_clip)
            for a, b in clip_windows(span_s, clips, clip_seconds)
        ]
        decoded = reader.read_frames([i for idx in per_clip for i in idx])
    logger.debug("%s: frame indices per clip %s", path, per_clip)
    out = []
    for indices in per_clip:
        frames = np.stack([decoded[i] for i in indices])  # [T, H, W, 3] uint8
        clip = _to_normalised_clip(frames)  # [3, T, h, w], short side 224
        out.extend(_spatial_crops(clip, crops))
    return torch.stack(out)  # [clips * crops, 3, T, 224, 224]


def select_frame_indices(
    fps: float, start_s: Fraction, end_s: Fraction, stop: int, count: int
) -> list[int]:
    """Indices of ``count`` frames spread over the window ``[start_s, end_s)``.

    The window covers ``[ceil(fps * start), min(ceil(fps * end), stop))``; ``linspace`` over its
    positions picks the frames (first and last for ``count = 2``). An empty window (possible at
    the very end of a segment) falls back to the frame at its start, clamped to ``stop - 1``.
    """
    first = math.ceil(fps * start_s)  # float * Fraction -> float, as the reference
    end = min(math.ceil(fps * end_s), stop)
    if end <= first:
        return [min(first, stop - 1)] * count
    positions = torch.linspace(0, end - first - 1, count).clamp(0, end - first - 1).long()
    return [first + int(p) for p in positions]


def _stop_index(
    info: VideoInfo, path: str | Path, start_s: float | None, end_s: float | None
) -> int:
    """One past the last usable frame index for the requested window."""
    if start_s is not None and start_s >= info.duration_s:
        raise EmptyInputError(
            path, f"start_s={start_s} is at or past the end of the video ({info.duration_s:.3f} s)"
        )
    if end_s is None:
        return info.num_frames
    return max(1, min(info.num_frames, math.ceil(info.fps * end_s)))


def _check_knobs(
    clips: int,
    clip_seconds: float,
    frames_per_clip: int,
    crops: int,
    start_s: float | None,
    end_s: float | None,
) -> None:
    if clips < 1:
        raise ConfigError(f"clips must be >= 1, got {clips}")
    if not clip_seconds > 0:
        raise ConfigError(f"clip_seconds must be > 0, got {clip_seconds}")
    if frames_per_clip < 1:
        raise ConfigError(f"frames_per_clip must be >= 1, got {frames_per_clip}")
    if crops not in (1, 3):
        raise ConfigError(f"crops must be 1 (centre) or 3 (start/centre/end), got {crops}")
    if start_s is not None and start_s < 0:
        raise ConfigError(f"start_s must be >= 0, got {start_s}")
    if end_s is not None and end_s <= (start_s or 0):
        raise ConfigError(f"end_s ({end_s}) must be greater than start_s ({start_s or 0})")


def _to_normalised_clip(frames: np.ndarray) -> torch.Tensor:
    """uint8 [T, H, W, 3] -> float32 [3, T, h, w]: /255, short side 224, CLIP mean/std."""
    x = torch.from_numpy(frames).permute(3, 0, 1, 2).float() / 255.0  # [3, T, H, W]
    _, _, height, width = x.shape
    if width < height:
        size = (int(math.floor(height / width * IMAGE_SIZE)), IMAGE_SIZE)
    else:
        size = (IMAGE_SIZE, int(math.floor(width / height * IMAGE_SIZE)))
    # Channels act as the batch and frames as channels; bilinear is per plane, so this equals
    # scaling each frame separately.
    x = F.interpolate(x, size=size, mode="bilinear", align_corners=False)
    mean = torch.tensor(CLIP_MEAN).view(3, 1, 1, 1)
    std = torch.tensor(CLIP_STD).view(3, 1, 1, 1)
    return x.sub_(mean).div_(std)


def _spatial_crops(clip: torch.Tensor, crops: int) -> list[torch.Tensor]:
    """[3, T, H, W] -> ``crops`` views [3, T, 224, 224] along the long axis."""
    height, width = clip.shape[-2:]
    size = IMAGE_SIZE
    y_mid = math.ceil((height - size) / 2)
    x_mid = math.ceil((width - size) / 2)
    if height > width:
        offsets = [(0, x_mid), (y_mid, x_mid), (height - size, x_mid)]
    else:
        offsets = [(y_mid, 0), (y_mid, x_mid), (y_mid, width - size)]
    chosen = offsets if crops == 3 else offsets[1:2]
    return [clip[..., y : y + size, x : x + size] for y, x in chosen]
