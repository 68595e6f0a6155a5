"""Thermal images -> ImageBind thermal input ``[1, 224, 224]``.

The reference ships no thermal loader (spec section 3.5). bindsearch uses the community recipe
(issue #37, PR #73): grey ("L") -> ``Resize(224, bicubic)`` (Pillow, antialiased) ->
``CenterCrop(224)`` -> ``ToTensor`` ([0, 1]). **No mean/std normalisation**: one user measured
LLVIP zero-shot 62.4 % without it against 55.2 % with CLIP's ``Normalize`` (paper: 63.4 %).

Input conversion to 8-bit grey:

* 8-bit grey is used as is; colour images (false-colour palettes, 3-channel grey) go through
  Pillow's ``convert("L")`` (ITU-R 601 luma), as in PR #73.
* 16-bit (or 32-bit integer / float) images -- radiometric counts from a thermal camera -- are
  stretched linearly so the image's minimum maps to 0 and its maximum to 255 (rounded). Raw
  counts usually occupy a narrow band of the 16-bit range, so a fixed ``>> 8`` would give an
  almost uniform image; the per-image stretch is what camera AGC does when it renders 8-bit
  frames like LLVIP's. A constant image becomes all 0.
"""

from __future__ import annotations

import logging
from pathlib import Path

import numpy as np
import torch

from bindsearch.preprocess.common import IMAGE_SIZE, check_finite, open_image

logger = logging.getLogger(__name__)

__all__ = ["load_thermal"]

_HIGH_DEPTH_MODES = frozenset({"I;16", "I;16B", "I;16L", "I;16N", "I", "F"})


def load_thermal(path: str | Path) -> torch.Tensor:
    """Load a thermal image as float32 ``[1, 224, 224]`` in [0, 1].

    Raises:
        DecodeError: unreadable file.
        DecompressionBombError: absurdly large image.
        EmptyInputError: zero-size image.
        NonFiniteError: NaN or infinite values in a float image.
    """
    from PIL import Image
    from torchvision.transforms import InterpolationMode
    from torchvision.transforms import functional as TF

    image = open_image(path)
    if image.mode in _HIGH_DEPTH_MODES:
        image = Image.fromarray(_stretch_to_uint8(np.asarray(image), path))  # mode "L"
    elif image.mode != "L":
        image = image.convert("L")
    image = TF.resize(image, IMAGE_SIZE, interpolation=InterpolationMode.BICUBIC)
    image = TF.center_crop(image, IMAGE_SIZE)
    return TF.to_tensor(image)  # [1, 224, 224]


def _stretch_to_uint8(values: np.ndarray, path: str | Path) -> np.ndarray:
    """[H, W] any numeric -> uint8 [H, W]: per-image min -> 0, max -> 255."""
    values = values.astype(np.float64)
    check_finite(values, path, "thermal values")
    low, high = float(values.min()), float(values.max())
    if high <= low:
        return np.zeros(values.shape, np.uint8)
    scaled = (values - low) * (255.0 / (high - low))
    return np.round(scaled).astype(np.uint8)
