"""Generated video (and audio-only) files for the video preprocessing tests.

Videos are written with PyAV's bundled FFmpeg: H.264 (libx264, yuv420p) when available, else
MPEG-4 part 2 at a high quality. Two frame patterns:

* ``"index"``: every pixel has grey level ``16 + 3 * (i % 80)`` in frame ``i`` (flat frames
  survive lossy coding to within about one grey level), except a white 20 x 40 marker in the
  top-left corner used to check orientation. ``frame_index_of`` reads ``i % 80`` back.
* ``"texture"``: colour gradients, a moving sinusoid and block, to exercise colour conversion
  and interpolation in parity tests, plus a central patch holding the ``"index"`` grey level.
"""

from __future__ import annotations

from fractions import Fraction
from pathlib import Path

import numpy as np

#: Encoder options giving near-lossless flat frames, so grey levels survive.
_QUALITY = {
    "libx264": {"crf": "12"},
    "mpeg4": {"qscale": "2"},
    "libvpx-vp9": {"crf": "10", "b": "0", "deadline": "realtime", "cpu-used": "8"},
}

GREY_BASE = 16
GREY_STEP = 3
INDEX_PERIOD = 80  # grey levels 16..253
MARKER_ROWS, MARKER_COLS = 20, 40


def video_codec() -> str:
    """libx264 if PyAV's FFmpeg has it, else mpeg4."""
    import av

    return "libx264" if "libx264" in av.codecs_available else "mpeg4"


def index_frame(i: int, width: int, height: int) -> np.ndarray:
    """uint8 [H, W, 3] flat grey frame encoding ``i % INDEX_PERIOD``, with the top-left marker."""
    img = np.full((height, width, 3), GREY_BASE + GREY_STEP * (i % INDEX_PERIOD), np.uint8)
    img[:MARKER_ROWS, :MARKER_COLS] = 255
    return img


def texture_frame(i: int, width: int, height: int) -> np.ndarray:
    """uint8 [H, W, 3]: colour gradients, a sinusoid moving with ``i``, a block moving along the
    top edge, and a flat patch with the ``"index"`` grey level of ``i`` over the middle 40 % of
    the long side and 20 % of the short side (inside every 224-px crop)."""
    y, x = np.mgrid[0:height, 0:width].astype(np.float32)
    r = 255 * x / max(width - 1, 1)
    g = 255 * y / max(height - 1, 1)
    b = 127.5 + 100 * np.sin((x + y + 4 * i) / 9.0)
    img = np.clip(np.stack([r, g, b], axis=-1), 0, 255).astype(np.uint8)
    bx = (7 * i) % max(width - 40, 1)
    img[:40, bx : bx + 40] = (240, 30, 60)
    long_frac, short_frac = (0.3, 0.7), (0.4, 0.6)
    fy, fx = (long_frac, short_frac) if height > width else (short_frac, long_frac)
    rows = slice(int(fy[0] * height), int(fy[1] * height))
    cols = slice(int(fx[0] * width), int(fx[1] * width))
    img[rows, cols] = GREY_BASE + GREY_STEP * (i % INDEX_PERIOD)
    return img


def write_video(
    path: Path,
    *,
    num_frames: int = 75,
    width: int = 320,
    height: int = 240,
    fps: int | Fraction = 25,
    pattern: str = "index",
    rotation_deg: int | None = None,
    with_audio: bool = False,
    gop: int | None = None,
    pts_ms: list[int] | None = None,
    codec: str | None = None,
) -> Path:
    """Encode a video file at ``path`` (container chosen by its suffix) and return the path.

    ``gop`` sets the keyframe interval in frames (encoder default otherwise); ``pts_ms`` gives
    each frame's presentation time in milliseconds, for variable-frame-rate files.
    """
    import av

    make = {"index": index_frame, "texture": texture_frame}[pattern]
    codec = codec or video_codec()
    with av.open(str(path), "w") as container:
        stream = container.add_stream(codec, rate=fps)
        stream.width, stream.height, stream.pix_fmt = width, height, "yuv420p"
        stream.options = _QUALITY.get(codec, {})
        if gop is not None:
            stream.codec_context.gop_size = gop
        if pts_ms is not None:
            stream.codec_context.time_base = Fraction(1, 1000)
        if rotation_deg is not None:
            stream.set_display_rotation(rotation_deg)
        audio = _add_audio_stream(container) if with_audio else None
        for i in range(num_frames):
            frame = av.VideoFrame.from_ndarray(make(i, width, height), format="rgb24")
            if pts_ms is not None:
                frame.pts, frame.time_base = pts_ms[i], Fraction(1, 1000)
            container.mux(stream.encode(frame))
        container.mux(stream.encode())
        if audio is not None:
            _write_tone(container, audio, seconds=num_frames / float(fps))
    return path


def write_audio_only(path: Path, seconds: float = 1.0) -> Path:
    """An audio-only file (AAC in .m4a, PCM in .wav) of a 440 Hz tone."""
    import av

    with av.open(str(path), "w") as container:
        stream = _add_audio_stream(container, pcm=path.suffix == ".wav")
        _write_tone(container, stream, seconds=seconds)
    return path


def _add_audio_stream(container, pcm: bool = False):  # -> av.AudioStream
    stream = container.add_stream("pcm_s16le" if pcm else "aac", rate=16000)
    stream.layout = "mono"
    return stream


def _write_tone(container, stream, seconds: float) -> None:
    import av

    t = np.arange(int(seconds * 16000)) / 16000
    samples = (0.3 * np.sin(2 * np.pi * 440 * t)).astype(np.float32)
    fmt = "s16" if stream.codec_context.name.startswith("pcm") else "fltp"
    data = (samples * 32767).astype(np.int16) if fmt == "s16" else samples
    for start in range(0, len(data), 1024):
        chunk = data[None, start : start + 1024]
        frame = av.AudioFrame.from_ndarray(chunk, format=fmt, layout="mono")
        frame.sample_rate = 16000
        container.mux(stream.encode(frame))
    container.mux(stream.encode())


def frame_index_of(pixels: np.ndarray) -> int:
    """Read ``index % INDEX_PERIOD`` back from an ``"index"`` frame region (0-255 values)."""
    return int(round((float(pixels.mean()) - GREY_BASE) / GREY_STEP))
