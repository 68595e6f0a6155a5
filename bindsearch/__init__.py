"""bindsearch: cross-modal vector search with ImageBind.

The public API is imported lazily, so ``import bindsearch`` (and the CLI's ``--help``) does not
import torch.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from bindsearch.errors import BindsearchError
from bindsearch.modality import Modality

__version__ = "0.1.0"

_LAZY = {
    "Encoder": "bindsearch.encode",
    "create_encoder": "bindsearch.encode",
    "InputKind": "bindsearch.preprocess",
    "Index": "bindsearch.index",
    "connect": "bindsearch.index",
    "create_model": "bindsearch.models",
    "list_models": "bindsearch.models",
    "ImageBindConfig": "bindsearch.models",
    "ImageBindModel": "bindsearch.models",
}

if TYPE_CHECKING:
    from bindsearch.encode import Encoder, create_encoder
    from bindsearch.index import Index, connect
    from bindsearch.models import ImageBindConfig, ImageBindModel, create_model, list_models
    from bindsearch.preprocess import InputKind


def __getattr__(name: str) -> Any:
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module 'bindsearch' has no attribute {name!r}")
    import importlib

    return getattr(importlib.import_module(module), name)


__all__ = [
    "BindsearchError",
    "Encoder",
    "Index",
    "ImageBindConfig",
    "ImageBindModel",
    "InputKind",
    "Modality",
    "connect",
    "create_encoder",
    "create_model",
    "list_models",
    "__version__",
]
