"""Decode audio files (and the soundtrack of video files) to float32 ``[channels, samples]``.

Two decoders, neither needing system libraries:

* soundfile (libsndfile, bundled in its wheel) for WAV, FLAC, OGG/Vorbis and anything else
  it recognises -- tried first for every suffix not listed below;
* PyAV (FFmpeg, bundled in its wheel) for MP3, AAC/M4A, Opus and video containers, and as
  the fallback when soundfile cannot read a file. PyAV goes through the same FFmpeg decoders
  the reference uses (``torchaudio.load`` -> TorchCodec -> FFmpeg).

Samples are scaled to ``[-1, 1]`` the way both libraries (and the reference) do: integer
PCM is divided by ``2 ** (bits - 1)`` (unsigned 8-bit is centred first); float stays as is.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from bindsearch.errors import ConfigError, DecodeError
from bindsearch.preprocess.common import check_finite

logger = logging.getLogger(__name__)

#: Suffixes decoded with PyAV directly (compressed formats whose reference decoder is FFmpeg).
PYAV_SUFFIXES: frozenset[str] = frozenset(
    {".mp3", ".m4a", ".m4b", ".aac", ".opus", ".wma", ".ac3", ".mka", ".mp4", ".m4v", ".mov"}
    | {".mkv", ".webm", ".avi", ".flv", ".mpg", ".mpeg", ".ts", ".3gp", ".wmv"}
)

# numpy dtype of a PyAV sample format -> (offset, scale) giving float in [-1, 1].
_INT_SCALING: dict[np.dtype, tuple[float, float]] = {
    np.dtype(np.uint8): (128.0, 1.0 / 128.0),
    np.dtype(np.int16): (0.0, 1.0 / 32768.0),
    np.dtype(np.int32): (0.0, 1.0 / 2147483648.0),
    np.dtype(np.int64): (0.0, 1.0 / 9223372036854775808.0),
}


#: soundfile subtypes of at most 16 bits per sample, read as int16 and scaled by
#: ``_decode_soundfile`` (bit-identical to libsndfile's float output, and faster).
_INT16_SUBTYPES: frozenset[str] = frozenset({"PCM_S8", "PCM_U8", "PCM_16"})


@dataclass(frozen=True)
class AudioInfo:
    """Container metadata of an audio stream, read without decoding it."""

    sample_rate_hz: int
    channels: int
    duration_s: float


def _sample_window(
    start_s: float | None, end_s: float | None, sample_rate_hz: int
) -> tuple[int, int | None]:
    """``[start, stop)`` sample indices of a time window (``stop`` None = to the end)."""
    start = 0 if start_s is None else round(start_s * sample_rate_hz)
    stop = None if end_s is None else round(end_s * sample_rate_hz)
    return start, stop


def _check_window(start_s: float | None, end_s: float | None) -> None:
    if start_s is not None and start_s < 0:
        raise ConfigError(f"start_s must be >= 0, got {start_s}")
    if end_s is not None and end_s <= (start_s or 0):
        raise ConfigError(f"end_s must be after start_s, got start_s={start_s}, end_s={end_s}")


def _decode_soundfile(
    path: Path, start_s: float | None, end_s: float | None
) -> tuple[np.ndarray, int]:
    """Decode with libsndfile; raises ``soundfile.SoundFileError`` (or RuntimeError) on failure."""
    import soundfile

    with soundfile.SoundFile(str(path)) as f:
        sample_rate_hz = int(f.samplerate)
        start, stop = _sample_window(start_s, end_s, sample_rate_hz)
        if start > 0:
            if start >= f.frames:
                return np.zeros((f.channels, 0), dtype=np.float32), sample_rate_hz
            f.seek(start)
        frames = -1 if stop is None else max(stop - start, 0)
        if f.subtype in _INT16_SUBTYPES:
            # libsndfile's own float conversion is several times slower than reading the
            # integers and scaling them here; the result is the same (x / 32768, exact).
            data = f.read(frames, dtype="int16", always_2d=True)  # [N, C]
            waveform = np.ascontiguousarray(data.T, dtype=np.float32)
            waveform *= np.float32(1.0 / 32768.0)
            return waveform, sample_rate_hz  # [C, N]
        data = f.read(frames, dtype="float32", always_2d=True)  # [N, C]
    return np.ascontiguousarray(data.T), sample_rate_hz  # [C, N]


def _frame_to_float32(frame) -> np.ndarray:  # frame: av.AudioFrame
    """One decoded PyAV frame as float32 ``[C, n]``, whatever its sample format and layout."""
    channels = frame.layout.nb_channels
    values = frame.to_ndarray()  # planar: [C, n]; packed: [1, n * C] interleaved
    if not frame.format.is_planar:
        values = values.reshape(-1, channels).T
    if values.dtype in _INT_SCALING:
        offset, scale = _INT_SCALING[values.dtype]
        return ((values.astype(np.float64) - offset) * scale).astype(np.float32)
    return values.astype(np.float32, copy=False)


def _decode_pyav(path: Path, start_s: float | None, end_s: float | None) -> tuple[np.ndarray, int]:
    """Decode the first audio stream with PyAV, keeping only the requested window.

    A window is cut by counting decoded samples from the start of the stream (exact, but the
    cost grows with ``start_s``; to embed many segments of one file, decode once and slice).
    """
    import av

    try:
        container = av.open(str(path))
    except (av.error.FFmpegError, OSError, ValueError) as exc:
        raise DecodeError(path, f"cannot open media file: {exc}") from exc
    with container:
        if not container.streams.audio:
            raise DecodeError(path, "the file has no audio stream")
        stream = container.streams.audio[0]
        fallback_channels = int(stream.codec_context.channels or 1)
        fallback_rate_hz = int(stream.codec_context.sample_rate or 0)
        blocks: list[np.ndarray] = []  # each [C, n]
        shape_rate: tuple[int, int] | None = None  # (channels, sample rate) of the first frame
        position = 0
        try:
            for frame in container.decode(stream):
                block = _frame_to_float32(frame)
                if shape_rate is None:
                    shape_rate = (block.shape[0], int(frame.sample_rate))
                    start, stop = _sample_window(start_s, end_s, shape_rate[1])
                elif shape_rate != (block.shape[0], int(frame.sample_rate)):
                    raise DecodeError(path, "channel count or sample rate changes mid-stream")
                lo, hi = max(start - position, 0), block.shape[1]
                if stop is not None:
                    hi = min(hi, stop - position)
                if hi > lo:
                    blocks.append(block[:, lo:hi])
                position += block.shape[1]
                if stop is not None and position >= stop:
                    break
        except (av.error.FFmpegError, ValueError) as exc:
            raise DecodeError(path, f"cannot decode audio: {exc}") from exc
    if shape_rate is None:  # the stream holds no frames at all
        return np.zeros((fallback_channels, 0), np.float32), fallback_rate_hz
    channels, sample_rate_hz = shape_rate
    waveform = np.concatenate(blocks, axis=1) if blocks else np.zeros((channels, 0), np.float32)
    return waveform, sample_rate_hz  # [C, N]


def _soundfile_errors() -> tuple[type[Exception], ...]:
    import soundfile

    return (getattr(soundfile, "SoundFileError", RuntimeError), RuntimeError)


def decode_audio(
    path: str | Path, *, start_s: float | None = None, end_s: float | None = None
) -> tuple[np.ndarray, int]:
    """Decode an audio file, or a video file's first audio stream.

    Returns ``(waveform float32 [channels, samples] in [-1, 1], sample_rate_hz)``; with
    ``start_s``/``end_s`` only that window is returned (``end_s`` past the end is fine).
    Raises ``DecodeError`` (missing, empty, corrupt or unsupported file; no audio stream),
    ``EmptyInputError`` (zero samples, or a window past the end) or ``NonFiniteError``.
    """
    _check_window(start_s, end_s)
    p = Path(path)
    if not p.is_file():
        raise DecodeError(p, "file not found (or not a regular file)")
    if p.stat().st_size == 0:
        raise DecodeError(p, "file is empty (0 bytes)")
    if p.suffix.lower() in PYAV_SUFFIXES:
        waveform, sample_rate_hz = _decode_pyav(p, start_s, end_s)
    else:
        try:
            waveform, sample_rate_hz = _decode_soundfile(p, start_s, end_s)
        except _soundfile_errors() as sf_exc:
            logger.debug("soundfile cannot read %s (%s); trying PyAV", p, sf_exc)
            try:
                waveform, sample_rate_hz = _decode_pyav(p, start_s, end_s)
            except DecodeError as exc:
                raise DecodeError(p, f"{exc.reason} (soundfile: {sf_exc})") from exc
    check_finite(waveform, p, "audio samples")
    return waveform, sample_rate_hz


def _probe_pyav(path: Path) -> AudioInfo:
    import av

    try:
        with av.open(str(path)) as container:
            if not container.streams.audio:
                raise DecodeError(path, "the file has no audio stream")
            stream = container.streams.audio[0]
            sample_rate_hz = int(stream.codec_context.sample_rate or 0)
            channels = int(stream.codec_context.channels or 0)
            if stream.duration is not None and stream.time_base is not None:
                duration_s = float(stream.duration * stream.time_base)
            elif container.duration is not None:
                duration_s = container.duration / av.time_base
            else:
                duration_s = -1.0
    except (av.error.FFmpegError, OSError, ValueError) as exc:
        raise DecodeError(path, f"cannot open media file: {exc}") from exc
    if duration_s < 0 or sample_rate_hz <= 0:  # no usable metadata: decode to measure
        waveform, sample_rate_hz = _decode_pyav(path, None, None)
        channels, duration_s = waveform.shape[0], waveform.shape[1] / max(sample_rate_hz, 1)
    return AudioInfo(sample_rate_hz, channels, duration_s)


def probe_audio(path: str | Path) -> AudioInfo:
    """Sample rate, channel count and duration from the file's headers (cheap; no full decode).

    The duration of compressed streams is the container's estimate and may differ from the
    decoded length by a few milliseconds. Raises ``DecodeError`` like :func:`decode_audio`.
    """
    p = Path(path)
    if not p.is_file():
        raise DecodeError(p, "file not found (or not a regular file)")
    if p.suffix.lower() not in PYAV_SUFFIXES:
        import soundfile

        try:
            info = soundfile.info(str(p))
            return AudioInfo(int(info.samplerate), int(info.channels), float(info.duration))
        except _soundfile_errors() as exc:
            logger.debug("soundfile cannot probe %s (%s); trying PyAV", p, exc)
    return _probe_pyav(p)


#: Containers whose soundfile seek is sample-exact (uncompressed PCM, or FLAC with its seek
#: to an absolute sample) ...
_SEEKABLE_FORMATS: frozenset[str] = frozenset({"WAV", "WAVEX", "W64", "RF64", "AIFF", "FLAC"})
#: ... holding integer samples (always finite, so a file's unread parts cannot hold NaN).
_SEEKABLE_SUBTYPES: frozenset[str] = _INT16_SUBTYPES | {"PCM_24", "PCM_32"}


class SampleReader:
    """Random access to the samples of an integer-PCM WAV/AIFF/FLAC file, without decoding
    the rest of it: :meth:`read` returns exactly the samples :func:`decode_audio` gives for
    the same range (same scaling), so a caller can decode only the windows it needs.

    Use :func:`open_sample_reader`; close it (or use it as a context manager) when done.
    """

    def __init__(self, sound_file, path: Path) -> None:  # sound_file: soundfile.SoundFile
        self._file = sound_file
        self.path = path
        self.sample_rate_hz = int(sound_file.samplerate)
        self.channels = int(sound_file.channels)
        self.frames = int(sound_file.frames)
        self._int16 = sound_file.subtype in _INT16_SUBTYPES

    def read(self, begin: int, end: int) -> np.ndarray:
        """Samples ``[begin, end)`` (clipped to the file) as float32 ``[C, n]`` in [-1, 1]."""
        begin, end = max(begin, 0), min(end, self.frames)
        if end <= begin:
            return np.zeros((self.channels, 0), dtype=np.float32)
        try:
            self._file.seek(begin)
            dtype = "int16" if self._int16 else "float32"
            data = self._file.read(end - begin, dtype=dtype, always_2d=True)  # [n, C]
        except _soundfile_errors() as exc:
            raise DecodeError(self.path, f"cannot decode audio: {exc}") from exc
        if self._int16:  # scaled here, as in _decode_soundfile (exact)
            waveform = np.ascontiguousarray(data.T, dtype=np.float32)
            waveform *= np.float32(1.0 / 32768.0)
        else:
            waveform = np.ascontiguousarray(data.T)
        if waveform.shape[1] != end - begin:
            raise DecodeError(
                self.path,
                f"cannot decode audio: read {waveform.shape[1]} of {end - begin} samples "
                f"at sample {begin}",
            )
        return waveform  # [C, n]

    def close(self) -> None:
        self._file.close()

    def __enter__(self) -> SampleReader:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()


def open_sample_reader(path: str | Path) -> SampleReader | None:
    """A :class:`SampleReader` for ``path`` when its format allows exact seeking (integer PCM
    in WAV, WAVEX, W64, RF64, AIFF or FLAC, with at least one sample), else None: the caller
    then decodes the whole file with :func:`decode_audio` (which also reports any error)."""
    p = Path(path)
    if p.suffix.lower() in PYAV_SUFFIXES:
        return None
    import soundfile

    errors: tuple[type[Exception], ...] = (*_soundfile_errors(), OSError)
    try:
        sound_file = soundfile.SoundFile(str(p))
    except errors:
        return None
    if (
        sound_file.format not in _SEEKABLE_FORMATS
        or sound_file.subtype not in _SEEKABLE_SUBTYPES
        or sound_file.frames <= 0
        or not sound_file.seekable()
    ):
        sound_file.close()
        return None
    return SampleReader(sound_file, p)
