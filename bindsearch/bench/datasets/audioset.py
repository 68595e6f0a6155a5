"""AudioSet eval (527 classes, multi-label, macro mAP) and VGGSound test (309 classes, top-1).

Neither distributes audio; downloaded files are found with a file-name template as for
AudioCaps (fields ``youtube_id``, ``start_time``, ``start``, ``end``).

* AudioSet: ``eval_segments.csv`` (3 ``#`` comment lines, then
  ``YTID, start_seconds, end_seconds, "mid,mid"`` with ``", "`` separators) and
  ``class_labels_indices.csv`` (``index,mid,display_name``). Prompts use the display names.
* VGGSound: ``vggsound.csv`` without a header, ``youtube_id,start_seconds,label,split``;
  the ``test`` rows; classes are the test labels in sorted order. Files are usually
  ``{youtube_id}_{start:06.0f}.mp4``; only their sound is embedded.
"""

from __future__ import annotations

import csv
import io
from pathlib import Path

from bindsearch.bench.datasets.audiocaps import Segment, format_name, media_layout
from bindsearch.bench.datasets.base import (
    ClassificationSet,
    check_data_dir,
    find_file,
    locate,
    read_csv,
    read_text,
)
from bindsearch.errors import DatasetError

_AUDIOSET_STEMS = ("Y{youtube_id}_{start:.3f}_{end:.3f}", "Y{youtube_id}", "{youtube_id}",
                   "{youtube_id}_{start:.0f}")  # fmt: skip
_AUDIOSET_DIRS = ("eval_segments", "audio/eval_segments", "audio/eval", "eval", "audio")
_VGGSOUND_STEMS = ("{youtube_id}_{start:06.0f}", "{youtube_id}_{start:.0f}", "{youtube_id}")
_VGGSOUND_DIRS = ("video", "test", "audio", "vggsound")


def _rows(path: Path) -> list[list[str]]:
    """CSV rows without ``#`` comment lines, fields stripped (``", "`` separators)."""
    text, _ = read_text(path)
    body = "\n".join(line for line in text.splitlines() if not line.lstrip().startswith("#"))
    return [[f.strip() for f in row] for row in csv.reader(io.StringIO(body), skipinitialspace=True)
            if row]  # fmt: skip


def load_audioset(
    data_dir: Path,
    *,
    captions: Path | None = None,
    media: Path | None = None,
    name_template: str | None = None,
) -> ClassificationSet:
    """AudioSet eval under ``data_dir`` (``captions`` overrides ``eval_segments.csv``)."""
    root = check_data_dir(data_dir)
    seg_path = find_file(root, ["eval_segments.csv"], "AudioSet eval_segments.csv", captions)
    cls_path = find_file(root, ["class_labels_indices.csv"], "class_labels_indices.csv", None)
    classes, _ = read_csv(cls_path, ("index", "mid", "display_name"))
    column = {row["mid"]: n for n, row in enumerate(classes)}
    segments: dict[str, Segment] = {}
    labels: dict[str, tuple[int, ...]] = {}
    for n, row in enumerate(_rows(seg_path), start=1):
        if len(row) < 4:
            raise DatasetError(f"{seg_path} row {n}: expected YTID, start, end, labels")
        seg = Segment(row[0], row[1], end_time=row[2])
        segments[seg.key] = seg
        labels[seg.key] = tuple(sorted({column[m] for m in row[3].split(",") if m in column}))
    folder, template = media_layout(
        root, list(segments.values()), media, name_template, stems=_AUDIOSET_STEMS,
        dirs=_AUDIOSET_DIRS,
    )  # fmt: skip
    files, missing = locate(folder, {k: format_name(template, s) for k, s in segments.items()})
    return ClassificationSet(
        "audioset", folder, files, missing,
        {"segments_csv": str(seg_path), "classes_csv": str(cls_path), "name_template": template,
         "clips_listed": len(segments), "classes": len(classes)},
        class_names=[[row["display_name"]] for row in classes],
        labels=labels, multi_label=True, kind="audio",
    )  # fmt: skip


def load_vggsound(
    data_dir: Path,
    *,
    captions: Path | None = None,
    media: Path | None = None,
    name_template: str | None = None,
) -> ClassificationSet:
    """VGGSound test under ``data_dir`` (``captions`` overrides ``vggsound.csv``)."""
    root = check_data_dir(data_dir)
    csv_path = find_file(root, ["vggsound.csv", "data/vggsound.csv"], "vggsound.csv", captions)
    entries: list[tuple[Segment, str]] = []
    for n, row in enumerate(_rows(csv_path), start=1):
        if len(row) < 4:
            raise DatasetError(f"{csv_path} row {n}: expected youtube_id, start, label, split")
        if row[3] == "test":
            entries.append((Segment(row[0], row[1]), row[2]))
    if not entries:
        raise DatasetError(f"{csv_path} has no test rows")
    names = sorted({label for _, label in entries})
    index_of = {name: i for i, name in enumerate(names)}
    segments = {seg.key: seg for seg, _ in entries}
    folder, template = media_layout(
        root, list(segments.values()), media, name_template, stems=_VGGSOUND_STEMS,
        dirs=_VGGSOUND_DIRS,
    )  # fmt: skip
    files, missing = locate(folder, {k: format_name(template, s) for k, s in segments.items()})
    return ClassificationSet(
        "vggsound", folder, files, missing,
        {"csv": str(csv_path), "name_template": template, "clips_listed": len(segments),
         "classes": len(names)},
        class_names=[[name] for name in names],
        labels={seg.key: (index_of[label],) for seg, label in entries}, kind="audio",
    )  # fmt: skip


__all__ = ["load_audioset", "load_vggsound"]
