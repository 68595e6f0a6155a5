"""Read selected frames of a video file with PyAV, seeking instead of decoding everything.

The reference loader decodes every frame of each 2-s window to keep two of them. ``VideoReader``
maps each wanted frame index to a presentation timestamp, seeks to the keyframe before it and
decodes forward only as far as that frame. When the next wanted frame lies in the same GOP as
the decoder's current position (no keyframe in between, known from the demuxer's index), it
keeps decoding forward instead of seeking back to that keyframe.

Frame index ``i`` means the frame presented at ``start_time + i / average_rate``: for
constant-frame-rate files this is exactly the i-th frame in presentation order (what decord,
the reference's decoder, indexes); for variable-frame-rate files it is the first frame shown at
or after that time, so sampling follows wall-clock time rather than frame counts.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path
from typing import Any

import numpy as np

from bindsearch.errors import DecodeError, EmptyInputError

logger = logging.getLogger(__name__)

#: Without a demuxer index we cannot see keyframes; decode forward at most this far instead
#: of seeking (about one GOP of a typical camera or web encode).
BLIND_FORWARD_S = 2.0

#: If the stream ends this much before a wanted frame, the file is treated as truncated.
TRUNCATION_TOLERANCE_S = 1.0

#: Demuxers whose index lists the file's real keyframes (MP4/MOV sample tables, Matroska cues,
#: AVI idx1). Others (MPEG-TS) fill it with bisection probes, so it cannot guide seeking.
_KEYFRAME_INDEX_FORMATS = frozenset({"mov", "mp4", "matroska", "webm", "avi"})

#: Seek this far before a target (then further back, then to the start) when a seek lands past it.
_SEEK_BACKOFFS_S: tuple[float | None, ...] = (0.0, 1.0, 4.0, None)


@dataclass(frozen=True)
class VideoInfo:
    """Header facts about a video file (nothing is decoded to get them).

    ``duration_s`` is ``num_frames / fps``, the definition the reference's clip sampler uses.
    ``num_frames`` comes from the container header when it records one (MP4, MOV); otherwise
    (Matroska/WebM, MPEG-TS) it is estimated as ``round(stream duration * fps)`` and
    ``num_frames_exact`` is False. ``width``/``height`` are the coded size, before any rotation
    metadata is applied (``load_video`` applies it).
    """

    duration_s: float
    fps: float
    width: int
    height: int
    num_frames: int
    has_audio: bool
    num_frames_exact: bool


def open_container(path: str | Path) -> Any:
    """Open ``path`` with PyAV, mapping every failure to ``DecodeError``."""
    import av

    p = Path(path)
    if not p.is_file():
        raise DecodeError(p, "file not found" if not p.exists() else "not a regular file")
    if p.stat().st_size == 0:
        raise EmptyInputError(p, "file is empty (0 bytes)")
    try:
        return av.open(str(p), mode="r")
    except av.FFmpegError as exc:
        raise DecodeError(p, f"cannot open as a video container: {exc}") from exc


def find_video_stream(container: Any, path: str | Path) -> Any:
    """Return the first real video stream (cover art is not video), or raise ``DecodeError``."""
    import av.stream

    for stream in container.streams.video:
        if not stream.disposition & av.stream.Disposition.attached_pic:
            return stream
    kinds = sorted({s.type for s in container.streams})
    if not kinds:
        raise EmptyInputError(path, "container holds no streams (a zero-frame or empty video?)")
    if container.streams.video:
        kinds = [k if k != "video" else "cover art" for k in kinds]
    raise DecodeError(path, f"no video stream (streams: {', '.join(kinds)}); expected a video file")


def read_video_info(container: Any, stream: Any, path: str | Path) -> VideoInfo:
    """Build ``VideoInfo`` from the container and stream headers."""
    rate = stream.average_rate or stream.guessed_rate or stream.base_rate
    if not rate or rate <= 0:
        raise DecodeError(path, "video stream has no frame rate in its header")
    fps = float(rate)
    num_frames = int(stream.frames or 0)
    exact = num_frames > 0
    if not exact:
        num_frames = round(_header_duration_s(container, stream) * fps)
    if num_frames <= 0:
        raise EmptyInputError(path, "video stream has no frames")
    return VideoInfo(
        duration_s=num_frames / fps,
        fps=fps,
        width=int(stream.codec_context.width),
        height=int(stream.codec_context.height),
        num_frames=num_frames,
        has_audio=len(container.streams.audio) > 0,
        num_frames_exact=exact,
    )


def _header_duration_s(container: Any, stream: Any) -> float:
    """Stream duration from the header, falling back to the container's (0 if neither)."""
    if stream.duration is not None and stream.time_base is not None:
        return float(stream.duration * stream.time_base)
    if container.duration is not None:
        import av

        return container.duration / av.time_base
    return 0.0


class _UnusableTimestamps(Exception):
    """Frames lack increasing timestamps (e.g. AVI with B-frames): seek by time is impossible."""


class VideoReader:
    """Decode chosen frames of one video file; use as a context manager.

    ``read_frames(indices)`` returns ``{index: uint8 array [H, W, 3]}`` in display orientation
    (rotation metadata in multiples of 90 degrees is applied). ``seeks`` and ``frames_decoded``
    count the work done, for tests and benchmarks.
    """

    def __init__(self, path: str | Path) -> None:
        self.path = Path(path)
        self._container = open_container(self.path)
        try:
            self._stream = find_video_stream(self._container, self.path)
            self.info = read_video_info(self._container, self._stream, self.path)
        except BaseException:
            self._container.close()
            raise
        tb = self._stream.time_base
        rate = Fraction(self._stream.average_rate or self._stream.guessed_rate)
        self._ticks_per_frame = 1 / (rate * tb)
        self._ticks_per_s = 1 / tb
        self._start_pts = self._stream.start_time or 0
        names = set(self._container.format.name.split(","))
        self._index_is_keyframes = bool(names & _KEYFRAME_INDEX_FORMATS)
        self.seeks = 0
        self.frames_decoded = 0
        self._frames: Iterator[Any] | None = None  # decoder output since the last (re)positioning
        self._last: Any = None  # newest decoded av.VideoFrame since then
        self._position: int | None = None  # pts the decoder has reached; None = unknown
        self._rewind(reopen=False)

    def __enter__(self) -> VideoReader:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    def close(self) -> None:
        """Release the container."""
        self._container.close()

    def read_frames(self, indices: Sequence[int]) -> dict[int, np.ndarray]:
        """Decode the frames at ``indices`` (any order, duplicates allowed) in one forward pass."""
        import av

        wanted = sorted(set(indices))
        try:
            try:
                return {index: _to_rgb(self._read_one(self._pts_of(index))) for index in wanted}
            except _UnusableTimestamps as exc:
                logger.debug("%s: %s; counting frames from the start instead", self.path, exc)
                return self._read_by_count(wanted)
        except av.FFmpegError as exc:
            raise DecodeError(self.path, f"video decoding failed: {exc}") from exc

    def _read_by_count(self, wanted: list[int]) -> dict[int, np.ndarray]:
        """Fallback for files without usable timestamps: decode from the start, count frames."""
        self._rewind()
        assert self._frames is not None
        out: dict[int, np.ndarray] = {}
        count, frame = -1, None
        for count, frame in enumerate(self._frames):
            self.frames_decoded += 1
            for index in wanted:
                if index == count:
                    out[index] = _to_rgb(frame)
            if count >= wanted[-1]:
                return out
        if frame is None:
            raise DecodeError(self.path, "no decodable video frames")
        if (wanted[-1] - count) / self.info.fps > TRUNCATION_TOLERANCE_S:
            raise DecodeError(self.path, f"stream ends after {count + 1} frames (truncated?)")
        last = _to_rgb(frame)
        return {index: out.get(index, last) for index in wanted}

    def _pts_of(self, index: int) -> int:
        return self._start_pts + round(index * self._ticks_per_frame)

    def _read_one(self, target: int) -> Any:
        """Return the first frame presented at or after ``target`` (pts, half a frame leeway)."""
        tol = self._ticks_per_frame / 2
        if self._last is not None and self._last.pts >= target - tol:
            return self._last  # already decoded (e.g. a VFR gap covered two targets)
        for backoff_s in _SEEK_BACKOFFS_S:
            if backoff_s is None:
                self._rewind()
            elif backoff_s > 0 or self._should_seek(target):
                self._seek(target - round(backoff_s * self._ticks_per_s))
            frame, overshot = self._decode_until(target, tol)
            if frame is not None and not overshot:
                return frame
            # Bisecting demuxers (MPEG-TS) can land past the keyframe: back off further.
            logger.debug("%s: no frame for pts %d here; seeking further back", self.path, target)
        raise DecodeError(self.path, "no decodable video frames")

    def _should_seek(self, target: int) -> bool:
        """True unless decoding forward from the current position is cheaper than a seek."""
        if self._frames is None or self._position is None or target <= self._position:
            return True
        entries = getattr(self._stream, "index_entries", None)  # absent in older PyAV releases
        if not self._index_is_keyframes or entries is None:
            return target - self._position > BLIND_FORWARD_S * self._ticks_per_s
        pos = entries.search_timestamp(target, backward=True, any_frame=False)
        # A keyframe past our position means a seek skips decoding up to it. (MP4 index
        # timestamps are DTS, a few frames early: close enough for this decision.)
        return pos >= 0 and entries[pos].timestamp > max(self._position, self._start_pts)

    def _rewind(self, reopen: bool = True) -> None:
        """Decode from the start of the file, reopening it: works where seeking does not."""
        if reopen:
            self._container.close()
            self._container = open_container(self.path)
            self._stream = find_video_stream(self._container, self.path)
            self.seeks += 1
        self._stream.thread_type = "AUTO"
        self._frames = self._container.decode(self._stream)
        self._last, self._position = None, self._start_pts - 1

    def _seek(self, pts: int) -> None:
        pts = max(int(pts), min(self._start_pts, 0))  # backing off may undershoot the start
        self._container.seek(pts, stream=self._stream, backward=True, any_frame=False)
        self._frames = self._container.decode(self._stream)
        self._last, self._position = None, None
        self.seeks += 1

    def _decode_until(self, target: int, tol: Fraction) -> tuple[Any, bool]:
        """Decode forward to ``target``; returns (frame or None, whether a seek overshot it)."""
        assert self._frames is not None
        just_seeked = self._position is None
        for frame in self._frames:
            if frame.pts is None:
                raise _UnusableTimestamps("decoded frames carry no timestamps")
            if self._last is not None and frame.pts <= self._last.pts:
                raise _UnusableTimestamps("frame timestamps are not increasing")
            self.frames_decoded += 1
            if just_seeked and frame.pts > target + tol and frame.pts > self._start_pts:
                return None, True
            just_seeked = False
            self._last, self._position = frame, frame.pts
            if frame.pts >= target - tol:
                return frame, False
        self._frames = None  # end of stream: the next target needs a seek
        if self._last is not None:
            shortfall_s = float((target - self._last.pts) / self._ticks_per_s)
            if shortfall_s > TRUNCATION_TOLERANCE_S:
                raise DecodeError(
                    self.path,
                    f"stream ends {shortfall_s:.2f} s before the length its header declares "
                    "(truncated or corrupt file)",
                )
        return self._last, False


def _to_rgb(frame: Any) -> np.ndarray:
    """``av.VideoFrame`` -> uint8 [H, W, 3] RGB, rotated for display."""
    rgb = frame.to_ndarray(format="rgb24")  # [H, W, 3]
    rotation = getattr(frame, "rotation", 0) or 0
    quarter_turns = round(rotation / 90)
    if rotation and abs(rotation - 90 * quarter_turns) < 1:
        rgb = np.rot90(rgb, k=quarter_turns % 4)  # counter-clockwise, as FFmpeg defines it
    return np.ascontiguousarray(rgb)
