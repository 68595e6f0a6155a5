"""Audio preprocessing: decoding many formats, clip features, failures, reference parity."""

from __future__ import annotations

import math
from pathlib import Path

import media
import numpy as np
import pytest
import soundfile
import torch
from reference import import_reference, patch_reference_audio

from bindsearch.errors import (
    ConfigError,
    DecodeError,
    EmptyInputError,
    NonFiniteError,
    ShapeError,
)
from bindsearch.preprocess.audio import (
    FBANK_MEAN,
    FBANK_STD,
    decode_audio,
    load_audio,
    load_audio_with_duration,
    probe_audio,
    waveform_to_clips,
)
from bindsearch.preprocess.audio_reader import open_sample_reader
from bindsearch.preprocess.common import clip_windows

PAD_VALUE = (0.0 - FBANK_MEAN) / FBANK_STD  # a zero-padded frame after normalisation
CLIPS_SHAPE = (3, 1, 128, 204)


@pytest.mark.parametrize(
    ("name", "seconds", "rate_hz", "channels", "subtype"),
    [
        ("mono16k.wav", 1.5, 16000, 1, "PCM_16"),
        ("stereo44k.wav", 2.61, 44100, 2, "PCM_16"),
        ("stereo48k.wav", 1.2, 48000, 2, "PCM_24"),
        ("float.wav", 0.7, 22050, 1, "FLOAT"),
        ("stereo.flac", 1.3, 44100, 2, "PCM_16"),
        ("vorbis.ogg", 1.1, 32000, 2, "VORBIS"),
    ],
)
def test_soundfile_formats(tmp_path: Path, name, seconds, rate_hz, channels, subtype) -> None:
    source = media.tone(seconds, rate_hz, channels)
    path = media.write_soundfile(tmp_path / name, source, rate_hz, subtype)
    waveform, sample_rate_hz = decode_audio(path)
    assert waveform.dtype == np.float32 and sample_rate_hz == rate_hz
    assert waveform.shape == source.shape
    if subtype == "VORBIS":  # lossy: compare the signal, not samples
        assert np.corrcoef(waveform.ravel(), source.ravel())[0, 1] > 0.95
    else:
        tolerance = {"PCM_16": 1 / 32768, "PCM_24": 1e-6, "FLOAT": 0.0}[subtype]
        assert np.abs(waveform - source).max() <= tolerance + 1e-7
    info = probe_audio(path)
    assert (info.sample_rate_hz, info.channels) == (rate_hz, channels)
    assert info.duration_s == pytest.approx(seconds, abs=1e-3)
    assert load_audio(path).shape == CLIPS_SHAPE


@pytest.mark.parametrize(
    ("name", "codec", "rate_hz", "channels"),
    [
        ("lame.mp3", "libmp3lame", 44100, 2),
        ("aac.m4a", "aac", 48000, 1),
        ("voice.opus", "libopus", 48000, 2),
    ],
)
def test_compressed_formats_via_pyav(tmp_path: Path, name, codec, rate_hz, channels) -> None:
    source = media.tone(1.5, rate_hz, channels)
    path = media.write_pyav_audio(tmp_path / name, source, rate_hz, codec)
    waveform, sample_rate_hz = decode_audio(path)
    assert sample_rate_hz == rate_hz and waveform.shape[0] == channels
    assert abs(waveform.shape[1] - source.shape[1]) < 0.05 * rate_hz  # codec delay/padding
    rms = float(np.sqrt((waveform**2).mean()))
    assert rms == pytest.approx(float(np.sqrt((source**2).mean())), rel=0.15)
    assert probe_audio(path).duration_s == pytest.approx(1.5, abs=0.05)
    clips = load_audio(path)
    assert clips.shape == CLIPS_SHAPE and torch.isfinite(clips).all()


def test_pyav_pcm_decode_matches_soundfile(tmp_path: Path) -> None:
    """Same 16-bit samples through PyAV (Matroska) and soundfile (WAV): identical floats."""
    samples = media.pcm16_tone(1.0, 44100, 2)  # int16 [2, N]
    mka = media.write_pyav_audio(tmp_path / "pcm.mka", samples, 44100, "pcm_s16le")
    wav = media.write_soundfile(tmp_path / "pcm.wav", samples, 44100, "PCM_16")
    via_pyav, _ = decode_audio(mka)
    via_soundfile, _ = decode_audio(wav)
    assert np.array_equal(via_pyav, via_soundfile)
    assert np.array_equal(via_soundfile, samples.astype(np.float32) / 32768)


def test_video_soundtrack_and_silent_video(tmp_path: Path) -> None:
    video = media.write_small_video(tmp_path / "clip.mp4", media.tone(1.5, 44100, 2), 44100)
    waveform, sample_rate_hz = decode_audio(video)
    assert sample_rate_hz == 44100 and waveform.shape[0] == 2
    assert load_audio(video).shape == CLIPS_SHAPE
    silent = media.write_small_video(tmp_path / "silent.mp4")
    with pytest.raises(DecodeError, match="no audio stream"):
        decode_audio(silent)


def test_parity_with_reference_loader(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    data = import_reference()
    patch_reference_audio(monkeypatch, data)
    cases = [  # (seconds, rate, channels, suffix): resampling, channel 0, overlapping clips
        (2.0, 16000, 1, "wav"),
        (2.61, 44100, 2, "wav"),
        (5.0, 44100, 1, "wav"),
        (1.0, 48000, 2, "flac"),
        (7.3, 22050, 2, "flac"),
        (12.5, 48000, 2, "flac"),  # decoded only around the windows
        (0.3, 44100, 2, "wav"),  # shorter than a clip
    ]
    for seed, (seconds, rate_hz, channels, suffix) in enumerate(cases):
        source = media.tone(seconds, rate_hz, channels, seed=seed)
        path = media.write_soundfile(tmp_path / f"case{seed}.{suffix}", source, rate_hz)
        expected = data.load_and_transform_audio_data([str(path)], "cpu")[0]
        actual = load_audio(path)
        assert actual.shape == expected.shape == CLIPS_SHAPE
        assert torch.allclose(actual, expected, atol=1e-4, rtol=0), (seconds, rate_hz, channels)


def test_exactly_two_seconds_gives_three_equal_clips() -> None:
    clips = waveform_to_clips(media.tone(2.0, 16000), 16000)
    # Not bit-equal: each window re-subtracts the (float-rounding) mean of the shifted samples.
    assert torch.allclose(clips[0], clips[1], atol=1e-4)
    assert torch.allclose(clips[0], clips[2], atol=1e-4)
    assert torch.allclose(clips[0, 0, :, 198:], torch.full((128, 6), PAD_VALUE))  # 198 frames
    assert not torch.allclose(clips[0, 0, :, 197], torch.full((128,), PAD_VALUE))


def test_clip_windows_follow_the_pinned_sampler() -> None:
    assert clip_windows(1.5, 3, 2.0) == [(0, 2)] * 3
    assert clip_windows(7.0, 1, 2.0) == [(0, 2)]
    windows = clip_windows(41760 / 16000, 3, 2.0)  # 2.61 s: the last window ends at the end
    # 2.61 - 2 is 0.6099999999999999 in floats; the reference's indices keep that rounding.
    assert [(int(a * 16000), int(b * 16000)) for a, b in windows] == [
        (0, 32000),
        (4879, 36879),
        (9759, 41759),
    ]


def test_overlapping_windows_share_the_in_place_mean_removal() -> None:
    waveform = media.tone(2.61, 16000)  # [1, 41760]
    clips = waveform_to_clips(waveform, 16000)
    shared = torch.from_numpy(waveform.copy())
    spans = [(int(a * 16000), int(b * 16000)) for a, b in clip_windows(2.61, 3, 2.0)]
    for begin, end in spans:  # what the reference does to its shared waveform, in order
        shared[:, begin:end] -= shared[:, begin:end].mean()
    begin, end = spans[2]
    alone = waveform_to_clips(shared[:, begin:end], 16000, clips=1)[0]
    assert torch.allclose(clips[2], alone, atol=1e-4)
    untouched = waveform_to_clips(waveform[:, begin:end], 16000, clips=1)[0]
    assert not torch.allclose(clips[2], untouched, atol=1e-3)


def test_clip_shorter_than_one_frame_is_padded(tmp_path: Path) -> None:
    path = media.write_soundfile(tmp_path / "blip.wav", media.tone(0.01, 16000), 16000)
    clips = load_audio(path)  # 160 samples: the reference's fbank would fail here
    assert clips.shape == CLIPS_SHAPE and torch.isfinite(clips).all()
    assert torch.allclose(clips[:, :, :, 1:], torch.full((3, 1, 128, 203), PAD_VALUE))
    assert not torch.allclose(clips[0, 0, :, 0], torch.full((128,), PAD_VALUE))


def test_channel_mix_options() -> None:
    stereo = media.tone(2.3, 44100, 2)
    first = waveform_to_clips(stereo, 44100)
    mean = waveform_to_clips(stereo, 44100, channel_mix="mean")
    mono_mix = waveform_to_clips(stereo.mean(axis=0), 44100)
    assert torch.equal(mean, mono_mix)
    assert not torch.allclose(first, mean, atol=1e-2)
    with pytest.raises(ConfigError):
        waveform_to_clips(stereo, 44100, channel_mix="left")  # type: ignore[arg-type]


def test_caller_waveform_is_not_modified() -> None:
    waveform = media.tone(2.61, 16000, 2)
    before = waveform.copy()
    waveform_to_clips(waveform, 16000)
    waveform_to_clips(torch.from_numpy(waveform), 16000)
    assert np.array_equal(waveform, before)


def test_windows_decode_only_the_segment(tmp_path: Path) -> None:
    samples = media.pcm16_tone(6.0, 16000, 2)
    wav = media.write_soundfile(tmp_path / "long.wav", samples, 16000)
    mka = media.write_pyav_audio(tmp_path / "long.mka", samples, 16000, "pcm_s16le")
    full, _ = decode_audio(wav)
    for path in (wav, mka):
        window, _ = decode_audio(path, start_s=1.5, end_s=4.0)
        assert np.array_equal(window, full[:, 24000:64000])
        tail, _ = decode_audio(path, start_s=5.0, end_s=60.0)
        assert np.array_equal(tail, full[:, 80000:])
    segment = load_audio(wav, start_s=1.5, end_s=4.0)
    assert torch.equal(segment, waveform_to_clips(full[:, 24000:64000], 16000))
    with pytest.raises(EmptyInputError):
        decode_audio(wav, start_s=7.0)
    with pytest.raises(ConfigError):
        decode_audio(wav, start_s=3.0, end_s=2.0)


def test_nan_samples_are_rejected(tmp_path: Path) -> None:
    source = media.tone(0.5, 16000)
    source[0, 100] = np.nan
    path = media.write_soundfile(tmp_path / "nan.wav", source, 16000, "FLOAT")
    with pytest.raises(NonFiniteError):
        decode_audio(path)
    with pytest.raises(NonFiniteError):
        waveform_to_clips(source, 16000)


def test_zero_sample_file_is_empty_input(tmp_path: Path) -> None:
    path = tmp_path / "zero.wav"
    soundfile.write(str(path), np.zeros((0, 1), dtype=np.float32), 16000)
    with pytest.raises(EmptyInputError):
        load_audio(path)


@pytest.mark.parametrize(
    "name", ["empty.wav", "empty.mp3", "garbage.wav", "garbage.flac", "garbage.m4a"]
)
def test_unreadable_files_are_decode_errors(tmp_path: Path, name: str) -> None:
    path = tmp_path / name
    rng = np.random.default_rng(1)
    path.write_bytes(b"" if name.startswith("empty") else rng.bytes(4096))
    with pytest.raises(DecodeError) as info:
        load_audio(path)
    assert info.value.path == str(path)


def test_missing_file_is_a_decode_error(tmp_path: Path) -> None:
    with pytest.raises(DecodeError):
        decode_audio(tmp_path / "absent.wav")
    with pytest.raises(DecodeError):
        probe_audio(tmp_path / "absent.mp3")


@pytest.mark.parametrize(
    ("waveform", "error"),
    [
        (np.zeros((2, 3, 100), np.float32), ShapeError),
        (np.zeros((1, 0), np.float32), EmptyInputError),
        (np.full((1, 800), np.inf, np.float32), NonFiniteError),
    ],
)
def test_bad_waveforms(waveform: np.ndarray, error: type[Exception]) -> None:
    with pytest.raises(error):
        waveform_to_clips(waveform, 16000)


@pytest.mark.parametrize(
    "kwargs", [{"clips": 0}, {"clip_seconds": 0.0}], ids=["no-clips", "zero-length"]
)
def test_bad_knobs(kwargs: dict) -> None:
    with pytest.raises(ConfigError):
        waveform_to_clips(media.tone(1.0, 16000), 16000, **kwargs)
    with pytest.raises(ConfigError):
        waveform_to_clips(media.tone(1.0, 16000), 0)


# --------------------------------------------------------------------------- windowed decoding


@pytest.mark.parametrize("rate_hz", [8000, 16000, 22050, 44100, 48000])
@pytest.mark.parametrize("seconds", [0.01, 0.4, 2.0, 2.03, 9.7])
@pytest.mark.parametrize(("suffix", "subtype"), [("wav", "PCM_16"), ("flac", "PCM_24")])
def test_windowed_decode_equals_whole_file_path(
    tmp_path: Path, rate_hz: int, seconds: float, suffix: str, subtype: str
) -> None:
    """Decoding only the clip windows gives exactly the whole-file result, for short files
    (shorter than one frame, than a clip), exactly one clip and long files, at several rates."""
    path = media.write_soundfile(
        tmp_path / f"a.{suffix}", media.tone(seconds, rate_hz, 2, seed=rate_hz), rate_hz, subtype
    )
    reader = open_sample_reader(path)
    assert reader is not None
    reader.close()
    waveform, sample_rate_hz = decode_audio(path)
    for mix in ("first", "mean"):
        windowed, duration = load_audio_with_duration(path, channel_mix=mix)
        assert torch.equal(windowed, waveform_to_clips(waveform, sample_rate_hz, channel_mix=mix))
        assert duration == waveform.shape[1] / sample_rate_hz


def test_windowed_decode_with_clip_count_from_duration(tmp_path: Path) -> None:
    path = media.write_soundfile(tmp_path / "long.flac", media.tone(9.3, 44100, 1), 44100, "PCM_16")
    clips, duration = load_audio_with_duration(path, clips=lambda s: math.ceil(s / 2))
    assert clips.shape == (5, 1, 128, 204) and duration == pytest.approx(9.3, abs=1e-4)
    waveform, rate = decode_audio(path)
    assert torch.equal(clips, waveform_to_clips(waveform, rate, clips=5))


def test_sample_reader_reads_the_decoded_samples(tmp_path: Path) -> None:
    path = media.write_soundfile(tmp_path / "s.flac", media.pcm16_tone(3.0, 48000, 2), 48000)
    waveform, _ = decode_audio(path)
    with open_sample_reader(path) as reader:
        assert (reader.frames, reader.channels, reader.sample_rate_hz) == (144000, 2, 48000)
        for begin, end in [(0, 10), (47999, 96001), (143990, 150000), (-5, 3), (200000, 200010)]:
            expected = waveform[:, max(begin, 0) : max(min(end, 144000), max(begin, 0))]
            assert np.array_equal(reader.read(begin, end), expected)


@pytest.mark.parametrize(
    ("name", "subtype"),
    [("float.wav", "FLOAT"), ("vorbis.ogg", "VORBIS"), ("empty.wav", "PCM_16")],
)
def test_formats_without_exact_seek_use_the_whole_file(tmp_path: Path, name, subtype) -> None:
    seconds = 0.0 if name.startswith("empty") else 3.0
    path = media.write_soundfile(tmp_path / name, media.tone(seconds, 32000, 1), 32000, subtype)
    assert open_sample_reader(path) is None
    if seconds:
        waveform, rate = decode_audio(path)
        assert torch.equal(load_audio(path), waveform_to_clips(waveform, rate))
    else:
        with pytest.raises(EmptyInputError):
            load_audio(path)
    mp3 = media.write_pyav_audio(tmp_path / "x.mp3", media.tone(1.0, 44100, 1), 44100, "libmp3lame")
    assert open_sample_reader(mp3) is None
