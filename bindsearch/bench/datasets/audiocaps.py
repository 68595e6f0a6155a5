"""AudioCaps test split (975 clips x 5 captions; ImageBind used the 796-clip ARNLQ subset).

Captions come from github.com/cdjkim/audiocaps, ``dataset/test.csv`` (v1, what 2023 papers
used) or ``dataset2.0/test.csv`` (same clips and ids, re-worded captions); both have the
columns ``audiocap_id,youtube_id,start_time,caption``, one caption per row. Audio is not
distributed: it was downloaded from YouTube, and on-disk names vary, so the file name is a
template (``str.format`` with ``youtube_id``, ``start_time`` as written in the CSV,
``start``/``end`` as floats (end = start + 10 s) and ``audiocap_id`` of the clip's first
row). Without one, the common layouts are tried and the one that finds most files is used.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from bindsearch.bench.datasets.base import (
    Query,
    RetrievalSet,
    check_data_dir,
    existing,
    find_file,
    locate,
    pick_media_dir,
    read_csv,
    read_text,
)
from bindsearch.errors import DatasetError

COLUMNS = ("audiocap_id", "youtube_id", "start_time", "caption")
SEGMENT_SECONDS = 10.0
#: File-name stems tried without ``--name-template`` (each with every extension below).
TEMPLATE_STEMS = (
    "{youtube_id}",
    "Y{youtube_id}",
    "Y{youtube_id}_{start:.3f}_{end:.3f}",
    "{youtube_id}_{start_time}",
    "{youtube_id}_{start:.0f}",
    "{audiocap_id}",
)
EXTENSIONS = (".wav", ".flac", ".mp3", ".m4a", ".ogg", ".opus", ".mp4", ".mkv", ".webm")
_CSV_NAMES = ("test.csv", "dataset/test.csv", "dataset2.0/test.csv")
_MEDIA_DIRS = ("audio/test", "audio", "test", "wav/test", "waveforms/test", "waveforms")


@dataclass(frozen=True)
class Segment:
    """One YouTube segment (a clip) with the fields a file-name template may use."""

    youtube_id: str
    start_time: str
    audiocap_id: str = ""
    end_time: str | None = None  # AudioSet CSVs give it; AudioCaps segments are 10 s

    @property
    def key(self) -> str:
        """Identity of the clip in this loader."""
        return f"{self.youtube_id}@{self.start_time}"

    def fields(self) -> dict[str, object]:
        """Template fields."""
        start = float(self.start_time)
        end = float(self.end_time) if self.end_time else start + SEGMENT_SECONDS
        return {
            "youtube_id": self.youtube_id, "start_time": self.start_time, "start": start,
            "end": end, "audiocap_id": self.audiocap_id,
        }  # fmt: skip


def load_audiocaps(
    data_dir: Path,
    *,
    captions: Path | None = None,
    media: Path | None = None,
    name_template: str | None = None,
    subset: Path | None = None,
) -> RetrievalSet:
    """The test split under ``data_dir``; ``subset`` is a list of clips to keep (the ARNLQ
    ``final_filtered_test_list.txt``: one YouTube id, AudioSet-style name or file name per
    line). ``captions`` / ``media`` override the CSV and the audio folder."""
    root = check_data_dir(data_dir)
    csv_path = find_file(root, _CSV_NAMES, "AudioCaps test CSV", captions)
    rows, encoding = read_csv(csv_path, COLUMNS)
    segments, queries = _parse_rows(rows, csv_path)
    details: dict[str, object] = {
        "captions_csv": str(csv_path),
        "captions_encoding": encoding,
        "clips_listed": len(segments),
        "captions_listed": len(queries),
    }
    if subset is not None:
        segments, facts = _apply_subset(segments, subset)
        queries = [q for q in queries if q.key in segments]
        details.update(facts)
    folder, template = media_layout(root, list(segments.values()), media, name_template)
    names = {key: format_name(template, seg) for key, seg in segments.items()}
    files, missing = locate(folder, names)
    details["name_template"] = template
    return RetrievalSet("audiocaps", folder, files, missing, details, queries=queries, kind="audio")


def _parse_rows(rows: list[dict[str, str]], path: Path) -> tuple[dict[str, Segment], list[Query]]:
    segments: dict[str, Segment] = {}
    queries: list[Query] = []
    for n, row in enumerate(rows, start=2):
        ytid, start = (row["youtube_id"] or "").strip(), (row["start_time"] or "").strip()
        try:
            float(start)
        except ValueError:
            raise DatasetError(f"{path} line {n}: start_time {start!r} is not a number") from None
        if not ytid or not (row["caption"] or "").strip():
            raise DatasetError(f"{path} line {n}: empty youtube_id or caption")
        seg = Segment(ytid, start, (row["audiocap_id"] or "").strip())
        segments.setdefault(seg.key, seg)
        queries.append(Query(row["caption"], seg.key))
    return segments, queries


def format_name(template: str, segment: Segment) -> str:
    try:
        return template.format(**segment.fields())
    except (KeyError, IndexError, ValueError) as exc:
        raise DatasetError(
            f"bad file-name template {template!r} ({exc}); fields: youtube_id, start_time, "
            "start, end, audiocap_id, e.g. 'Y{youtube_id}_{start:.3f}_{end:.3f}.wav'"
        ) from None


def media_layout(
    root: Path,
    segments: list[Segment],
    media: Path | None,
    template: str | None,
    *,
    stems: Sequence[str] = TEMPLATE_STEMS,
    dirs: Sequence[str] = _MEDIA_DIRS,
) -> tuple[Path, str]:
    """The media folder and file-name template: as given, else the candidate folder (``dirs``
    under ``root``, or ``root``) and template (``stems`` x :data:`EXTENSIONS`) that find most
    of a sample of the clips' files."""
    sample = segments[:200]
    folders = [pick_media_dir(root, (), [], media)] if media is not None else [
        root / c for c in dirs if (root / c).is_dir()
    ] or [root]  # fmt: skip
    templates = [template] if template else [s + e for s in stems for e in EXTENSIONS]
    best, best_count = (folders[0], templates[0]), -1
    for folder in folders:
        for candidate in templates:
            count = sum(existing(folder, format_name(candidate, s)) is not None for s in sample)
            if count > best_count:
                best, best_count = (folder, candidate), count
    return best


def _subset_keys(line: str, by_id: dict[str, list[str]], by_cap: dict[str, list[str]]) -> list[str]:
    """Clips a subset-list line names: a YouTube id, ``Y`` + id, an AudioSet-style
    ``Y{id}_{start}_{end}`` or ``{id}_{start}`` name (with or without a file extension), or
    an audiocap_id. YouTube ids may contain ``_``, so every split point is tried."""
    stem = Path(line).name
    if Path(stem).suffix.lower() in EXTENSIONS:
        stem = stem.rsplit(".", 1)[0]
    heads = [stem, stem[1:] if stem.startswith("Y") else ""]
    for i, ch in enumerate(stem):
        if ch == "_":
            heads += [stem[:i], stem[1:i] if stem.startswith("Y") else ""]
    for head in heads:
        if head in by_id:
            return by_id[head]
    return by_cap.get(stem, [])


def _apply_subset(
    segments: dict[str, Segment], subset: Path
) -> tuple[dict[str, Segment], dict[str, object]]:
    text, _ = read_text(subset)
    lines = [line.strip() for line in text.splitlines() if line.strip()]
    by_id: dict[str, list[str]] = {}
    by_cap: dict[str, list[str]] = {}
    for key, seg in segments.items():
        by_id.setdefault(seg.youtube_id, []).append(key)
        by_cap.setdefault(seg.audiocap_id, []).append(key)
    keep: set[str] = set()
    unmatched: list[str] = []
    for line in lines:
        keys = _subset_keys(line, by_id, by_cap)
        keep.update(keys)
        if not keys:
            unmatched.append(line)
    if not keep:
        raise DatasetError(
            f"no line of the subset list {subset} names a clip of the captions CSV "
            f"(first lines: {', '.join(lines[:3])})"
        )
    kept = {k: s for k, s in segments.items() if k in keep}
    facts = {
        "subset_list": str(subset),
        "subset_lines": len(lines),
        "subset_unmatched": len(unmatched),
        "subset_unmatched_first": unmatched[:5],
        "clips_in_subset": len(kept),
    }
    return kept, facts


__all__ = [
    "COLUMNS",
    "EXTENSIONS",
    "TEMPLATE_STEMS",
    "Segment",
    "format_name",
    "load_audiocaps",
    "media_layout",
]
