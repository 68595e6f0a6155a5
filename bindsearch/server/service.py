"""What the routes call: API requests -> library calls on the served index.

One :class:`SearchService` per process holds the one encoder (shared by every request and by
ingest jobs), the micro-batcher, the job runner and the current :class:`~bindsearch.index.Index`
handle. Searches read the handle they started with; an ingest job swaps in a fresh one
(``connect``) after each commit and at the end, so later searches see the new rows.
"""

from __future__ import annotations

import asyncio
import dataclasses
import logging
import os
import time
from pathlib import Path

import numpy as np

import bindsearch
from bindsearch.encode import Encoder, to_model_input
from bindsearch.errors import ConfigError, InputError, ModelMismatchError, StoreError
from bindsearch.index import Index, connect
from bindsearch.indexes import index_info
from bindsearch.ingest.pipeline import IngestOptions, run_ingest
from bindsearch.ingest.report import IngestReport
from bindsearch.modality import Modality
from bindsearch.preprocess import InputKind
from bindsearch.query import Item, QueryPart, Vector
from bindsearch.query.classify import classify_vector
from bindsearch.query.execute import Hit, query_vector
from bindsearch.server.batching import MicroBatcher
from bindsearch.server.config import ServerConfig
from bindsearch.server.jobs import Job, JobManager
from bindsearch.server.schemas import (
    ClassifyRequest,
    IngestRequest,
    ItemPart,
    Part,
    SearchRequest,
    TextPart,
    UploadPart,
    VectorPart,
)
from bindsearch.server.security import MediaSigner, confine_path
from bindsearch.server.uploads import Upload, check_size, kind_of_upload
from bindsearch.store import Store
from bindsearch.store.queries import rows_by_ids

logger = logging.getLogger(__name__)

#: Item metadata returned by ``GET /items/{id}`` (the search layer's hit columns).
_ITEM_FIELDS = ("id", "path", "modality", "start_s", "end_s", "duration_s", "width", "height",
                "text")  # fmt: skip


class SearchService:
    """The served index, its encoder, batcher and jobs. Build with :func:`create_service`."""

    def __init__(self, config: ServerConfig, index: Index, encoder: Encoder) -> None:
        self.config = config
        self.encoder = encoder
        self.batcher = MicroBatcher(encoder, config.batch)
        self.jobs = JobManager(config.max_jobs_kept)
        self.signer = MediaSigner(config.media_link_seconds)
        self.ingest_roots = tuple(Path(os.path.abspath(r)) for r in config.ingest_roots)
        self._index = index

    @property
    def index(self) -> Index:
        """The current index handle (replaced whole by :meth:`reload`)."""
        return self._index

    def reload(self) -> None:
        """Open the index afresh so that searches see rows committed since."""
        config = self.config
        self._index = connect(config.index_dir, self.encoder.model_name, config.weights,
                              device=config.device, dtype=config.dtype, create=False)  # fmt: skip
        logger.info("reloaded index %s", self._index.directory)

    async def close(self) -> None:
        """Stop the batcher and the job thread."""
        await self.batcher.close()
        await asyncio.to_thread(self.jobs.shutdown)

    # --- queries -------------------------------------------------------------------------

    async def search(
        self, request: SearchRequest, uploads: dict[str, Upload]
    ) -> tuple[list[Hit], list[str]]:
        """Hits of the request's composed query, and each part as understood."""
        parts = list(request.parts) + _unnamed_uploads(request.parts, uploads)
        library_parts = await asyncio.gather(*(self._library_part(p, uploads) for p in parts))
        described = [_describe(p, uploads) for p in parts]
        index = self.index
        try:
            hits = await asyncio.to_thread(
                index.search, *library_parts, modalities=request.modalities, path=request.path,
                where=request.where, segments=request.segments, k=request.top_k,
            )  # fmt: skip
        except StoreError as exc:
            if request.where is None and request.path is None:
                raise
            raise ConfigError(f"the filter could not be applied: {exc}") from exc
        return hits, described

    async def classify(self, request: ClassifyRequest, uploads: dict[str, Upload]) -> list:
        """Label scores for the request's one part (or its one upload)."""
        part = request.part
        if part is None:
            if len(uploads) != 1:
                raise ConfigError(
                    "give the item to classify as 'part' (or upload exactly one file)"
                )
            part = UploadPart(upload=next(iter(uploads)))
        library_part = await self._library_part(part, uploads)
        await self.batcher.load_tower(Modality.TEXT)
        vector = await asyncio.to_thread(query_vector, self.index.store, None, [library_part])
        return await asyncio.to_thread(classify_vector, self.encoder, vector, request.labels)

    async def _library_part(self, part: Part, uploads: dict[str, Upload]) -> QueryPart:
        """An API part as a library part; texts and files are encoded here, through the batcher,
        so the library only sums vectors and searches."""
        if isinstance(part, ItemPart):
            return Item(part.id, part.weight)
        if isinstance(part, VectorPart):
            return Vector(np.asarray(part.vector, dtype=np.float32), part.weight)
        if isinstance(part, TextPart):
            return Vector(await self._encode(InputKind.TEXT, part.text, "text"), part.weight)
        upload = uploads.get(part.upload)
        if upload is None:
            raise ConfigError(f"no uploaded file in form field {part.upload!r}")
        kind = kind_of_upload(upload, part.kind)
        check_size(upload, kind, self.config.uploads)
        return Vector(await self._encode(kind, upload.path, upload.filename), part.weight)

    async def _encode(self, kind: InputKind, value: str | Path, name: str) -> np.ndarray:
        try:
            return await self.batcher.embed(kind.modality, lambda: to_model_input(kind, value))
        except InputError as exc:  # name the client's file, not its temporary copy
            raise type(exc)(name, exc.reason) from exc

    # --- items ---------------------------------------------------------------------------

    def item(self, item_id: str) -> dict | None:
        """An item's metadata, or ``None`` when the index holds no such id."""
        row = rows_by_ids(self.index.store, [item_id]).get(item_id)
        return None if row is None else {key: row.get(key) for key in _ITEM_FIELDS}

    def media_url(self, item_id: str) -> str:
        """A signed link to the item's media (valid for ``media_link_seconds``)."""
        return f"/items/{item_id}/media?token={self.signer.sign(item_id)}"

    def stats(self) -> dict:
        """Rows per modality, the vector index's manifest, the model and batching counters."""
        index = self.index
        counts = index.count_by_modality()
        manifest = index_info(index.store)
        info = index.store.model_info() or {}
        return {"index_dir": str(index.directory), "model": self.encoder.model_name,
                "weights_id": self.encoder.weights_id,
                "dim": int(info["dim"]) if "dim" in info else None,
                "rows_total": sum(counts.values()), "rows_by_modality": counts,
                "vector_index": dataclasses.asdict(manifest) if manifest else None,
                "batching": {**dataclasses.asdict(self.config.batch),
                             **self.batcher.stats.to_dict()},
                "version": bindsearch.__version__}  # fmt: skip

    # --- ingest --------------------------------------------------------------------------

    def submit_ingest(self, request: IngestRequest) -> Job:
        """Start an ingest job on paths inside the ingest roots (checked before queueing)."""
        roots = [confine_path(p, self.ingest_roots) for p in request.paths]
        return self.jobs.submit(
            [str(r) for r in roots], lambda job: self._ingest(job, roots, request)
        )

    def _ingest(self, job: Job, roots: list[Path], request: IngestRequest) -> dict:
        store = Store.open(self.config.index_dir, create=False)
        options = IngestOptions(prune=request.prune, segment_s=request.segment_s,
                                workers=self.config.ingest_workers)  # fmt: skip
        reloaded_at = 0

        def on_progress(report: IngestReport) -> None:
            nonlocal reloaded_at
            job.progress = _progress(report)
            if report.rows_written > reloaded_at:  # a commit landed: let searches see it
                reloaded_at = report.rows_written
                self.reload()

        report = run_ingest(store, lambda: self.encoder, self.encoder.model_name, roots, options,
                            on_progress)  # fmt: skip
        self.reload()  # after the optimize and the FAISS sidecar refresh
        job.progress = _progress(report)
        return report.to_dict()


def _progress(report: IngestReport) -> dict[str, int]:
    return {"files_found": report.files_found, "files_handled": report.files_handled,
            "files_ingested": report.files_ingested, "files_failed": report.files_failed,
            "rows_written": report.rows_written}  # fmt: skip


def _unnamed_uploads(parts: list[Part], uploads: dict[str, Upload]) -> list[Part]:
    """Uploads no part names, as weight-1 parts (so a bare file upload is a query)."""
    named = {p.upload for p in parts if isinstance(p, UploadPart)}
    return [UploadPart(upload=field) for field in uploads if field not in named]


def _describe(part: Part, uploads: dict[str, Upload]) -> str:
    if isinstance(part, TextPart):
        what = f"text:{part.text[:60]}"
    elif isinstance(part, ItemPart):
        what = f"id:{part.id}"
    elif isinstance(part, VectorPart):
        what = "vector"
    else:
        upload = uploads.get(part.upload)
        what = f"{part.kind or 'file'}:{upload.filename if upload else part.upload}"
    return f"{part.weight:+g} x {what}"


def create_service(config: ServerConfig) -> SearchService:
    """Open the index, create its encoder (loading the ``preload`` towers) and check that the
    encoder's model and weights are those that made the stored vectors."""
    index = bindsearch.connect(config.index_dir, config.model, config.weights,
                               device=config.device, dtype=config.dtype, create=False)  # fmt: skip
    encoder = index.encoder()
    recorded = index.store.model_info()
    if recorded is not None and (
        recorded.get("model") != encoder.model_name
        or recorded.get("weights_id") != encoder.weights_id
    ):
        raise ModelMismatchError(
            f"index {index.directory} holds vectors of model {recorded.get('model')} with weights "
            f"{recorded.get('weights_id')}, but the server loaded {encoder.model_name} with "
            f"{encoder.weights_id}; start it with the index's --model and --weights"
        )
    for name in config.preload:
        started = time.perf_counter()
        encoder.tower(name)
        logger.info("loaded the %s tower in %.1f s", name, time.perf_counter() - started)
    return SearchService(config, index, encoder)
