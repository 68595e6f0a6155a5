"""Clotho v2.1 evaluation split (1,045 clips x 5 captions), as distributed on Zenodo.

Layout (record 4783391; the evaluation split is byte-identical in v1, v2 and v2.1)::

    DIR/clotho_captions_evaluation.csv   file_name,caption_1,...,caption_5 (one row per clip)
    DIR/clotho_metadata_evaluation.csv   optional; ISO-8859-1
    DIR/evaluation/*.wav                 from clotho_audio_evaluation.7z

Captions are read as UTF-8 (a BOM dropped) with a Latin-1 fallback, the metadata file the
same way; captions are kept verbatim (the tokenizer cleans whitespace), duplicates included.
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

SPLIT = "evaluation"
CAPTION_COLUMNS = tuple(f"caption_{i}" for i in range(1, 6))
METADATA_COLUMNS = (
    "file_name",
    "keywords",
    "sound_id",
    "sound_link",
    "start_end_samples",
    "manufacturer",
    "license",
)
_MEDIA_DIRS = (SPLIT, f"clotho_audio_{SPLIT}", f"audio/{SPLIT}", "audio")


def load_clotho(
    data_dir: Path, *, captions: Path | None = None, media: Path | None = None
) -> RetrievalSet:
    """The evaluation split under ``data_dir``: every caption its own query.

    ``captions`` / ``media`` override the captions CSV and the audio folder.
    """
    root = check_data_dir(data_dir)
    csv_path = find_file(root, [f"clotho_captions_{SPLIT}.csv"], "Clotho captions CSV", captions)
    rows, encoding = read_csv(csv_path, ("file_name", *CAPTION_COLUMNS))
    names: dict[str, str] = {}
    queries: list[Query] = []
    for row in rows:
        name = row["file_name"]
        if not name:
            continue
        if name in names:
            raise DatasetError(f"{csv_path}: file {name!r} is listed twice")
        names[name] = name
        queries.extend(Query(row[c] or "", name) for c in CAPTION_COLUMNS)
    empty = sum(1 for q in queries if not q.text.strip())
    if empty:
        raise DatasetError(f"{csv_path}: {empty} empty caption(s); is this a captions CSV?")
    folder = pick_media_dir(root, _MEDIA_DIRS, list(names), media)
    files, missing = locate(folder, names)
    details = {
        "split": SPLIT,
        "captions_csv": str(csv_path),
        "captions_encoding": encoding,
        "clips_listed": len(names),
        "captions_listed": len(queries),
    }
    details.update(_metadata_facts(root))
    return RetrievalSet("clotho", folder, files, missing, details, queries=queries, kind="audio")


def _metadata_facts(root: Path) -> dict[str, object]:
    """Row count and encoding of the optional metadata CSV (not needed for retrieval)."""
    path = root / f"clotho_metadata_{SPLIT}.csv"
    if not path.is_file():
        return {}
    rows, encoding = read_csv(path, METADATA_COLUMNS)
    return {"metadata_csv": str(path), "metadata_encoding": encoding, "metadata_rows": len(rows)}


__all__ = ["load_clotho"]
