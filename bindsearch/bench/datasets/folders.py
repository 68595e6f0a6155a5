"""Folder-per-class sets for the paper's depth and thermal benchmarks: NYU-D, SUN-D, LLVIP.

ImageBind evaluated preprocessed versions of these sets (in-filled depth converted to
disparity; LLVIP pedestrian crops plus random background crops of the same size) that were
never published, so they are read in a plain layout the user prepares::

    DIR/<class name>/<files>   depth: 16-bit PNG in millimetres or .npy in metres;
                               thermal: grayscale images

Class names are the folder names with ``_`` as spaces. A class with several names scores as
the max cosine over them: NYU-D "other"/"others" over ImageBind's 18 sub-class names, LLVIP
"person" over [person, man, woman, people] and "background" over [street, road, car, light,
tree] (the aggregation is not stated for LLVIP; max as for NYU-D).
"""

from __future__ import annotations

import os
from pathlib import Path

from bindsearch.bench.datasets.base import ClassificationSet, check_data_dir, label_name
from bindsearch.errors import DatasetError

NYU_OTHER = (
    "basement", "cafe", "computer lab", "conference room", "dinette", "exercise room",
    "foyer", "furniture store", "home storage", "indoor balcony", "laundry room",
    "office kitchen", "playroom", "printer room", "reception room", "student lounge",
    "study", "study room",
)  # fmt: skip
LLVIP_NAMES = {
    "person": ("person", "man", "woman", "people"),
    "background": ("street", "road", "car", "light", "tree"),
}
#: Per benchmark: the ingest kind and the extra names of some classes.
PRESETS: dict[str, tuple[str, dict[str, tuple[str, ...]]]] = {
    "nyud": ("depth", {"other": NYU_OTHER, "others": NYU_OTHER}),
    "sund": ("depth", {}),
    "llvip": ("thermal", LLVIP_NAMES),
}
EXTENSIONS = (".png", ".npy", ".jpg", ".jpeg", ".tif", ".tiff", ".bmp")


def load_class_folders(
    name: str, data_dir: Path, *, media: Path | None = None
) -> ClassificationSet:
    """The set ``name`` (``nyud``, ``sund`` or ``llvip``) under ``data_dir`` (or ``media``)."""
    if name not in PRESETS:
        raise DatasetError(f"unknown folder benchmark {name!r}; use one of {', '.join(PRESETS)}")
    kind, synonyms = PRESETS[name]
    root = check_data_dir(media if media is not None else data_dir)
    classes = sorted(p for p in root.iterdir() if p.is_dir() and not p.name.startswith("."))
    if len(classes) < 2:
        raise DatasetError(
            f"{root} needs one folder per class (at least two), found {len(classes)}"
        )
    files: dict[str, Path] = {}
    labels: dict[str, tuple[int, ...]] = {}
    class_names: list[list[str]] = []
    for c, folder in enumerate(classes):
        label = label_name(folder.name)
        class_names.append(list(synonyms.get(label.lower(), (label,))))
        for path in sorted(folder.rglob("*")):
            if path.is_file() and path.suffix.lower() in EXTENSIONS:
                key = str(path.relative_to(root))
                files[key] = Path(os.path.abspath(path))
                labels[key] = (c,)
    if not files:
        raise DatasetError(f"no {kind} files ({', '.join(EXTENSIONS)}) under {root}")
    return ClassificationSet(
        name, root, files, [], {"classes": len(classes), "files_listed": len(files)},
        class_names=class_names, labels=labels, kind=kind,
    )  # fmt: skip


__all__ = ["LLVIP_NAMES", "NYU_OTHER", "PRESETS", "load_class_folders"]
