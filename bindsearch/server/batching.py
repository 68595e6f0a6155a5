"""Micro-batching of query encodes: concurrent requests share forward passes.

Each tower has a queue of preprocessed inputs and one worker task. The worker takes the first
waiting input, then everything else already queued, and, while other requests' inputs of the
tower are still being decoded, waits at most ``max_wait_ms`` for them (up to ``max_items``
in all); it runs the batch through ``Encoder.embed_tensor`` in a thread
(``asyncio.to_thread``, so the event loop keeps serving) and resolves each request's future with
its row. Towers run independently: a text query never waits for an audio batch. There is no
lock around requests: under load the queue fills while a batch runs, and the next batch takes
everything queued at once, so throughput grows with concurrency instead of serialising.

Inputs of one tower may differ in shape (an image ``[3,224,224]`` and a video
``[15,3,2,224,224]`` both feed the vision tower; a text file is ``[S,77]``); a batch is split
into groups of equal shape, each stacked into one ``[B, ...]`` tensor.
"""

from __future__ import annotations

import asyncio
import logging
from collections import defaultdict
from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np
import torch
from torch import Tensor

from bindsearch.encode import Encoder
from bindsearch.modality import Modality
from bindsearch.server.config import BatchConfig

logger = logging.getLogger(__name__)

_Pending = tuple[Tensor, "asyncio.Future[np.ndarray]"]


@dataclass
class BatchStats:
    """Forward passes run and items encoded, per tower (for ``/stats`` and benchmarks)."""

    passes: dict[str, int] = field(default_factory=lambda: defaultdict(int))
    items: dict[str, int] = field(default_factory=lambda: defaultdict(int))
    largest: dict[str, int] = field(default_factory=lambda: defaultdict(int))

    def record(self, modality: Modality, size: int) -> None:
        """Count one forward pass of ``size`` items."""
        self.passes[modality.value] += 1
        self.items[modality.value] += size
        self.largest[modality.value] = max(self.largest[modality.value], size)

    def to_dict(self) -> dict[str, dict[str, int]]:
        """JSON-ready dict."""
        return {"passes": dict(self.passes), "items": dict(self.items),
                "largest": dict(self.largest)}  # fmt: skip


class MicroBatcher:
    """Encodes single query inputs, batching concurrent ones per tower (see module docstring).

    Its queues and workers are made on first use, in the event loop that uses it; call
    :meth:`close` on shutdown.
    """

    def __init__(self, encoder: Encoder, config: BatchConfig) -> None:
        self.encoder = encoder
        self.config = config
        self.stats = BatchStats()
        self._queues: dict[Modality, asyncio.Queue[_Pending]] = {}
        self._workers: list[asyncio.Task[None]] = []
        self._loaded: set[Modality] = set()
        self._load_locks: dict[Modality, asyncio.Lock] = defaultdict(asyncio.Lock)
        #: Inputs of each tower being decoded, about to be queued.
        self._coming: dict[Modality, int] = defaultdict(int)

    async def embed(self, modality: Modality, prepare: Callable[[], Tensor]) -> np.ndarray:
        """The unit vector ``[D]`` of one input; ``prepare()`` (run in a thread) decodes it into
        its per-item model layout. While inputs are being prepared, a forming batch waits for
        them (up to ``max_wait_ms``)."""
        await self.load_tower(modality)
        self._coming[modality] += 1
        try:
            item = await asyncio.to_thread(prepare)
        finally:
            self._coming[modality] -= 1
        if not self.config.enabled:
            self.stats.record(modality, 1)
            rows = await asyncio.to_thread(self.encoder.embed_tensor, modality, item[None])
            return rows[0]
        future: asyncio.Future[np.ndarray] = asyncio.get_running_loop().create_future()
        self._queue(modality).put_nowait((item, future))
        return await future

    async def load_tower(self, modality: Modality) -> None:
        """Load ``modality``'s tower once, in a thread; concurrent callers wait for that load."""
        if modality in self._loaded:
            return
        async with self._load_locks[modality]:
            if modality not in self._loaded:
                await asyncio.to_thread(self.encoder.tower, modality)
                self._loaded.add(modality)

    def _queue(self, modality: Modality) -> asyncio.Queue[_Pending]:
        queue = self._queues.get(modality)
        if queue is None:
            queue = self._queues[modality] = asyncio.Queue()
            task = asyncio.create_task(self._work(modality, queue), name=f"batcher-{modality}")
            self._workers.append(task)
        return queue

    async def _work(self, modality: Modality, queue: asyncio.Queue[_Pending]) -> None:
        while True:
            batch = await self._collect(modality, queue)
            groups: dict[tuple, list[_Pending]] = defaultdict(list)
            for pending in batch:
                tensor = pending[0]
                groups[(tuple(tensor.shape), tensor.dtype)].append(pending)
            for group in groups.values():
                await self._run(modality, group)

    async def _collect(self, modality: Modality, queue: asyncio.Queue[_Pending]) -> list[_Pending]:
        """The first queued input, everything queued behind it, and what arrives in time.

        It waits only while other inputs of the tower are being decoded: with none coming,
        waiting would only add latency, and under load the queue fills while a batch runs.
        """
        batch = [await queue.get()]
        loop = asyncio.get_running_loop()
        deadline = loop.time() + self.config.max_wait_ms / 1000
        while len(batch) < self.config.max_items:
            if not queue.empty():
                batch.append(queue.get_nowait())
                continue
            if self._coming[modality] == 0:
                break
            remaining = deadline - loop.time()
            if remaining <= 0:
                break
            try:
                batch.append(await asyncio.wait_for(queue.get(), remaining))
            except asyncio.TimeoutError:
                break
        return batch

    async def _run(self, modality: Modality, group: list[_Pending]) -> None:
        live = [(t, f) for t, f in group if not f.done()]  # a client that left cancels its own
        if not live:
            return
        self.stats.record(modality, len(live))
        try:
            stacked = torch.stack([t for t, _ in live])
            rows = await asyncio.to_thread(self.encoder.embed_tensor, modality, stacked)
        except Exception as exc:  # delivered to every waiting request, never swallowed
            for _, future in live:
                if not future.done():
                    future.set_exception(exc)
            return
        for (_, future), row in zip(live, rows, strict=True):
            if not future.done():
                future.set_result(row)

    async def close(self) -> None:
        """Stop the workers and fail requests still queued."""
        for task in self._workers:
            task.cancel()
        await asyncio.gather(*self._workers, return_exceptions=True)
        for queue in self._queues.values():
            while not queue.empty():
                _, future = queue.get_nowait()
                if not future.done():
                    future.set_exception(RuntimeError("the server is shutting down"))
