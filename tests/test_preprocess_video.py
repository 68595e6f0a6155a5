"""Video preprocessing: clip/frame selection, crops, decoding edge cases, reference parity."""

from __future__ import annotations

from fractions import Fraction
from pathlib import Path

import av
import numpy as np
import pytest
import torch
from media_video import INDEX_PERIOD, frame_index_of, write_audio_only, write_video
from reference import import_reference, pinned_clip_sampler_class

from bindsearch.errors import ConfigError, DecodeError, EmptyInputError
from bindsearch.preprocess.common import CLIP_MEAN, CLIP_STD
from bindsearch.preprocess.video import (
    clip_windows,
    load_video,
    probe_video,
    select_frame_indices,
)
from bindsearch.preprocess.video_reader import VideoReader

# 3 s at 25 fps: windows start at 0, 1/4, 1/2, 3/4, 1 s; frames [ceil(25 s), ceil(25 (s + 2))).
EXPECTED_3S_25FPS = [[0, 49], [7, 56], [13, 62], [19, 68], [25, 74]]


@pytest.fixture(scope="module")
def media(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("video")


@pytest.fixture(scope="module")
def index_mp4(media: Path) -> Path:
    return write_video(media / "index.mp4", with_audio=True)


def to_pixels(x: torch.Tensor) -> torch.Tensor:
    """Undo CLIP normalisation of [N, 3, T, H, W]: back to the 0-255 range."""
    mean = torch.tensor(CLIP_MEAN).view(1, 3, 1, 1, 1)
    std = torch.tensor(CLIP_STD).view(1, 3, 1, 1, 1)
    return (x * std + mean) * 255


def chosen_indices(x: torch.Tensor) -> list[list[int]]:
    """Frame indices encoded in an "index" video's output, per clip (one crop per clip)."""
    px = to_pixels(x)[:, :, :, 100:124, 100:124]  # away from the marker in every crop
    return [
        [frame_index_of(px[n, :, t].numpy()) for t in range(px.shape[2])] for n in range(len(px))
    ]


def test_default_output_shape_and_values(index_mp4: Path) -> None:
    x = load_video(index_mp4)
    assert x.shape == (15, 3, 2, 224, 224)
    assert x.dtype == torch.float32
    assert torch.isfinite(x).all()
    assert chosen_indices(x[1::3]) == EXPECTED_3S_25FPS
    # Clip-major: the three crops of clip 0 show the same frames.
    assert chosen_indices(x[0:3]) == [EXPECTED_3S_25FPS[0]] * 3


def test_single_clip_centre_crop(index_mp4: Path) -> None:
    x = load_video(index_mp4, clips=1, crops=1)
    assert x.shape == (1, 3, 2, 224, 224)
    assert chosen_indices(x) == [[0, 49]]
    assert torch.equal(x[0], load_video(index_mp4, clips=5, crops=3)[1])


@pytest.mark.parametrize(
    ("suffix", "gop", "codec"),
    [
        ("mp4", 5, None),
        ("mp4", 1000, None),
        ("mov", 12, None),
        ("mkv", None, None),  # no frame count in the header: estimated from the duration
        ("mkv", 5, None),
        ("ts", 5, None),  # no keyframe index; bisection seeking
        ("avi", 5, None),  # B-frames in AVI: no usable timestamps, frames are counted instead
        ("webm", 5, "libvpx-vp9"),
    ],
)
def test_frame_selection_across_containers_and_gops(
    media: Path, suffix: str, gop: int | None, codec: str | None
) -> None:
    if codec is not None and codec not in av.codecs_available:
        pytest.skip(f"PyAV's FFmpeg lacks {codec}")
    path = write_video(media / f"gop{gop}.{suffix}", gop=gop, codec=codec)
    assert chosen_indices(load_video(path, crops=1)) == EXPECTED_3S_25FPS


def test_mpeg_ts_seeking_far_ahead(media: Path) -> None:
    """MPEG-TS seeks by bisection and may land past the keyframe; frames must still be right."""
    path = write_video(media / "long.ts", num_frames=300, fps=25, width=160, height=120, gop=25)
    x = load_video(path, clips=3, crops=1)
    expected = [[0, 49], [125, 174], [250, 299]]
    assert chosen_indices(x) == [[i % INDEX_PERIOD for i in pair] for pair in expected]


def test_forward_decoding_within_one_gop(media: Path) -> None:
    """A single-GOP file is decoded in one forward pass: no frame decoded twice."""
    path = write_video(media / "onegop.mp4", width=160, height=120, gop=1000)
    with VideoReader(path) as reader:
        reader.read_frames([i for pair in EXPECTED_3S_25FPS for i in pair])
        assert reader.seeks == 0  # the file opens at its first frame
        assert reader.frames_decoded <= 75


def test_seeking_skips_most_frames(media: Path) -> None:
    """With 10-frame GOPs only the GOPs holding wanted frames are decoded (not whole windows)."""
    path = write_video(media / "long.mp4", num_frames=300, fps=30, width=160, height=120, gop=10)
    with VideoReader(path) as reader:
        wanted = [0, 59, 60, 119, 120, 179, 180, 239, 240, 299]
        frames = reader.read_frames(wanted)
        assert sorted(frames) == wanted
        assert reader.frames_decoded <= len(wanted) * 10 + 10  # reference: 5 windows x 60
    x = load_video(path, crops=1, clips=5)
    expected = [[0, 59], [60, 119], [120, 179], [180, 239], [240, 299]]
    assert chosen_indices(x) == [[i % INDEX_PERIOD for i in pair] for pair in expected]


def test_video_shorter_than_a_clip(media: Path) -> None:
    path = write_video(media / "short.mp4", num_frames=30)  # 1.2 s
    x = load_video(path, crops=1)
    assert chosen_indices(x) == [[0, 29]] * 5


def test_landscape_crops_run_left_to_right(index_mp4: Path) -> None:
    px = to_pixels(load_video(index_mp4, clips=1))[:, :, 0]  # [3 crops, 3, 224, 224]
    corner = px[:, :, 2:14, 2:30].mean(dim=(1, 2, 3))  # where the white marker lands when visible
    assert corner[0] > 200  # left crop starts at x = 0
    assert corner[1] < 100 and corner[2] < 100


def test_portrait_crops_run_top_to_bottom(media: Path) -> None:
    path = write_video(media / "portrait.mp4", width=240, height=320)
    x = load_video(path, clips=2)
    assert x.shape == (6, 3, 2, 224, 224)
    px = to_pixels(x)[:3, :, 0]
    top_left = px[:, :, 2:14, 2:30].mean(dim=(1, 2, 3))
    assert top_left[0] > 200 and top_left[1] < 100 and top_left[2] < 100
    assert chosen_indices(x[1::3]) == [[0, 49], [25, 74]]


def test_rotation_metadata_is_applied(media: Path) -> None:
    path = write_video(media / "rotated.mp4", rotation_deg=90)
    info = probe_video(path)
    assert (info.width, info.height) == (320, 240)  # coded size
    px = to_pixels(load_video(path, clips=1))[:, :, 0]  # displayed 240 x 320: top/centre/bottom
    # 90 degrees counter-clockwise moves the top-left marker to the bottom-left corner.
    bottom_left = px[:, :, -14:-2, 2:14].mean(dim=(1, 2, 3))
    top_left = px[:, :, 2:14, 2:14].mean(dim=(1, 2, 3))
    assert bottom_left[2] > 200 and top_left[0] < 100


def test_variable_frame_rate_follows_time(media: Path) -> None:
    # 30 frames 40 ms apart, then 30 frames 80 ms apart.
    pts_ms = [40 * i for i in range(30)] + [1200 + 80 * i for i in range(30)]
    path = write_video(media / "vfr.mp4", num_frames=60, pts_ms=pts_ms)
    info = probe_video(path)
    got = chosen_indices(load_video(path, crops=1))
    times_s = np.array(pts_ms) / 1000
    for (start, end), frames in zip(clip_windows(info.duration_s, 5, 2.0), got, strict=True):
        wanted = select_frame_indices(info.fps, start, end, info.num_frames, 2)
        for index, frame in zip(wanted, frames, strict=True):
            # The first frame shown at or after index / fps (half a frame of leeway).
            expected = int(np.argmax(times_s >= index / info.fps - 0.5 / info.fps))
            assert frame == expected


def test_start_end_window(index_mp4: Path) -> None:
    x = load_video(index_mp4, clips=2, clip_seconds=0.8, crops=1, start_s=1.0, end_s=2.6)
    assert chosen_indices(x) == [[25, 44], [45, 64]]
    with pytest.raises(EmptyInputError, match="past the end"):
        load_video(index_mp4, start_s=3.5)


@pytest.mark.parametrize(
    "kwargs",
    [
        {"crops": 2},
        {"clips": 0},
        {"clip_seconds": 0},
        {"frames_per_clip": 0},
        {"start_s": -1},
        {"start_s": 2.0, "end_s": 1.0},
    ],
)
def test_invalid_knobs(index_mp4: Path, kwargs: dict) -> None:
    with pytest.raises(ConfigError):
        load_video(index_mp4, **kwargs)


def test_frames_per_clip_knob(index_mp4: Path) -> None:
    x = load_video(index_mp4, clips=1, crops=1, frames_per_clip=4)
    assert x.shape == (1, 3, 4, 224, 224)
    assert chosen_indices(x) == [[0, 16, 32, 49]]


def test_probe_video(index_mp4: Path, media: Path) -> None:
    info = probe_video(index_mp4)
    assert (info.duration_s, info.fps, info.width, info.height) == (3.0, 25.0, 320, 240)
    assert info.num_frames == 75 and info.num_frames_exact and info.has_audio
    mkv = probe_video(write_video(media / "probe.mkv", fps=Fraction(30000, 1001), num_frames=90))
    assert not mkv.num_frames_exact and not mkv.has_audio
    assert abs(mkv.fps - 29.97) < 0.01 and mkv.num_frames == 90


def test_odd_size_upscaled(media: Path) -> None:
    path = write_video(media / "small.mp4", width=250, height=180, pattern="texture")
    assert load_video(path, clips=2).shape == (6, 3, 2, 224, 224)


def truncate(src: Path, dst: Path, fraction: float) -> Path:
    data = src.read_bytes()
    dst.write_bytes(data[: int(len(data) * fraction)])
    return dst


def test_corrupt_and_truncated_files(media: Path, index_mp4: Path) -> None:
    garbage = media / "garbage.mp4"
    garbage.write_bytes(b"\x00\x00\x00\x18ftypmp42" + bytes(range(256)) * 40)
    mkv = write_video(media / "whole.mkv")
    for path in [
        garbage,
        truncate(index_mp4, media / "cut.mp4", 0.5),  # index (moov) at the end: gone
        truncate(mkv, media / "cut.mkv", 0.4),  # stream ends well before its declared length
        media / "missing.mp4",
    ]:
        with pytest.raises(DecodeError):
            load_video(path)


def test_empty_files(media: Path) -> None:
    empty = media / "empty.mp4"
    empty.write_bytes(b"")
    with pytest.raises(EmptyInputError):
        load_video(empty)

    no_streams = media / "nostreams.mp4"
    with av.open(str(no_streams), "w") as container:  # a video stream that never got a frame
        stream = container.add_stream("mpeg4", rate=25)
        stream.width, stream.height = 64, 64
        container.start_encoding()
    with pytest.raises(EmptyInputError):
        load_video(no_streams)


@pytest.mark.parametrize("name", ["tone.m4a", "tone.wav"])
def test_audio_only_file_is_not_video(media: Path, name: str) -> None:
    path = write_audio_only(media / name)
    with pytest.raises(DecodeError, match="no video stream"):
        load_video(path)
    with pytest.raises(DecodeError, match="no video stream"):
        probe_video(path)


# --- parity with the reference loader ---------------------------------------------------------


@pytest.fixture(scope="module")
def reference_video_loader():
    """The reference ``load_and_transform_video_data``, runnable on this stack.

    Two patches, both undone afterwards: ``EncodedVideo.from_path`` drops the ``sample_rate``
    argument PyPI pytorchvideo 0.1.5 rejects (upstream issue #102), and the clip sampler is the
    one of the pytorchvideo commit upstream ImageBind pins (windows reach the end of the video).
    """
    pytest.importorskip("decord", reason="the reference video loader decodes with decord")
    reference = import_reference()
    from pytorchvideo.data.encoded_video import EncodedVideo

    from_path = EncodedVideo.__dict__["from_path"]

    def from_path_without_sample_rate(cls, file_path, **kwargs):
        kwargs.pop("sample_rate", None)
        return from_path.__func__(cls, file_path, **kwargs)

    mp = pytest.MonkeyPatch()
    mp.setattr(EncodedVideo, "from_path", classmethod(from_path_without_sample_rate))
    mp.setattr(reference, "ConstantClipsPerVideoSampler", pinned_clip_sampler_class())
    yield lambda path: reference.load_and_transform_video_data([str(path)], "cpu")[0]
    mp.undo()


#: Decord and PyAV run the same H.264 decoder; only RGB conversion could differ (different
#: FFmpeg builds). Observed: bit-identical (max 0). Allowed: ~2 grey levels at the smallest
#: CLIP std (2 / 255 / 0.261 = 0.030), and a small mean.
PARITY_MAX_ABS = 0.035
PARITY_MEAN_ABS = 0.002


@pytest.mark.slow
@pytest.mark.parametrize(
    "spec",
    [
        {"name": "land.mp4", "expected": EXPECTED_3S_25FPS},
        {"name": "portrait.mp4", "width": 240, "height": 320, "expected": EXPECTED_3S_25FPS},
        {
            "name": "ntsc.mp4",  # 100 frames at 29.97 fps, upscaled from 250 x 180
            "width": 250,
            "height": 180,
            "num_frames": 100,
            "fps": Fraction(30000, 1001),
            "expected": [[0, 59], [11, 69], [21, 79], [31, 89], [41, 99]],
        },
        {"name": "short.mkv", "num_frames": 30, "gop": 5, "expected": [[0, 29]] * 5},
    ],
    ids=lambda s: s["name"],
)
def test_parity_with_reference(media: Path, reference_video_loader, spec: dict) -> None:
    kwargs = {k: v for k, v in spec.items() if k not in ("name", "expected")}
    path = write_video(media / f"parity_{spec['name']}", pattern="texture", **kwargs)
    ours, ref = load_video(path), reference_video_loader(path)
    assert ours.shape == ref.shape
    expected = [[i % INDEX_PERIOD for i in pair] for pair in spec["expected"] for _ in range(3)]
    assert chosen_indices(ours) == chosen_indices(ref) == expected  # every clip and crop
    diff = (ours - ref).abs()
    assert diff.max().item() <= PARITY_MAX_ABS
    assert diff.mean().item() <= PARITY_MEAN_ABS
