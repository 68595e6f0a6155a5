"""ImageBind architecture, registry and weights handling."""

from bindsearch.models.config import ImageBindConfig
from bindsearch.models.imagebind import ImageBindModel
from bindsearch.models.registry import (
    ModelEntry,
    convert_reference_state_dict,
    create_model,
    get_model_entry,
    list_models,
    register_model,
)

__all__ = [
    "ImageBindConfig",
    "ImageBindModel",
    "ModelEntry",
    "convert_reference_state_dict",
    "create_model",
    "get_model_entry",
    "list_models",
    "register_model",
]
