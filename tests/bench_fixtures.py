"""Tiny benchmark datasets in each dataset's exact distributed format, generated at test time.

Each builder writes the annotation files byte for byte as distributed (CSV quoting, encodings,
headers) plus a few short media files, and returns what the tests need to know about them:
awkward file names (spaces, commas, quotes, non-ASCII, a leading ``-``), a listed file that is
missing, stereo 48 kHz audio, a video without a sound track.
"""

from __future__ import annotations

import csv
import io
from dataclasses import dataclass, field
from pathlib import Path

from media import tone, write_small_video, write_soundfile
from media_video import write_video

CLOTHO_HEADER = ["file_name", "caption_1", "caption_2", "caption_3", "caption_4", "caption_5"]
CLOTHO_META_HEADER = ["file_name", "keywords", "sound_id", "sound_link", "start_end_samples",
                      "manufacturer", "license"]  # fmt: skip


@dataclass
class Fixture:
    """A generated dataset: its folder, the media present (key -> path) and what is missing."""

    root: Path
    present: dict[str, Path]
    missing: list[str]
    captions: list[tuple[str, str]] = field(default_factory=list)  # (key, caption), in order
    extra: dict[str, object] = field(default_factory=dict)


def _csv_text(header: list[str] | None, rows: list[list[str]]) -> str:
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\n")
    if header:
        writer.writerow(header)
    writer.writerows(rows)
    return out.getvalue()


def build_clotho(root: Path) -> Fixture:
    """``clotho_captions_evaluation.csv`` (UTF-8) + latin-1 metadata + ``evaluation/*.wav``
    (44.1 kHz mono, 1.5 / 3 / 5 / 9 s); the fifth listed file is missing."""
    root.mkdir(parents=True, exist_ok=True)
    audio = root / "evaluation"
    audio.mkdir()
    clips = [
        ("Rain on roof é.wav", 1.5, ["Rain falls on a tin roof, steadily.", 'A "heavy" downpour',
                                     "water drips", "rain and wind", "a storm outside"]),
        ("Birds, morning (2).wav", 3.0, ["birds chirp at dawn", "many birds singing",
                                         "A dog barks twice.", "birdsong, loud", "chirping"]),
        ("it's a door.wav", 5.0, ["a door creaks open", "A dog barks twice.", "wood creaking",
                                  "someone opens a door", "hinges squeak"]),
        ("engine_idle-01.wav", 9.0, ["an engine idles", "a motor runs", "a car engine hums",
                                     "machinery rumbles", "idling truck"]),
        ("missing file.wav", 2.0, ["silence", "nothing", "quiet room", "empty", "no sound"]),
    ]  # fmt: skip
    present: dict[str, Path] = {}
    captions: list[tuple[str, str]] = []
    for n, (name, seconds, texts) in enumerate(clips):
        captions += [(name, t) for t in texts]
        if name == "missing file.wav":
            continue
        present[name] = write_soundfile(audio / name, tone(seconds, 44100, seed=n), 44100)
    rows = [[name, *texts] for name, _, texts in clips]
    (root / "clotho_captions_evaluation.csv").write_text(
        _csv_text(CLOTHO_HEADER, rows), encoding="utf-8"
    )
    meta = [[name, "rain;roof", "Not found" if n == 0 else str(1000 + n),
             "https://freesound.org/x", "[0, 1]", "Jos\u00e9", "CC-BY"]
            for n, (name, _, _) in enumerate(clips)]  # fmt: skip
    (root / "clotho_metadata_evaluation.csv").write_bytes(
        _csv_text(CLOTHO_META_HEADER, meta).encode("latin-1")
    )
    return Fixture(root, present, ["missing file.wav"], captions)


AUDIOCAPS_CLIPS = [  # audiocap_id base, youtube_id, start_time, seconds, channels, rate
    (100, "-abc123XYZ_", 30, 2.0, 1, 44100),
    (200, "q_w-e1R2t3Y", 0, 1.5, 2, 48000),
    (300, "ZZtop000001", 120, 3.0, 1, 16000),
    (400, "gone0000000", 10, 2.0, 1, 44100),  # listed, never downloaded
]


def audiocaps_captions(ytid: str) -> list[str]:
    """Five captions per clip; the first two clips share "A woman speaking"."""
    shared = ["A woman speaking"] if ytid in ("-abc123XYZ_", "q_w-e1R2t3Y") else ["Wind blows"]
    return shared + [f"{ytid} sound, number {i}" for i in range(1, 5)]


def build_audiocaps(root: Path) -> Fixture:
    """``dataset/test.csv`` (v1), ``dataset2.0/test.csv`` (lowercased captions), AudioSet-style
    ``audio/test/Y{id}_{start:.3f}_{end:.3f}.wav`` (one stereo 48 kHz), one clip missing, and
    an ARNLQ-style ``final_filtered_test_list.txt`` naming two clips."""
    audio = root / "audio" / "test"
    audio.mkdir(parents=True)
    rows, rows2 = [], []
    present: dict[str, Path] = {}
    captions: list[tuple[str, str]] = []
    for n, (cap, ytid, start, seconds, channels, rate) in enumerate(AUDIOCAPS_CLIPS):
        for i, text in enumerate(audiocaps_captions(ytid)):
            rows.append([str(cap + i), ytid, str(start), text])
            rows2.append([str(cap + i), ytid, str(start), text.lower()])
            captions.append((ytid, text))
        if ytid == "gone0000000":
            continue
        name = f"Y{ytid}_{start:.3f}_{start + 10:.3f}.wav"
        present[ytid] = write_soundfile(audio / name, tone(seconds, rate, channels, seed=n), rate)
    header = ["audiocap_id", "youtube_id", "start_time", "caption"]
    for folder, body in (("dataset", rows), ("dataset2.0", rows2)):
        (root / folder).mkdir()
        (root / folder / "test.csv").write_text(_csv_text(header, body), encoding="utf-8")
    subset = root / "final_filtered_test_list.txt"
    subset.write_text("-abc123XYZ_\nYZZtop000001_120.000_130.000.wav\nnot-a-clip\n")
    return Fixture(root, present, ["Ygone0000000_10.000_20.000.wav"], captions,
                   {"subset": subset})  # fmt: skip


MSRVTT_ROWS = [  # key, vid_key, video_id, sentence, (frames, has audio) or None if missing
    ("ret0", "msr7010", "video7010", "a man is cooking, slowly", (6, True)),
    ("ret1", "msr7011", "video7011", 'a "silent" film plays', (14, False)),
    ("ret2", "msr7012", "video7012", "a cat jumps on a table", (12, True)),
    ("ret3", "msr7013", "video7013", "people dance at a party", None),
]


def build_msrvtt(root: Path) -> Fixture:
    """``MSRVTT_JSFUSION_test.csv`` + ``videos/all/videoNNNN.mp4`` (64 x 48, about 1 s): one
    without a sound track, one listed but missing."""
    videos = root / "videos" / "all"
    videos.mkdir(parents=True)
    present: dict[str, Path] = {}
    for n, (_, _, vid, _, spec) in enumerate(MSRVTT_ROWS):
        if spec is None:
            continue
        frames, has_audio = spec
        path = videos / f"{vid}.mp4"
        if has_audio:
            write_small_video(path, tone(frames / 10, 44100, seed=10 + n), 44100, frames=frames)
        else:
            write_video(path, num_frames=frames, width=64, height=48, fps=10, with_audio=False)
        present[vid] = path
    rows = [[k, vk, vid, text] for k, vk, vid, text, _ in MSRVTT_ROWS]
    (root / "MSRVTT_JSFUSION_test.csv").write_text(
        _csv_text(["key", "vid_key", "video_id", "sentence"], rows), encoding="utf-8"
    )
    captions = [(vid, text) for _, _, vid, text, _ in MSRVTT_ROWS]
    return Fixture(root, present, ["video7013.mp4"], captions)


ESC50_CLASSES = {0: "dog", 11: "sea_waves", 49: "hand_saw"}


def build_esc50(root: Path) -> Fixture:
    """``ESC-50-master/meta/esc50.csv`` + ``audio/*.wav`` (1 s, 44.1 kHz mono): folds 1-5 x 2
    clips over dog / sea_waves / hand_saw."""
    base = root / "ESC-50-master"
    (base / "meta").mkdir(parents=True)
    (base / "audio").mkdir()
    targets = list(ESC50_CLASSES)
    rows, present, labels = [], {}, {}
    for n in range(10):
        fold, target = n // 2 + 1, targets[n % 3]
        src, take = 100032 + n, "AB"[n % 2]
        name = f"{fold}-{src}-{take}-{target}.wav"
        rows.append([name, str(fold), str(target), ESC50_CLASSES[target],
                     str(target == 0), str(src), take])  # fmt: skip
        present[name] = write_soundfile(base / "audio" / name, tone(1.0, 44100, seed=20 + n), 44100)
        labels[name] = (fold, target)
    header = ["filename", "fold", "target", "category", "esc10", "src_file", "take"]
    (base / "meta" / "esc50.csv").write_text(_csv_text(header, rows), encoding="utf-8")
    return Fixture(base, present, [], extra={"labels": labels})
