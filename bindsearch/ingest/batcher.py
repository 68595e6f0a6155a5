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
    """Queues per tower and input shape; a queue is encoded when it holds ``batch_clips`` clips.

    Images ``[1,3,224,224]`` and video clips ``[15,3,2,224,224]`` share the vision tower but
    not a batch, so queues are keyed by ``(tower, per-clip shape)``.

    ``deliver(owner, slot, vector)`` receives each item's unit vector (the mean of its clips'
    unit vectors, re-normalised) as soon as its batch is encoded.
    """

    encoder: Encoder
    batch_clips: Callable[[Modality], int]
    deliver: Callable[[object, int, np.ndarray], None]
    seconds: float = 0.0
    _queues: dict[tuple[Modality, tuple[int, ...]], list[_Pending]] = field(default_factory=dict)
    _counts: dict[tuple[Modality, tuple[int, ...]], int] = field(default_factory=dict)

    def add(self, owner: object, slot: int, modality: str, clips: np.ndarray) -> None:
        """Queue one item; encodes its queue when full."""
        key = (tower_of(modality), tuple(clips.shape[1:]))
        self._queues.setdefault(key, []).append(_Pending(owner, slot, clips))
        self._counts[key] = self._counts.get(key, 0) + clips.shape[0]
        if self._counts[key] >= self.batch_clips(key[0]):
            self._flush_queue(key)

    def flush(self) -> None:
        """Encode every queue."""
        for key in list(self._queues):
            self._flush_queue(key)

    def _flush_queue(self, key: tuple[Modality, tuple[int, ...]]) -> None:
        pending = self._queues.pop(key, [])
        self._counts[key] = 0
        if pending:
            self._encode(key[0], pending)

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
