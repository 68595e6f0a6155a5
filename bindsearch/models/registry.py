"""Named model architectures, ``create_model`` and checkpoint loading."""

from __future__ import annotations

import contextlib
import logging
import threading
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path

import torch
from torch import Tensor, nn

from bindsearch.errors import UnknownModelError, WeightsError
from bindsearch.modality import MODALITIES, Modality
from bindsearch.models.config import ImageBindConfig
from bindsearch.models.imagebind import ImageBindModel

logger = logging.getLogger(__name__)

_TOWER_PREFIXES = (
    "modality_preprocessors.",
    "modality_trunks.",
    "modality_heads.",
    "modality_postprocessors.",
)


@dataclass(frozen=True)
class ModelEntry:
    """A registered architecture: its config, default weights name and a one-line description."""

    name: str
    config: ImageBindConfig
    weights: str | None
    description: str
    seed: int = 0


_REGISTRY: dict[str, ModelEntry] = {}


def register_model(entry: ModelEntry) -> ModelEntry:
    """Add ``entry`` to the registry (replacing one of the same name)."""
    _REGISTRY[entry.name] = entry
    return entry


def list_models() -> list[str]:
    """Names of all registered models."""
    return sorted(_REGISTRY)


def get_model_entry(name: str) -> ModelEntry:
    """The registry entry called ``name``; ``UnknownModelError`` lists the known names."""
    try:
        return _REGISTRY[name]
    except KeyError:
        known = ", ".join(list_models())
        raise UnknownModelError(f"unknown model {name!r}; registered models: {known}") from None


register_model(
    ModelEntry(
        name="imagebind-huge",
        config=ImageBindConfig(),
        weights="imagebind-huge",
        description="ImageBind-Huge (ViT-H/14 vision, 1024-d space); official weights, CC BY-NC-SA 4.0",
    )
)
# fmt: off
register_model(
    ModelEntry(
        name="imagebind-tiny",
        config=ImageBindConfig(
            out_embed_dim=64,
            vision_embed_dim=32, vision_num_blocks=2, vision_num_heads=2,
            text_embed_dim=32, text_num_blocks=2, text_num_heads=2,
            audio_embed_dim=32, audio_num_blocks=2, audio_num_heads=2,
            depth_embed_dim=32, depth_num_blocks=2, depth_num_heads=2,
            thermal_embed_dim=32, thermal_num_blocks=2, thermal_num_heads=2,
            imu_embed_dim=32, imu_num_blocks=2, imu_num_heads=2,
        ),
        weights=None,
        description=(
            "Same architecture at tiny width, seeded random init, 64-d: for tests and offline "
            "smoke runs only. Its similarities are meaningless."
        ),
    )
)
# fmt: on


def convert_reference_state_dict(state_dict: Mapping[str, Tensor]) -> dict[str, Tensor]:
    """Map a reference-format ImageBind state_dict onto bindsearch's module names.

    Our modules use the reference's names, so the mapping is the identity on tower keys. It
    unwraps ``{"model": sd}`` / ``{"state_dict": sd}`` containers and strips a ``module.``
    (DataParallel) prefix; any key that belongs to no tower raises ``WeightsError``.
    """
    for wrapper in ("model", "state_dict"):
        inner = state_dict.get(wrapper) if isinstance(state_dict, Mapping) else None
        if isinstance(inner, Mapping) and not any(
            str(k).startswith(_TOWER_PREFIXES) for k in state_dict
        ):
            state_dict = inner
    converted: dict[str, Tensor] = {}
    for key, value in state_dict.items():
        name = key.removeprefix("module.")
        if not name.startswith(_TOWER_PREFIXES):
            raise WeightsError(f"checkpoint key {key!r} is not an ImageBind tower parameter")
        converted[name] = value
    return converted


def _key_modality(key: str) -> str:
    return key.split(".", 2)[1]


def _read_checkpoint(path: Path, modalities: tuple[Modality, ...]) -> dict[str, Tensor]:
    """Tensors of ``modalities`` from a reference ``.pth``, a converted dir or a safetensors file."""
    if not path.exists():
        raise WeightsError(f"checkpoint {path} does not exist")
    if path.is_dir():
        from bindsearch.models.checkpoint import load_modality_state_dict

        return load_modality_state_dict(path, [m.value for m in modalities])
    if path.suffix == ".safetensors":
        from safetensors.torch import load_file

        raw: Mapping[str, Tensor] = load_file(str(path))
    else:
        try:
            raw = torch.load(path, map_location="cpu", weights_only=True, mmap=True)
        except RuntimeError:  # not zipfile-format: mmap unsupported
            raw = torch.load(path, map_location="cpu", weights_only=True)
        except Exception as exc:
            raise WeightsError(f"cannot read checkpoint {path}: {exc}") from exc
    names = {m.value for m in modalities}
    return {k: v for k, v in convert_reference_state_dict(raw).items() if _key_modality(k) in names}


def load_checkpoint_(model: ImageBindModel, state_dict: Mapping[str, Tensor]) -> None:
    """Strictly load tower weights into ``model``: every key consumed, none missing."""
    state_dict = convert_reference_state_dict(state_dict)
    built = {m.value for m in model.modalities}
    wanted = {k: v for k, v in state_dict.items() if _key_modality(k) in built}
    expected = model.state_dict()
    missing = sorted(set(expected) - set(wanted))
    unexpected = sorted(set(wanted) - set(expected))
    shapes = [
        f"{k}: checkpoint {tuple(v.shape)} vs model {tuple(expected[k].shape)}"
        for k, v in wanted.items()
        if k in expected and v.shape != expected[k].shape
    ]
    if missing or unexpected or shapes:
        detail = "; ".join(
            part
            for part in (
                f"{len(missing)} missing (e.g. {missing[:3]})" if missing else "",
                f"{len(unexpected)} unexpected (e.g. {unexpected[:3]})" if unexpected else "",
                f"shape mismatches: {shapes[:3]}" if shapes else "",
            )
            if part
        )
        raise WeightsError(f"checkpoint does not fit the model architecture: {detail}")
    on_meta = next(model.parameters()).is_meta
    model.load_state_dict(wanted, strict=True, assign=on_meta)


#: Held while a model is constructed: ``_skipped_init`` swaps module-level functions of
#: ``torch.nn.init``, which must not happen while another thread initialises a random model.
_construct_lock = threading.Lock()

_INITIALISERS = (
    "uniform_", "normal_", "trunc_normal_", "constant_", "ones_", "zeros_", "eye_",
    "kaiming_uniform_", "kaiming_normal_", "xavier_uniform_", "xavier_normal_", "orthogonal_",
)  # fmt: skip


@contextlib.contextmanager
def _skipped_init() -> Iterator[None]:
    """Build modules without running ``torch.nn.init``: every weight comes from the checkpoint.

    On the meta device the initialisers dispatch through ``torch._refs``, whose first use
    imports ``torch._dynamo`` and sympy: about a second of a text query's cold start, for
    values that are thrown away.
    """
    saved = {name: getattr(nn.init, name) for name in _INITIALISERS}

    def keep(tensor: Tensor, *args: object, **kwargs: object) -> Tensor:
        return tensor

    try:
        for name in _INITIALISERS:
            setattr(nn.init, name, keep)
        yield
    finally:
        for name, function in saved.items():
            setattr(nn.init, name, function)


def create_model(
    name_or_config: str | ImageBindConfig,
    checkpoint: str | Path | Mapping[str, Tensor] | None = None,
    *,
    modalities: Iterable[Modality | str] | None = None,
    device: str | torch.device | None = None,
) -> ImageBindModel:
    """Build an ImageBind model by registry name or config, in eval mode.

    ``checkpoint`` is a reference-format ``.pth`` (the official ``imagebind_huge.pth`` layout), a
    directory of per-modality safetensors (see :mod:`bindsearch.models.checkpoint`), a
    ``.safetensors`` file or an in-memory state_dict; it is loaded strictly. Without one, the
    weights are a seeded random init. ``modalities`` builds only those towers (and reads only
    their tensors). The weights stay on the CPU unless ``device`` says otherwise.
    """
    if isinstance(name_or_config, ImageBindConfig):
        config, seed = name_or_config, 0
    else:
        entry = get_model_entry(name_or_config)
        config, seed = entry.config, entry.seed
    towers = MODALITIES if modalities is None else tuple(Modality.parse(m) for m in modalities)
    if checkpoint is None:
        # Construction draws from the RNG too (PyTorch's default inits): keep it all private.
        with _construct_lock:
            with torch.random.fork_rng(devices=[]):
                torch.manual_seed(seed)
                model = ImageBindModel(config, towers)
            model.init_weights(seed)
    else:
        with _construct_lock, _skipped_init(), torch.device("meta"):
            model = ImageBindModel(config, towers)
        if isinstance(checkpoint, Mapping):
            state = dict(checkpoint)
        else:
            state = _read_checkpoint(Path(checkpoint), model.modalities)
        load_checkpoint_(model, state)
    model.eval().requires_grad_(False)
    if device is not None:
        model.to(device)
    return model
