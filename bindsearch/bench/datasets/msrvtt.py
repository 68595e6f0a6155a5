"""MSR-VTT 1k-A (the JSFusion test split): 1,000 videos, one caption each.

The split is CLIP4Clip's ``MSRVTT_JSFUSION_test.csv`` (from its ``msrvtt_data.zip``), columns
``key,vid_key,video_id,sentence`` (``ret0,msr9770,video9770,a person is ...``). Videos are
``{video_id}.mp4``, usually from the Frozen-in-Time ``MSRVTT.zip`` (``videos/all/``). Some
MSR-VTT videos have no sound track; the runner's A / A+V policy handles them.
"""

from __future__ import annotations

from pathlib import Path

from bindsearch.bench.datasets.base import (
    Query,
    RetrievalSet,
    check_data_dir,
    find_file,
    locate,
    pick_media_dir,
    read_csv,
)
from bindsearch.errors import DatasetError

COLUMNS = ("key", "vid_key", "video_id", "sentence")
_CSV_NAMES = (
    "MSRVTT_JSFUSION_test.csv",
    "msrvtt_data/MSRVTT_JSFUSION_test.csv",
    "data/MSRVTT_JSFUSION_test.csv",
)
_MEDIA_DIRS = (
    "videos/all",
    "MSRVTT/videos/all",
    "videos",
    "MSRVTT_Videos",
    "TestVideo",
)
VIDEO_EXTENSION = ".mp4"


def load_msrvtt(
    data_dir: Path, *, captions: Path | None = None, media: Path | None = None
) -> RetrievalSet:
    """The 1k-A test split under ``data_dir`` (``captions`` / ``media`` override the CSV and
    the video folder)."""
    root = check_data_dir(data_dir)
    csv_path = find_file(root, _CSV_NAMES, "MSR-VTT 1k-A CSV (MSRVTT_JSFUSION_test.csv)", captions)
    rows, encoding = read_csv(csv_path, COLUMNS)
    names: dict[str, str] = {}
    queries: list[Query] = []
    for n, row in enumerate(rows, start=2):
        video_id, sentence = (row["video_id"] or "").strip(), row["sentence"] or ""
        if not video_id or not sentence.strip():
            raise DatasetError(f"{csv_path} line {n}: empty video_id or sentence")
        names.setdefault(video_id, video_id + VIDEO_EXTENSION)
        queries.append(Query(sentence, video_id))
    folder = pick_media_dir(root, _MEDIA_DIRS, list(names.values()), media)
    files, missing = locate(folder, names)
    details = {
        "split": "1k-A (JSFusion)",
        "captions_csv": str(csv_path),
        "captions_encoding": encoding,
        "videos_listed": len(names),
        "captions_listed": len(queries),
    }
    return RetrievalSet("msrvtt", folder, files, missing, details, queries=queries, kind="video")


__all__ = ["load_msrvtt"]
