"""The public facade: an index directory (LanceDB database) plus the model that fills it."""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from bindsearch.errors import ModelMismatchError
from bindsearch.indexes.search import SidecarCache
from bindsearch.query.execute import Hit, query_vector, search
from bindsearch.query.filters import Filters
from bindsearch.query.parts import QueryPart
from bindsearch.store import Store

if TYPE_CHECKING:  # torch (encode) and the ingest pipeline are imported when first needed
    from bindsearch.encode import Encoder
    from bindsearch.ingest.pipeline import ProgressCallback
    from bindsearch.ingest.report import IngestReport
    from bindsearch.preprocess import InputKind
    from bindsearch.query.classify import LabelScore

#: Environment variable naming the default index directory.
INDEX_ENV = "BINDSEARCH_INDEX"
#: Default index directory, relative to the working directory (visible, not hidden).
DEFAULT_INDEX_DIR = "bindsearch-index"
DEFAULT_MODEL = "imagebind-huge"


def default_index_dir() -> Path:
    """``$BINDSEARCH_INDEX`` or ``./bindsearch-index``."""
    return Path(os.environ.get(INDEX_ENV) or DEFAULT_INDEX_DIR)


class Index:
    """A bindsearch index: LanceDB tables ``items``, ``errors`` and ``meta`` in one directory.

    Use :func:`connect`. The model and its weights are loaded on first use, the FAISS sidecar
    (if any) on the first search; it stays loaded until its manifest changes (a rebuild or a
    refresh), and rows written since its build are still found (see
    :mod:`bindsearch.indexes.search`).
    """

    def __init__(
        self,
        store: Store,
        model: str,
        weights: str | Path | None = None,
        *,
        device: str | None = None,
        dtype: str | None = None,
    ) -> None:
        self.store = store
        self.model = model
        self.weights = weights
        self.device = device
        self.dtype = dtype
        self._encoder: Encoder | None = None
        self._sidecar = SidecarCache()

    @property
    def directory(self) -> Path:
        """The index directory (a LanceDB database)."""
        return self.store.directory

    def encoder(self) -> Encoder:
        """The encoder for this index's model (created on first call)."""
        if self._encoder is None:
            from bindsearch.encode import create_encoder

            self._encoder = create_encoder(
                self.model, self.weights, device=self.device, dtype=self.dtype
            )
        return self._encoder

    def ingest(
        self,
        paths: Sequence[str | Path],
        *,
        as_kind: InputKind | str | None = None,
        prune: bool = False,
        segment_s: float | None = None,
        batch_size: int | None = None,
        workers: int | None = None,
        dry_run: bool = False,
        on_progress: ProgressCallback | None = None,
        commit_files: int = 256,
        audio_clips: int | None = None,
    ) -> IngestReport:
        """Embed the media under ``paths`` into this index, incrementally and crash-safely.

        Unchanged files (same path, size and mtime) are skipped; changed files' rows are
        replaced atomically; ``prune`` removes rows of files gone from under ``paths``.
        ``segment_s`` adds one row per window of that length for longer audio and video.
        ``workers`` decode processes (0 decodes in this process); ``commit_files`` files are
        written per LanceDB commit. ``audio_clips`` sets the 2-s clips of each whole-file audio
        row: ``None`` = 3 (the reference), ``0`` = auto (``ceil(duration / 2 s)``, at least 3),
        ``N`` = N; segment rows keep 3. Files are not re-embedded when only this changes, so
        keep one setting per index. Per-file failures are
        recorded in the ``errors`` table and in the returned report, never raised.
        """
        from bindsearch.ingest.pipeline import IngestOptions, run_ingest
        from bindsearch.preprocess import InputKind

        options = IngestOptions(
            forced_kind=InputKind.parse(as_kind) if as_kind is not None else None,
            prune=prune,
            segment_s=segment_s,
            batch_size=batch_size,
            workers=workers,
            dry_run=dry_run,
            commit_files=commit_files,
            audio_clips=audio_clips,
        )
        return run_ingest(self.store, self.encoder, self.model, paths, options, on_progress)

    def search(
        self,
        *parts: QueryPart,
        modalities: Sequence[str] = (),
        path: str | None = None,
        where: str | None = None,
        segments: bool = False,
        k: int = 10,
    ) -> list[Hit]:
        """Nearest items to the weighted sum of ``parts`` (see :mod:`bindsearch.query.parts`:
        ``Text("rain")``, ``File("audio", "x.wav", weight=0.5)``, ``Item(id)``, ``Vector(v)``).

        ``modalities`` restricts result modalities, ``path`` is a folder prefix or a glob,
        ``where`` a LanceDB SQL predicate; ``segments`` also returns moments inside long
        media. Returns up to ``k`` hits, best first, scored by cosine similarity.
        """
        filters = Filters(tuple(modalities), path, where, segments)
        needs_model = any(p.kind not in ("id", "vector") for p in parts)
        return search(self.store, self._checked_encoder() if needs_model else None, parts,
                      filters=filters, k=k, sidecar=self._sidecar)  # fmt: skip

    def embed(self, kind: str, items: Sequence[object]) -> np.ndarray:
        """Vectors of ``items`` in this index's space (``[N, D]`` float32 unit rows)."""
        return self._checked_encoder().encode(kind, items)

    def classify(self, item: QueryPart, labels: Sequence[str]) -> list[LabelScore]:
        """Zero-shot label probabilities for one item (a file part or an ingested ``Item``)."""
        from bindsearch.query.classify import classify_vector

        encoder = self._checked_encoder()
        vector = query_vector(self.store, encoder, [item])
        return classify_vector(encoder, vector, labels)

    def _checked_encoder(self) -> Encoder:
        """The encoder, refusing weights other than those that made the stored vectors."""
        encoder = self.encoder()
        recorded = self.store.model_info()
        if recorded is not None and recorded.get("weights_id") != encoder.weights_id:
            raise ModelMismatchError(
                f"index {self.directory} was built with weights {recorded.get('weights_id')}, "
                f"but the model loaded has {encoder.weights_id}; pass the same --weights"
            )
        return encoder

    def count_by_modality(self) -> dict[str, int]:
        """Rows per modality."""
        return self.store.count_by_modality()


def connect(
    directory: str | Path | None = None,
    model: str | None = None,
    weights: str | Path | None = None,
    *,
    device: str | None = None,
    dtype: str | None = None,
    create: bool = True,
) -> Index:
    """Open (or create) the index at ``directory`` (default :func:`default_index_dir`).

    ``model`` defaults to the model the index was built with, else ``imagebind-huge``. A
    different model than the index holds is refused when vectors would be written.
    """
    store = Store.open(
        Path(directory) if directory is not None else default_index_dir(), create=create
    )
    recorded = store.model_info()
    chosen = model or (recorded or {}).get("model") or DEFAULT_MODEL
    return Index(store, chosen, weights, device=device, dtype=dtype)
