"""Depth maps -> ImageBind depth input ``[1, 224, 224]`` (disparity).

The reference ships no depth loader (spec section 3.5). The paper feeds the depth tower
*disparity* "for scale invariance"; the community recipe for its benchmarks (I. Misra,
facebookresearch/omnivore#12) is ``disparity = baseline * focal / depth`` with depth in metres
clipped to [0.01, 50]. bindsearch follows it with the constants in ``DepthConfig``:

* ``baseline_m = 0.075`` -- Kinect v1/v2 (the recipe uses 0.095 for RealSense/Xtion);
* ``focal_px = 518.8579`` -- NYU Depth v2 Kinect colour camera ``fx`` (the recipe reads ``fx``
  from each SUN RGB-D scene's intrinsics; without intrinsics a Kinect value is the closest fit
  to the benchmarks ImageBind reports on).

So 1 m becomes ~38.9, 0.01 m ~3891 and 50 m ~0.78. Invalid pixels (0 in a PNG; 0 or negative in
a ``.npy``) become disparity 0 -- the value of infinitely far -- rather than being clipped to
0.01 m, which would make holes the nearest thing in the scene. No mean/std normalisation is
applied: none is published (one user's ``Normalize(0.0418, 0.0295)`` scored below the paper).

Inputs: a 16-bit single-channel PNG (or other Pillow-readable 16-bit grey image) in millimetres,
or a ``.npy`` float array ``[H, W]`` (or ``[H, W, 1]``) in metres.

Geometry: disparity is computed at full resolution, then the short side is resized to 224 with
bilinear interpolation and antialiasing (no overshoot, unlike bicubic, so disparity stays >= 0
and holes do not ring), then centre-cropped to 224 x 224 (torchvision's ``CenterCrop`` offsets,
as for images).
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

from bindsearch.errors import EmptyInputError, ShapeError
from bindsearch.preprocess.common import IMAGE_SIZE, check_finite, load_npy, open_image

logger = logging.getLogger(__name__)

__all__ = ["DepthConfig", "depth_to_disparity", "load_depth"]

#: Pillow modes holding 16-bit (or wider) integer grey levels.
_INTEGER_GREY_MODES = frozenset({"I;16", "I;16B", "I;16L", "I;16N", "I"})
_EIGHT_BIT_MODES = frozenset({"1", "L", "LA", "P", "PA", "RGB", "RGBA", "RGBX", "CMYK", "YCbCr"})

_EXPECTED = "depth expects a 16-bit single-channel PNG in millimetres or a .npy array in metres"


@dataclass(frozen=True)
class DepthConfig:
    """Constants of the depth -> disparity conversion (see the module docstring)."""

    baseline_m: float = 0.075
    focal_px: float = 518.8579
    min_depth_m: float = 0.01
    max_depth_m: float = 50.0
    png_units_per_m: float = 1000.0  # 16-bit PNG values are millimetres


DEFAULT_DEPTH_CONFIG = DepthConfig()


def load_depth(path: str | Path, config: DepthConfig = DEFAULT_DEPTH_CONFIG) -> torch.Tensor:
    """Load a depth map as disparity, float32 ``[1, 224, 224]``.

    Raises:
        DecodeError: unreadable file.
        ShapeError: not a single-channel 16-bit image or a 2-D float array.
        NonFiniteError: NaN or infinite values in a ``.npy``.
        EmptyInputError: zero-size map, or no valid (positive) depth at all.
    """
    path = Path(path)
    depth_m = _read_npy_m(path) if path.suffix.lower() == ".npy" else _read_image_m(path, config)
    check_finite(depth_m, path, "depth values")
    if not (depth_m > 0).any():
        raise EmptyInputError(path, "no valid depth pixels (all are 0 or negative)")
    disparity = depth_to_disparity(depth_m, config)  # [H, W]
    return _resize_and_crop(torch.from_numpy(disparity))


def depth_to_disparity(
    depth_m: np.ndarray, config: DepthConfig = DEFAULT_DEPTH_CONFIG
) -> np.ndarray:
    """Metric depth [H, W] -> float32 disparity [H, W]; non-positive (invalid) depth -> 0."""
    valid = depth_m > 0
    clipped = np.clip(depth_m, config.min_depth_m, config.max_depth_m)
    disparity = (config.baseline_m * config.focal_px) / clipped
    return np.where(valid, disparity, 0.0).astype(np.float32)


def _read_npy_m(path: Path) -> np.ndarray:
    """A ``.npy`` depth map in metres -> float64 [H, W]."""
    array = load_npy(path)
    if array.ndim == 3 and array.shape[-1] == 1:
        array = array[..., 0]
    if array.ndim != 2:
        raise ShapeError(path, f"{_EXPECTED}; got an array of shape {list(array.shape)}")
    if not np.issubdtype(array.dtype, np.floating):
        raise ShapeError(
            path,
            f"{_EXPECTED}; got dtype {array.dtype} (for millimetres, save a 16-bit PNG "
            "or divide by 1000 and save as float)",
        )
    if array.size == 0:
        raise EmptyInputError(path, "depth array is empty")
    return array.astype(np.float64)


def _read_image_m(path: Path, config: DepthConfig) -> np.ndarray:
    """A 16-bit grey image in millimetres -> float64 metres [H, W]."""
    image = open_image(path)
    if image.mode not in _INTEGER_GREY_MODES:
        bits = "8-bit " if image.mode in _EIGHT_BIT_MODES else ""
        raise ShapeError(
            path,
            f"{_EXPECTED}; got a {bits}{image.mode} image with {len(image.getbands())} channel(s)",
        )
    return np.asarray(image).astype(np.float64) / config.png_units_per_m


def _resize_and_crop(disparity: torch.Tensor) -> torch.Tensor:
    """float [H, W] -> [1, 224, 224]: short side 224 (bilinear, antialias), centre crop."""
    height, width = disparity.shape
    if height <= width:
        size = (IMAGE_SIZE, int(IMAGE_SIZE * width / height))
    else:
        size = (int(IMAGE_SIZE * height / width), IMAGE_SIZE)
    x = disparity[None, None].float()  # [1, 1, H, W]
    if size != (height, width):
        x = F.interpolate(x, size=size, mode="bilinear", align_corners=False, antialias=True)
    top = int(round((size[0] - IMAGE_SIZE) / 2.0))
    left = int(round((size[1] - IMAGE_SIZE) / 2.0))
    return x[0, :, top : top + IMAGE_SIZE, left : left + IMAGE_SIZE].contiguous()
