"""Image files -> vision-tower input ``[3, 224, 224]``, as the reference computes it.

The reference pipeline is Pillow ``convert("RGB")`` followed by torchvision's PIL-path
``Resize(224, BICUBIC)`` (antialiased, short side to 224), ``CenterCrop(224)``, ``ToTensor()``
and ``Normalize`` with the OpenAI CLIP statistics. We run the very same torchvision transforms.

**Exact or fast decoding.** With ``exact=True`` an 8-bit RGB file gives the reference's tensor
bit for bit. By default (``exact=False``) a large JPEG is decoded at 1/2, 1/4 or 1/8 scale in
the DCT domain (``Image.draft``), keeping its short side at least ``DRAFT_MIN_SIDE`` = 448 px,
twice the model's 224, so the bicubic resize still does real antialiased downsampling: about
3x faster for 12-megapixel photos. The tensor then differs from the exact one by up to about
0.1 per value (per-file mean up to about 0.02 at 1/2 scale, 0.004 at 1/4, on noisy textures;
embedding cosine >= 0.9998; ``benchmarks/RESULTS.md``, section Ingest, has the figures). JPEGs with a short side under 896 px, and all other formats, are decoded in full
(identical either way). ``exact=None`` reads the environment variable
``BINDSEARCH_IMAGE_EXACT`` (``1``/``true``/``yes`` = exact), so a whole ingest, ``embed`` or
server process can be switched to reference-exact images without code changes.

Where we deliberately differ from the reference (it would fail or give poor results):

* EXIF orientation is applied (``common.open_image``), so a phone photo is seen upright; the
  reference ignores the tag.
* High-bit-depth grayscale (``I;16*``, ``I``, ``F``) is scaled to 8 bits by
  :func:`convert_to_rgb`; Pillow's own ``convert("RGB")`` clips every value above 255 to white.
* Decompression bombs, truncated and unreadable files raise ``InputError`` subclasses.

Alpha is dropped exactly as the reference's ``convert("RGB")`` does (the colour stored under a
transparent pixel is used; no compositing onto a background).
"""

from __future__ import annotations

import logging
import os
from pathlib import Path

import numpy as np
import torch
from PIL import Image
from torchvision import transforms

from bindsearch.errors import DecodeError
from bindsearch.preprocess.common import (
    CLIP_MEAN,
    CLIP_STD,
    IMAGE_SIZE,
    check_finite,
    open_image_with_size,
)

logger = logging.getLogger(__name__)

#: Pillow modes whose samples do not fit in 8 bits; scaled by :func:`convert_to_rgb`.
HIGH_DEPTH_MODES: frozenset[str] = frozenset({"I;16", "I;16L", "I;16B", "I;16N", "I", "F"})

_UINT16_MAX = 65535

#: Smallest short side a JPEG is draft-decoded to by default (twice the model input).
DRAFT_MIN_SIDE = 2 * IMAGE_SIZE
#: Environment variable choosing the exact (reference bit-for-bit) image path when set to
#: 1/true/yes; the default is the fast path (see the module docstring).
EXACT_ENV = "BINDSEARCH_IMAGE_EXACT"


def exact_images(exact: bool | None = None) -> bool:
    """``exact`` if given, else whether ``BINDSEARCH_IMAGE_EXACT`` asks for exact images."""
    if exact is not None:
        return exact
    return os.environ.get(EXACT_ENV, "").strip().lower() in {"1", "true", "yes", "on"}


# Stateless and thread-safe; identical to the reference's transform list.
_VISION_TRANSFORM = transforms.Compose(
    [
        transforms.Resize(IMAGE_SIZE, interpolation=transforms.InterpolationMode.BICUBIC),
        transforms.CenterCrop(IMAGE_SIZE),
        transforms.ToTensor(),
        transforms.Normalize(mean=CLIP_MEAN, std=CLIP_STD),
    ]
)


def _scale_to_uint8(values: np.ndarray, mode: str) -> np.ndarray:
    """Map a high-bit-depth grayscale array ``[H, W]`` to ``uint8`` ``[H, W]``.

    ``I;16*``: always the full 16-bit range (``round(v / 257)``). ``I`` (32-bit int, e.g. a
    16-bit PNG opened by an older Pillow): the 16-bit rule when all values lie in
    ``[0, 65535]``, else min-max. ``F``: ``v * 255`` when all values lie in ``[0, 1]``, else
    min-max. Min-max maps a constant image to black.
    """
    if mode.startswith("I;16"):
        return ((values.astype(np.uint32) + 128) // 257).astype(np.uint8)
    lo, hi = float(values.min()), float(values.max())
    if mode == "I" and lo >= 0 and hi <= _UINT16_MAX:
        return ((values.astype(np.int64) + 128) // 257).astype(np.uint8)
    if mode == "F" and lo >= 0.0 and hi <= 1.0:
        return np.round(values.astype(np.float64) * 255.0).astype(np.uint8)
    span = hi - lo
    if span == 0.0:
        return np.zeros(values.shape, dtype=np.uint8)
    scaled = (values.astype(np.float64) - lo) * (255.0 / span)
    return np.round(scaled).astype(np.uint8)


def convert_to_rgb(image: Image.Image, path: str | Path | None = None) -> Image.Image:
    """Return ``image`` as an 8-bit ``RGB`` Pillow image.

    8-bit modes (``L``, ``LA``, ``P`` with or without transparency, ``PA``, ``RGBA``, ``CMYK``,
    ``YCbCr``, ``1``, ...) go through Pillow's ``convert("RGB")`` like the reference, which
    drops alpha. High-bit-depth grayscale is scaled to 8 bits first (see ``_scale_to_uint8``).
    Raises ``NonFiniteError`` for float images holding NaN/inf and ``DecodeError`` for modes
    Pillow cannot convert (e.g. ``LAB``).
    """
    if image.mode == "RGB":
        return image
    if image.mode in HIGH_DEPTH_MODES:
        values = np.asarray(image)  # [H, W], uint16 / int32 / float32
        check_finite(values, path, "pixels")
        gray = Image.fromarray(_scale_to_uint8(values, image.mode))  # mode "L"
        return gray.convert("RGB")
    if image.mode == "PA":
        image = image.convert("RGBA")
    try:
        return image.convert("RGB")
    except (ValueError, OSError) as exc:
        raise DecodeError(path, f"cannot convert Pillow mode {image.mode!r} to RGB: {exc}") from exc


def image_transform(image: Image.Image) -> torch.Tensor:
    """Turn an in-memory Pillow image into vision input ``float32 [3, 224, 224]``.

    Any mode accepted by :func:`convert_to_rgb`; then the reference's resize (short side to 224,
    bicubic, antialiased), centre crop, ``[0, 1]`` scaling and CLIP normalisation.
    """
    return _VISION_TRANSFORM(convert_to_rgb(image))


def load_image_with_size(
    path: str | Path, *, exact: bool | None = None
) -> tuple[torch.Tensor, tuple[int, int]]:
    """Load an image file as vision input and report its size.

    Returns ``(tensor [3, 224, 224] float32, (width_px, height_px))``; the size is that of the
    upright image (after EXIF orientation) as stored in the file, before any reduced decoding
    or resizing. ``exact``: see the module docstring (None = ``BINDSEARCH_IMAGE_EXACT``).
    Raises ``DecodeError``, ``EmptyInputError``, ``NonFiniteError`` or
    ``DecompressionBombError``.
    """
    draft = None if exact_images(exact) else DRAFT_MIN_SIDE
    image, size_px = open_image_with_size(path, draft_min_side=draft)
    try:
        tensor = image_transform(convert_to_rgb(image, path))
    finally:
        image.close()
    return tensor, size_px


def load_image(path: str | Path, *, exact: bool | None = None) -> torch.Tensor:
    """Load an image file as vision input ``float32 [3, 224, 224]`` (see module docstring)."""
    return load_image_with_size(path, exact=exact)[0]
