"""The Encoder: files, texts or tensors in; float32 unit vectors out.

This module is the one place that enforces bindsearch's vector contract: every vector it
returns is float32, finite and L2-normalised, after clip averaging.
"""

from __future__ import annotations

import contextlib
import logging
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor

from bindsearch.errors import ConfigError
from bindsearch.hardware import cpu_has_native_bf16
from bindsearch.modality import Modality
from bindsearch.models.imagebind import ImageBindModel
from bindsearch.models.registry import ModelEntry, create_model, get_model_entry
from bindsearch.preprocess import InputKind, load_file

logger = logging.getLogger(__name__)

#: Items per forward pass when the caller gives none: (on CUDA, elsewhere).
_DEFAULT_BATCH = {
    Modality.VISION: (64, 8),
    Modality.TEXT: (256, 32),
    Modality.AUDIO: (64, 8),
    Modality.DEPTH: (128, 16),
    Modality.THERMAL: (128, 16),
    Modality.IMU: (128, 16),
}

Item = Any  # a path, a text string, a PIL image or a per-item tensor/array


def resolve_device(device: str | torch.device | None) -> torch.device:
    """``device`` as given, else the best available: CUDA, then Apple MPS, then CPU."""
    if device is not None:
        return torch.device(device)
    if torch.cuda.is_available():
        return torch.device("cuda")
    mps = getattr(torch.backends, "mps", None)
    if mps is not None and mps.is_available():
        return torch.device("mps")
    return torch.device("cpu")


def resolve_dtype(dtype: str | torch.dtype | None, device: torch.device) -> torch.dtype:
    """Compute dtype: bf16 by default on CUDA, fp32 elsewhere; ``fp32``/``bf16``/``fp16``."""
    if dtype is None:
        return torch.bfloat16 if device.type == "cuda" else torch.float32
    if isinstance(dtype, torch.dtype):
        resolved = dtype
    else:
        names = {"fp32": torch.float32, "float32": torch.float32, "bf16": torch.bfloat16,
                 "bfloat16": torch.bfloat16, "fp16": torch.float16, "float16": torch.float16}  # fmt: skip
        try:
            resolved = names[dtype.lower()]
        except KeyError:
            raise ConfigError(f"unknown dtype {dtype!r}; use fp32, bf16 or fp16") from None
    if resolved == torch.bfloat16 and device.type == "cpu" and not cpu_has_native_bf16():
        logger.warning(
            "bf16 on a CPU without AVX512-BF16/AMX is emulated and much slower than fp32; "
            "use --dtype fp32 on this machine"
        )
    return resolved


@dataclass(frozen=True)
class WeightsSource:
    """Where an encoder's weights come from: a converted per-modality dir, or seeded random init."""

    directory: Path | None
    sha256: str | None

    @property
    def identity(self) -> str:
        """A string that names these exact weights (stored by indexes to refuse mixing)."""
        return f"sha256:{self.sha256}" if self.sha256 else "random-init"


class Encoder:
    """Embeds items of any modality into the model's space, loading towers on first use.

    Build one with :func:`create_encoder`. Only the towers that are used are read from disk,
    so a text-only process never touches the vision weights.
    """

    def __init__(
        self,
        entry: ModelEntry,
        source: WeightsSource,
        *,
        device: str | torch.device | None = None,
        dtype: str | torch.dtype | None = None,
        batch_size: int | None = None,
    ) -> None:
        self.entry = entry
        self.source = source
        self.device = resolve_device(device)
        self.dtype = resolve_dtype(dtype, self.device)
        self.batch_size = batch_size
        self._towers: dict[Modality, ImageBindModel] = {}

    @property
    def model_name(self) -> str:
        """Registry name of the model."""
        return self.entry.name

    @property
    def embed_dim(self) -> int:
        """Dimension of the vectors returned."""
        return self.entry.config.out_embed_dim

    @property
    def weights_id(self) -> str:
        """Identity of the weights (sha256 of the checkpoint, or ``random-init``)."""
        return self.source.identity

    @property
    def loaded_modalities(self) -> tuple[Modality, ...]:
        """Towers read into memory so far."""
        return tuple(self._towers)

    def tower(self, modality: Modality | str) -> ImageBindModel:
        """The model holding ``modality``'s tower, built and loaded on first call."""
        m = Modality.parse(modality)
        if m not in self._towers:
            ckpt = self.source.directory
            model = create_model(self.entry.name, ckpt, modalities=[m], device=self.device)
            if self._cast_weights:
                model = model.to(self.dtype)
            self._towers[m] = model
        return self._towers[m]

    def logit_scale(self, modality: Modality | str) -> float:
        """The reference's logit scale of ``modality`` (for zero-shot softmax)."""
        return self.tower(modality).logit_scale(modality)

    @property
    def _cast_weights(self) -> bool:
        """bf16 casts the weights themselves, not only the matmuls (fp16 stays autocast).

        Measured on an H100 (benchmarks/RESULTS.md, "encode GPU sweep"): bf16 weights run the
        huge vision tower 11–21% faster than fp32 weights under autocast, which re-casts every
        weight per call and runs the layer norms in fp32, and take half the memory; cosine to
        fp32 vectors ≥ 0.9999. On a CPU the per-call cast of 2.5 GB of weights costs more.
        """
        return self.dtype == torch.bfloat16

    def _autocast(self) -> contextlib.AbstractContextManager[Any]:
        if self.dtype == torch.float32 or self._cast_weights:
            return contextlib.nullcontext()
        return torch.autocast(device_type=self.device.type, dtype=self.dtype)

    @torch.inference_mode()
    def embed_tensor(self, modality: Modality | str, x: Tensor) -> np.ndarray:
        """Embed a preprocessed batch ``x`` (the model's input layout) -> ``[B, D]`` float32."""
        m = Modality.parse(modality)
        model = self.tower(m)
        if m is not Modality.TEXT:
            x = x.to(self.dtype if self._cast_weights else torch.float32)
        with self._autocast():
            out = model.embed(m, x.to(self.device, non_blocking=True))
        return to_unit_vectors(out)

    def encode(
        self,
        kind: InputKind | Modality | str,
        items: Sequence[Item],
        *,
        batch_size: int | None = None,
    ) -> np.ndarray:
        """Embed ``items`` of one kind -> ``np.ndarray[N, D]`` float32 unit vectors.

        ``kind`` is ``image`` (or ``vision``), ``video``, ``text``, ``audio``, ``depth``,
        ``thermal`` or ``imu``. Items are file paths; for ``text`` a ``str`` is the text itself
        (pass a ``Path`` to embed a file's contents: the mean of its 77-token chunks' vectors);
        PIL images and per-item tensors in the
        model's layout are accepted too. Raises an ``InputError`` subclass for a bad item.
        """
        kind = InputKind.parse(kind)
        m = kind.modality
        if len(items) == 0:
            return np.zeros((0, self.embed_dim), dtype=np.float32)
        size = batch_size or self.batch_size or self._default_batch(m)
        if kind is InputKind.TEXT and any(isinstance(i, Path) for i in items):
            # Text files are [S, 77] chunk ids of varying S: one item per forward pass.
            return np.concatenate(
                [self.embed_tensor(m, to_model_input(kind, item)[None]) for item in items]
            )
        chunks = [self.embed_tensor(m, batch) for batch in self._batches(kind, items, size)]
        return np.concatenate(chunks, axis=0)

    def _default_batch(self, m: Modality) -> int:
        on_gpu, elsewhere = _DEFAULT_BATCH[m]
        return on_gpu if self.device.type == "cuda" else elsewhere

    def _batches(self, kind: InputKind, items: Sequence[Item], size: int) -> Iterator[Tensor]:
        if kind is InputKind.TEXT and all(isinstance(i, str) for i in items):
            from bindsearch.preprocess.text import tokenize

            for start in range(0, len(items), size):
                yield tokenize(list(items[start : start + size]))
            return
        pending: list[Tensor] = []
        for item in items:
            pending.append(to_model_input(kind, item))
            if len(pending) == size:
                yield torch.stack(pending)
                pending = []
        if pending:
            yield torch.stack(pending)


def to_model_input(kind: InputKind, item: Item) -> Tensor:
    """One item -> its per-item model input tensor."""
    if isinstance(item, Tensor):
        return item
    if isinstance(item, np.ndarray):
        return torch.from_numpy(item)
    if kind is InputKind.TEXT and isinstance(item, str):
        from bindsearch.preprocess.text import tokenize

        return tokenize(item)[0]
    if kind is InputKind.IMAGE and not isinstance(item, (str, Path)):
        from bindsearch.preprocess.image import image_transform

        return image_transform(item)
    return load_file(kind, item)


def to_unit_vectors(x: Tensor) -> np.ndarray:
    """[B, D] tensor -> float32 numpy unit rows (the storage contract)."""
    return F.normalize(x.detach().float(), dim=-1).cpu().numpy().astype(np.float32, copy=False)


def create_encoder(
    name: str = "imagebind-huge",
    weights: str | Path | None = None,
    *,
    device: str | torch.device | None = None,
    dtype: str | torch.dtype | None = None,
    batch_size: int | None = None,
    progress: bool = True,
    download: bool = True,
) -> Encoder:
    """An :class:`Encoder` for registered model ``name``.

    ``weights`` is a checkpoint file (reference ``.pth``, flat ``.safetensors``) or a converted
    directory. For a model with published weights and no ``weights`` given, the file is found
    through ``$BINDSEARCH_WEIGHTS`` or the cache, downloaded if needed (``download=False``
    forbids that), and converted once into per-modality safetensors. Models without published
    weights (``imagebind-tiny``) use their seeded random init unless ``weights`` is given.
    """
    entry = get_model_entry(name)
    return Encoder(
        entry,
        _weights_source(entry, weights, progress=progress, download=download),
        device=device,
        dtype=dtype,
        batch_size=batch_size,
    )


def _weights_source(
    entry: ModelEntry, weights: str | Path | None, *, progress: bool, download: bool
) -> WeightsSource:
    from bindsearch.models.checkpoint import prepare_modality_weights
    from bindsearch.models.digest import read_pinned_digest

    if weights is None and entry.weights is None:
        return WeightsSource(None, None)
    if entry.weights is not None:
        from bindsearch.models.download import resolve_weights

        path = resolve_weights(entry.weights, weights, progress=progress, download=download)
    else:
        path = Path(weights).expanduser()  # type: ignore[arg-type]
    directory = prepare_modality_weights(path)
    pinned = read_pinned_digest(path) if path.is_file() else None
    return WeightsSource(directory, pinned.sha256 if pinned else _identity_of(path, directory))


def _identity_of(path: Path, converted: Path) -> str:
    """sha256 of an unpinned checkpoint file, hashed once and remembered beside its conversion."""
    from bindsearch.models.digest import file_sha256

    if not path.is_file():
        return "dir-" + str(path.resolve())
    marker = converted / "source.sha256"
    if marker.is_file():
        return marker.read_text().strip()
    digest = file_sha256(path)
    tmp = marker.with_suffix(".tmp")
    tmp.write_text(digest + "\n")
    tmp.replace(marker)
    return digest
