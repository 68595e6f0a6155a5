"""Encode stage: gather prepared items per tower into large batches, average their clips."""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np
import torch

from bindsearch.encode import Encoder
from bindsearch.modality import Modality
from bindsearch.preprocess import InputKind


def tower_of(row_modality: str) -> Modality:
    """The model tower that embeds a row of ``row_modality`` (image/video -> vision)."""
    return InputKind.parse(row_modality).modality


@dataclass
class _Pending:
    owner: object
    slot: int
    clips: np.ndarray  # [S, *item_layout]


@dataclass
class EncodeBatcher:
    """Per-tower queues; a queue is encoded when it holds ``batch_clips`` clips.

    ``deliver(owner, slot, vector)`` receives each item's unit vector (the mean of its clips'
    unit vectors, re-normalised) as soon as its batch is encoded.
    """

    encoder: Encoder
    batch_clips: Callable[[Modality], int]
    deliver: Callable[[object, int, np.ndarray], None]
    seconds: float = 0.0
    _queues: dict[Modality, list[_Pending]] = field(default_factory=dict)
    _counts: dict[Modality, int] = field(default_factory=dict)

    def add(self, owner: object, slot: int, modality: str, clips: np.ndarray) -> None:
        """Queue one item; encodes its tower's queue when full."""
        tower = tower_of(modality)
        self._queues.setdefault(tower, []).append(_Pending(owner, slot, clips))
        self._counts[tower] = self._counts.get(tower, 0) + clips.shape[0]
        if self._counts[tower] >= self.batch_clips(tower):
            self.flush(tower)

    def flush(self, tower: Modality | None = None) -> None:
        """Encode one tower's queue (or all queues)."""
        towers = [tower] if tower is not None else list(self._queues)
        for t in towers:
            pending = self._queues.pop(t, [])
            self._counts[t] = 0
            if pending:
                self._encode(t, pending)

    def _encode(self, tower: Modality, pending: list[_Pending]) -> None:
        started = time.perf_counter()
        stacked = torch.from_numpy(np.concatenate([p.clips for p in pending]))
        vectors = self.encoder.embed_tensor(tower, stacked)  # [sum S, D] unit rows
        self.seconds += time.perf_counter() - started
        offset = 0
        for p in pending:
            count = p.clips.shape[0]
            mean = vectors[offset : offset + count].mean(axis=0)
            offset += count
            norm = max(float(np.linalg.norm(mean)), 1e-12)
            self.deliver(p.owner, p.slot, (mean / norm).astype(np.float32))
