"""Audio -> audio-tower input ``float32 [clips, 1, 128, 204]`` (log-mel filterbanks).

The reference transform (spec section 3.3), reproduced step for step:

1. Resample to 16 kHz with ``torchaudio.functional.resample`` defaults (all channels). Only
   the stretches the windows of step 2 read are computed (see :func:`_resample_spans`): the
   same samples as resampling everything, at a fraction of the cost for long audio.
2. ``clips`` windows of ``clip_seconds`` spread evenly over the audio
   (:func:`bindsearch.preprocess.common.clip_windows`); window ``k`` is the sample slice
   ``[int(start * 16000), int(end * 16000))``, shorter near the end of short audio.
3. Per window, in order: subtract the window's mean (over all channels) **in place** on the
   shared waveform -- overlapping later windows see the already shifted samples, exactly as
   in the reference; then a Kaldi filterbank (128 mel bins, 25 ms Hann window, 10 ms hop, no
   dither, HTK-compatible, log power) of channel 0; ``[128, frames]``.
4. Right-pad with 0 (or crop) to 204 frames; normalise ``(x + 4.268) / 9.138``.

Documented choices beyond the reference:

* ``channel_mix="first"`` (default) analyses channel 0 like the reference; ``"mean"`` averages
  all channels before anything else (more faithful for stereo material whose channels differ).
* A window shorter than one analysis frame (400 samples = 25 ms at 16 kHz) is zero-padded to
  400 samples after its mean is removed, giving one frame; the reference fails there.
* The caller's array is never modified (the in-place step works on a private copy).
"""

from __future__ import annotations

import functools
import logging
import math
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Literal

import numpy as np
import torch
import torch.nn.functional as F
import torchaudio

from bindsearch.errors import ConfigError, EmptyInputError, NonFiniteError, ShapeError
from bindsearch.preprocess.audio_reader import (
    AudioInfo,
    decode_audio,
    open_sample_reader,
    probe_audio,
)
from bindsearch.preprocess.common import clip_windows

logger = logging.getLogger(__name__)

__all__ = [
    "AudioInfo",
    "ChannelMix",
    "decode_audio",
    "load_audio",
    "load_audio_with_duration",
    "probe_audio",
    "waveform_to_clips",
]

ChannelMix = Literal["first", "mean"]

TARGET_SAMPLE_RATE_HZ = 16000
NUM_MEL_BINS = 128
#: Frames per clip the audio tower's patch embedding expects.
TARGET_FRAMES = 204
#: Dataset statistics of the log-mel features (AudioSet), applied as (x - mean) / std.
FBANK_MEAN = -4.268
FBANK_STD = 9.138
DEFAULT_CLIPS = 3
DEFAULT_CLIP_SECONDS = 2.0
FRAME_LENGTH_MS = 25
FRAME_SHIFT_MS = 10
#: Samples in one analysis frame at 16 kHz; shorter windows are zero-padded to this.
MIN_CLIP_SAMPLES = TARGET_SAMPLE_RATE_HZ * FRAME_LENGTH_MS // 1000
#: ``torchaudio.functional.resample``'s defaults (what the reference uses), passed explicitly
#: because :func:`_resample_spans` relies on the kernel size they give.
_LOWPASS_FILTER_WIDTH = 6
_ROLLOFF = 0.99
_CHANNEL_MIXES: Sequence[str] = ("first", "mean")


def _checked_waveform(waveform: np.ndarray | torch.Tensor, channel_mix: ChannelMix) -> torch.Tensor:
    """The caller's waveform as float32 ``[C, N]`` (``[N]`` is taken as mono), validated.

    May share memory with the caller's array: copy before modifying it.
    """
    if isinstance(waveform, torch.Tensor):
        wave = waveform.detach().to("cpu", torch.float32)
    else:
        array = np.ascontiguousarray(waveform, dtype=np.float32)
        wave = torch.from_numpy(array if array.flags.writeable else array.copy())
    if wave.ndim == 1:
        wave = wave.unsqueeze(0)
    if wave.ndim != 2:
        raise ShapeError(
            None, f"waveform must be [channels, samples] or [samples], got {tuple(wave.shape)}"
        )
    if wave.shape[0] == 0 or wave.shape[1] == 0:
        raise EmptyInputError(None, f"waveform has no samples (shape {tuple(wave.shape)})")
    if not np.isfinite(wave.numpy()).all():  # numpy's check is ~20x faster than torch's here
        raise NonFiniteError(None, "waveform contains NaN or infinite samples")
    if channel_mix == "mean":
        return wave.mean(dim=0, keepdim=True)  # [1, N]
    return wave


def _resampled_length(length: int, sample_rate_hz: int) -> int:
    """Samples ``torchaudio.functional.resample`` returns for ``length`` input samples.

    Its own expression (a float32 ``ceil``), so that the duration, and so the clip windows,
    match the reference's even where float32 rounding shifts the count for long audio.
    """
    g = math.gcd(sample_rate_hz, TARGET_SAMPLE_RATE_HZ)
    orig, new = sample_rate_hz // g, TARGET_SAMPLE_RATE_HZ // g
    return int(torch.ceil(torch.as_tensor(new * length / orig)).item())


#: ``read(begin, end)`` -> input samples ``[begin, end)`` (clipped to the input), ``[C, n]``.
_Read = Callable[[int, int], torch.Tensor]


def _resample_spans(
    read: _Read, n_in: int, sample_rate_hz: int, spans: list[tuple[int, int]], length: int
) -> list[tuple[int, torch.Tensor]]:
    """The input (``n_in`` samples, read through ``read``) resampled to 16 kHz, computed only
    around ``spans`` (output sample ranges): ``(first output index, [C, n] samples)`` pieces
    that cover every span and equal the same samples of
    ``torchaudio.functional.resample(whole input, ...)`` (``length`` samples in all, from
    :func:`_resampled_length`).

    The resampler is a strided convolution: every ``new``-sample output block ``b`` (rates
    divided by their gcd, ``orig`` -> ``new``) is computed from input samples
    ``[b * orig - width, (b + 1) * orig + width)``, ``width`` the half-length of its
    windowed-sinc kernel (``lowpass_filter_width`` zero crossings of the cut-off
    ``min(orig, new) * rolloff``). So a span is resampled from an input slice that starts on a
    block boundary, at least ``width`` samples early (or at 0), and that runs ``width`` samples
    past the span's last block, with the zeros the full signal is padded with where it runs
    past the end. Only those input slices are read.
    """
    g = math.gcd(sample_rate_hz, TARGET_SAMPLE_RATE_HZ)
    orig, new = sample_rate_hz // g, TARGET_SAMPLE_RATE_HZ // g
    # Twice the kernel's half-width: a generous bound on the context each side needs.
    context = 2 * math.ceil(_LOWPASS_FILTER_WIDTH * orig / (min(orig, new) * _ROLLOFF))
    context_blocks = math.ceil(context / orig)
    pieces = []
    for first_block, end_block in _merged_blocks(spans, new, context_blocks):
        begin = max(first_block - context_blocks, 0) * orig  # input slice [begin, end)
        end = end_block * orig + context
        piece = read(begin, min(end, n_in))
        if end > n_in:  # the zeros the full signal is padded with
            piece = F.pad(piece, (0, end - max(begin, n_in)))
        resampled = _resampler(sample_rate_hz)(piece)
        lo, hi = first_block * new, min(end_block * new, length)
        offset = begin // orig * new  # output index of resampled[:, 0]
        pieces.append((lo, _laid_out(resampled[:, lo - offset : hi - offset], lo, length)))
    return pieces


def _copy_spans(
    read: _Read, spans: list[tuple[int, int]], length: int
) -> list[tuple[int, torch.Tensor]]:
    """16 kHz input of ``length`` samples: private copies of the (merged) ``spans``, as
    ``(start, [C, n])`` pieces."""
    return [(lo, _laid_out(read(lo, hi), lo, length)) for lo, hi in _merged_blocks(spans, 1, 0)]


def _laid_out(piece: torch.Tensor, lo: int, length: int) -> torch.Tensor:
    """A private copy of ``piece`` (output samples from ``lo``), laid out in memory as the same
    samples are in the whole ``[C, length]`` waveform the reference slices its windows from.

    Torch sums a contiguous and a strided tensor in different orders (different float
    rounding of a window's mean), so a window must be contiguous exactly when the
    reference's view is: with one channel, or when it spans the whole waveform.
    """
    channels, n = piece.shape
    if channels == 1 or (lo == 0 and n >= length):
        return piece.clone(memory_format=torch.contiguous_format)
    buffer = piece.new_empty(channels, n + 1)  # rows one sample apart: a strided view
    buffer[:, :n] = piece
    return buffer[:, :n]


@functools.lru_cache(maxsize=8)
def _resampler(sample_rate_hz: int) -> torchaudio.transforms.Resample:
    """``sample_rate_hz`` -> 16 kHz; the same computation as ``torchaudio.functional.resample``
    with these settings, its kernel built once (stateless afterwards, so safe to share)."""
    return torchaudio.transforms.Resample(
        sample_rate_hz,
        TARGET_SAMPLE_RATE_HZ,
        lowpass_filter_width=_LOWPASS_FILTER_WIDTH,
        rolloff=_ROLLOFF,
        dtype=torch.float32,  # the kernel the functional form builds for float32 input
    )


def _merged_blocks(
    spans: list[tuple[int, int]], new: int, gap_blocks: int
) -> list[tuple[int, int]]:
    """Output-block ranges ``[first, end)`` covering ``spans``; ranges closer than
    ``2 * gap_blocks`` are merged (their input slices would overlap anyway). Overlapping
    spans always end up in one range (the in-place mean removal must see one tensor)."""
    blocks = sorted((lo // new, -(-hi // new)) for lo, hi in spans if hi > lo)
    merged: list[tuple[int, int]] = []
    for first, end in blocks:
        if merged and first <= merged[-1][1] + 2 * gap_blocks:
            merged[-1] = (merged[-1][0], max(merged[-1][1], end))
        else:
            merged.append((first, end))
    return merged


def _check_knobs(sample_rate_hz: int, clips: int, clip_seconds: float, channel_mix: str) -> None:
    if int(sample_rate_hz) != sample_rate_hz or sample_rate_hz <= 0:
        raise ConfigError(f"sample_rate_hz must be a positive integer, got {sample_rate_hz}")
    if clips < 1:
        raise ConfigError(f"clips must be >= 1, got {clips}")
    if not clip_seconds > 0:
        raise ConfigError(f"clip_seconds must be > 0, got {clip_seconds}")
    if channel_mix not in _CHANNEL_MIXES:
        raise ConfigError(f"channel_mix must be one of {list(_CHANNEL_MIXES)}, got {channel_mix!r}")


def _clip_to_fbank(clip: torch.Tensor) -> torch.Tensor:
    """Log-mel filterbank ``[128, 204]`` (unnormalised) of one window ``[C, n]`` (a view).

    Mutates ``clip`` (and so the waveform it views) by removing its mean, as the reference does.
    """
    clip -= clip.mean()
    if clip.shape[1] < MIN_CLIP_SAMPLES:
        clip = F.pad(clip, (0, MIN_CLIP_SAMPLES - clip.shape[1]))
    fbank = torchaudio.compliance.kaldi.fbank(
        clip,
        htk_compat=True,
        sample_frequency=TARGET_SAMPLE_RATE_HZ,
        use_energy=False,
        window_type="hanning",
        num_mel_bins=NUM_MEL_BINS,
        dither=0.0,
        frame_length=FRAME_LENGTH_MS,
        frame_shift=FRAME_SHIFT_MS,
    ).T  # [128, frames]; channel 0
    frames = fbank.shape[1]
    if abs(TARGET_FRAMES - frames) / frames > 0.2:
        logger.debug("audio clip has %d frames; padded or cropped to %d", frames, TARGET_FRAMES)
    if frames < TARGET_FRAMES:
        return F.pad(fbank, (0, TARGET_FRAMES - frames))
    return fbank[:, :TARGET_FRAMES]


def _clips_from(
    read: _Read, n_in: int, sample_rate_hz: int, clips: int, clip_seconds: float
) -> torch.Tensor:
    """The audio input of ``n_in`` samples at ``sample_rate_hz``, of which only the stretches
    the windows need are read (through ``read``, channels already mixed)."""
    rate = int(sample_rate_hz)
    resampling = rate != TARGET_SAMPLE_RATE_HZ
    length = _resampled_length(n_in, rate) if resampling else n_in
    windows = clip_windows(length / TARGET_SAMPLE_RATE_HZ, clips, clip_seconds)
    spans = [(int(a * TARGET_SAMPLE_RATE_HZ), int(b * TARGET_SAMPLE_RATE_HZ)) for a, b in windows]
    # Private tensors either way: the windows are modified in place below.
    pieces = (
        _resample_spans(read, n_in, rate, spans, length)
        if resampling
        else _copy_spans(read, spans, length)
    )
    fbanks = torch.empty(clips, 1, NUM_MEL_BINS, TARGET_FRAMES)  # [clips, 1, 128, 204]
    for k, (begin, end) in enumerate(spans):  # in order: each step mutates the shared pieces
        lo, piece = max((p for p in pieces if p[0] <= begin), key=lambda p: p[0])
        fbanks[k, 0] = _clip_to_fbank(piece[:, begin - lo : end - lo])
    mean = torch.as_tensor(FBANK_MEAN, dtype=torch.float32)
    std = torch.as_tensor(FBANK_STD, dtype=torch.float32)
    return (fbanks - mean) / std


def waveform_to_clips(
    waveform: np.ndarray | torch.Tensor,
    sample_rate_hz: int,
    *,
    clips: int = DEFAULT_CLIPS,
    clip_seconds: float = DEFAULT_CLIP_SECONDS,
    channel_mix: ChannelMix = "first",
) -> torch.Tensor:
    """Turn a waveform ``[channels, samples]`` (or ``[samples]``) into audio input.

    Returns ``float32 [clips, 1, 128, 204]``; see the module docstring for the steps and the
    choices. Raises ``ShapeError``/``EmptyInputError``/``NonFiniteError`` for unusable
    waveforms and ``ConfigError`` for invalid arguments. ``clip_seconds`` other than 2 changes
    the frame count before the pad/crop to 204, so it is only useful for experiments.
    """
    _check_knobs(sample_rate_hz, clips, clip_seconds, channel_mix)
    wave = _checked_waveform(waveform, channel_mix)  # [C, N]
    return _clips_from(
        lambda a, b: wave[:, a:b], wave.shape[1], sample_rate_hz, clips, clip_seconds
    )


def load_audio(
    path: str | Path,
    *,
    start_s: float | None = None,
    end_s: float | None = None,
    clips: int = DEFAULT_CLIPS,
    clip_seconds: float = DEFAULT_CLIP_SECONDS,
    channel_mix: ChannelMix = "first",
) -> torch.Tensor:
    """Decode an audio (or video) file and return audio input ``float32 [clips, 1, 128, 204]``.

    With ``start_s``/``end_s``, only that window of the file is decoded and the clips are
    spread over it (for embedding segments of long recordings). Raises the errors of
    :func:`decode_audio` and :func:`waveform_to_clips`.
    """
    return load_audio_with_duration(
        path,
        start_s=start_s,
        end_s=end_s,
        clips=clips,
        clip_seconds=clip_seconds,
        channel_mix=channel_mix,
    )[0]


def load_audio_with_duration(
    path: str | Path,
    *,
    start_s: float | None = None,
    end_s: float | None = None,
    clips: int | Callable[[float], int] = DEFAULT_CLIPS,
    clip_seconds: float = DEFAULT_CLIP_SECONDS,
    channel_mix: ChannelMix = "first",
) -> tuple[torch.Tensor, float]:
    """:func:`load_audio`, also returning the duration (seconds) of the decoded audio.

    ``clips`` may be a function of that duration (e.g. one clip per 2 s). For a whole file
    in a format that seeks exactly (integer PCM in WAV/AIFF/FLAC, see
    :func:`~bindsearch.preprocess.audio_reader.open_sample_reader`) only the stretches the
    clip windows need are decoded, with the resampler's context around them: the result is
    the same as decoding everything (the same samples reach the same arithmetic). Other
    formats, and time windows, are decoded in full.
    """
    _check_knobs(1, 1, clip_seconds, channel_mix)
    if start_s is None and end_s is None:
        reader = open_sample_reader(path)
        if reader is not None:
            with reader:
                duration = reader.frames / reader.sample_rate_hz
                count = clips(duration) if callable(clips) else clips
                _check_knobs(reader.sample_rate_hz, count, clip_seconds, channel_mix)

                def read(begin: int, end: int) -> torch.Tensor:
                    wave = torch.from_numpy(reader.read(begin, end))
                    return wave.mean(dim=0, keepdim=True) if channel_mix == "mean" else wave

                rate = reader.sample_rate_hz
                return _clips_from(read, reader.frames, rate, count, clip_seconds), duration
    waveform, sample_rate_hz = decode_audio(path, start_s=start_s, end_s=end_s)  # [C, N]
    duration = waveform.shape[1] / sample_rate_hz
    count = clips(duration) if callable(clips) else clips
    try:
        tensor = waveform_to_clips(
            waveform,
            sample_rate_hz,
            clips=count,
            clip_seconds=clip_seconds,
            channel_mix=channel_mix,
        )
    except (EmptyInputError, NonFiniteError, ShapeError) as exc:
        raise type(exc)(path, exc.reason) from exc
    return tensor, duration
