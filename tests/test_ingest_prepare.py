"""The decode stage on its own: ``prepare_file`` for audio (windowed decoding) and images."""

from __future__ import annotations

import os
from pathlib import Path

import media
import numpy as np
import torch

from bindsearch.ingest.prepare import FileJob, prepare_file
from bindsearch.preprocess import InputKind
from bindsearch.preprocess.audio import decode_audio, waveform_to_clips
from bindsearch.preprocess.image import load_image


def _job(path: Path, kind: InputKind, **kwargs) -> FileJob:
    stat = os.stat(path)
    return FileJob(str(path), kind, stat.st_size, stat.st_mtime, **kwargs)


def test_audio_rows_match_the_whole_file_path(tmp_path: Path) -> None:
    path = media.write_soundfile(tmp_path / "a.flac", media.tone(9.0, 44100, 2), 44100, "PCM_16")
    waveform, rate = decode_audio(path)
    for audio_clips, count in [(None, 3), (0, 5), (4, 4)]:
        prepared = prepare_file(_job(path, InputKind.AUDIO, audio_clips=audio_clips))
        assert not prepared.failures
        (item,) = prepared.items
        expected = waveform_to_clips(waveform, rate, clips=count).numpy()
        assert np.array_equal(item.clips, expected)
        assert item.duration_s == waveform.shape[1] / rate


def test_audio_segments_still_decode_the_whole_file(tmp_path: Path) -> None:
    path = media.write_soundfile(tmp_path / "a.wav", media.tone(5.0, 16000, 1), 16000, "PCM_16")
    prepared = prepare_file(_job(path, InputKind.AUDIO, segment_s=2.0))
    assert [(i.start_s, i.end_s) for i in prepared.items] == [
        (None, None), (0.0, 2.0), (2.0, 4.0), (4.0, 5.0)
    ]  # fmt: skip


def test_image_exact_flag_reaches_the_loader(tmp_path: Path) -> None:
    path = media.write_image(tmp_path / "photo.jpg", 1920, 1080, quality=90)
    exact = prepare_file(_job(path, InputKind.IMAGE, exact_images=True)).items[0]
    fast = prepare_file(_job(path, InputKind.IMAGE, exact_images=False)).items[0]
    assert (exact.width, exact.height) == (fast.width, fast.height) == (1920, 1080)
    assert torch.equal(torch.from_numpy(exact.clips[0]), load_image(path, exact=True))
    assert torch.equal(torch.from_numpy(fast.clips[0]), load_image(path, exact=False))
    assert not np.array_equal(exact.clips, fast.clips)
