"""Loaders for the evaluation sets as distributed: one module per dataset.

Each returns a :class:`~bindsearch.bench.datasets.base.RetrievalSet` or
:class:`~bindsearch.bench.datasets.base.ClassificationSet`: parsed annotations plus the media
files found on disk and the names of those that are missing. Loaders never decode media.
"""

from __future__ import annotations

from bindsearch.bench.datasets.audiocaps import load_audiocaps
from bindsearch.bench.datasets.audioset import load_audioset, load_vggsound
from bindsearch.bench.datasets.base import ClassificationSet, MediaSet, Query, RetrievalSet
from bindsearch.bench.datasets.clotho import load_clotho
from bindsearch.bench.datasets.esc50 import load_esc50
from bindsearch.bench.datasets.folders import load_class_folders
from bindsearch.bench.datasets.msrvtt import load_msrvtt

__all__ = [
    "ClassificationSet",
    "MediaSet",
    "Query",
    "RetrievalSet",
    "load_audiocaps",
    "load_audioset",
    "load_class_folders",
    "load_clotho",
    "load_esc50",
    "load_msrvtt",
    "load_vggsound",
]
