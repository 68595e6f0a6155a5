"""ESC-50 (github.com/karolpiczak/ESC-50): 2,000 5-s clips, 50 classes, 5 folds of 400.

Layout (the ``ESC-50-master`` folder of the repository zip)::

    DIR/meta/esc50.csv   filename,fold,target,category,esc10,src_file,take
    DIR/audio/*.wav      {FOLD}-{CLIP_ID}-{TAKE}-{TARGET}.wav, 44.1 kHz mono

Classes are the categories in the CSV ordered by ``target`` (dog = 0 ... hand_saw = 49),
prompted with underscores as spaces ("sea waves"). ImageBind reports the mean over the 5
folds, which equals the accuracy over all 2,000 clips (equal folds).
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path

from bindsearch.bench.datasets.base import (
    ClassificationSet,
    check_data_dir,
    find_file,
    label_name,
    locate,
    read_csv,
)
from bindsearch.errors import DatasetError

COLUMNS = ("filename", "fold", "target", "category", "esc10", "src_file", "take")
FOLDS = (1, 2, 3, 4, 5)
_CSV_NAMES = ("meta/esc50.csv", "ESC-50-master/meta/esc50.csv", "esc50.csv")


def load_esc50(
    data_dir: Path,
    *,
    folds: Sequence[int] | None = None,
    captions: Path | None = None,
    media: Path | None = None,
) -> ClassificationSet:
    """ESC-50 under ``data_dir``, restricted to ``folds`` if given (e.g. ``[1]``, the
    paper's ablation setting). ``captions`` / ``media`` override the CSV and audio folder."""
    root = check_data_dir(data_dir)
    csv_path = find_file(root, _CSV_NAMES, "ESC-50 meta CSV (meta/esc50.csv)", captions)
    rows, encoding = read_csv(csv_path, COLUMNS)
    wanted = set(folds) if folds else set(FOLDS)
    unknown = sorted(wanted - set(FOLDS))
    if unknown:
        raise DatasetError(f"ESC-50 has folds 1-5, not {unknown}")
    categories: dict[int, str] = {}
    entries: list[tuple[str, int, int]] = []  # filename, target, fold
    for n, row in enumerate(rows, start=2):
        try:
            target, fold = int(row["target"]), int(row["fold"])
        except (TypeError, ValueError):
            raise DatasetError(f"{csv_path} line {n}: target and fold must be integers") from None
        if categories.setdefault(target, row["category"]) != row["category"]:
            raise DatasetError(f"{csv_path} line {n}: target {target} names two categories")
        if fold in wanted:
            entries.append((row["filename"], target, fold))
    order = sorted(categories)
    index_of = {t: i for i, t in enumerate(order)}
    folder = Path(os.path.abspath(media if media is not None else csv_path.parent.parent / "audio"))
    if not folder.is_dir():
        raise DatasetError(f"ESC-50 audio folder {folder} does not exist")
    files, missing = locate(folder, {name: name for name, _, _ in entries})
    return ClassificationSet(
        "esc50", folder, files, missing,
        {"meta_csv": str(csv_path), "meta_encoding": encoding, "folds": sorted(wanted),
         "clips_listed": len(entries), "classes": len(order)},
        class_names=[[label_name(categories[t])] for t in order],
        labels={name: (index_of[t],) for name, t, _ in entries},
        folds={name: fold for name, _, fold in entries},
        kind="audio",
    )  # fmt: skip


__all__ = ["FOLDS", "load_esc50"]
