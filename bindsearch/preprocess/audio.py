"""Audio -> audio-tower input ``float32 [clips, 1, 128, 204]`` (log-mel filterbanks).

The reference transform (spec section 3.3), reproduced step for step:

1. Resample to 16 kHz with ``torchaudio.functional.resample`` defaults (all channels).
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

import logging
from collections.abc import Sequence
from pathlib import Path
from typing import Literal

import numpy as np
import torch
import torch.nn.functional as F
import torchaudio

from bindsearch.errors import ConfigError, EmptyInputError, NonFiniteError, ShapeError
from bindsearch.preprocess.audio_reader import AudioInfo, decode_audio, probe_audio
from bindsearch.preprocess.common import clip_windows

logger = logging.getLogger(__name__)

__all__ = [
    "AudioInfo",
    "ChannelMix",
    "decode_audio",
    "load_audio",
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
_CHANNEL_MIXES: Sequence[str] = ("first", "mean")


def _private_waveform(waveform: np.ndarray | torch.Tensor, channel_mix: ChannelMix) -> torch.Tensor:
    """A float32 ``[C, N]`` copy of the caller's waveform (``[N]`` is taken as mono)."""
    if isinstance(waveform, torch.Tensor):
        wave = waveform.detach().to("cpu", torch.float32, copy=True)
    else:
        wave = torch.from_numpy(np.array(waveform, dtype=np.float32))  # np.array copies
    if wave.ndim == 1:
        wave = wave.unsqueeze(0)
    if wave.ndim != 2:
        raise ShapeError(
            None, f"waveform must be [channels, samples] or [samples], got {tuple(wave.shape)}"
        )
    if wave.shape[0] == 0 or wave.shape[1] == 0:
        raise EmptyInputError(None, f"waveform has no samples (shape {tuple(wave.shape)})")
    if not torch.isfinite(wave).all():
        raise NonFiniteError(None, "waveform contains NaN or infinite samples")
    if channel_mix == "mean":
        return wave.mean(dim=0, keepdim=True)  # [1, N]
    return wave


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
    wave = _private_waveform(waveform, channel_mix)  # [C, N]
    if sample_rate_hz != TARGET_SAMPLE_RATE_HZ:
        wave = torchaudio.functional.resample(wave, int(sample_rate_hz), TARGET_SAMPLE_RATE_HZ)
    windows = clip_windows(wave.shape[1] / TARGET_SAMPLE_RATE_HZ, clips, clip_seconds)
    fbanks = torch.empty(clips, 1, NUM_MEL_BINS, TARGET_FRAMES)  # [clips, 1, 128, 204]
    for k, (start_s, end_s) in enumerate(windows):  # in order: each step mutates `wave`
        begin, end = int(start_s * TARGET_SAMPLE_RATE_HZ), int(end_s * TARGET_SAMPLE_RATE_HZ)
        fbanks[k, 0] = _clip_to_fbank(wave[:, begin:end])
    mean = torch.as_tensor(FBANK_MEAN, dtype=torch.float32)
    std = torch.as_tensor(FBANK_STD, dtype=torch.float32)
    return (fbanks - mean) / std


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
    waveform, sample_rate_hz = decode_audio(path, start_s=start_s, end_s=end_s)  # [C, N]
    try:
        return waveform_to_clips(
            waveform,
            sample_rate_hz,
            clips=clips,
            clip_seconds=clip_seconds,
            channel_mix=channel_mix,
        )
    except (EmptyInputError, NonFiniteError, ShapeError) as exc:
        raise type(exc)(path, exc.reason) from exc
