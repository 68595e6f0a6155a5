"""Helpers shared by the per-modality loaders: constants, safe image opening, value checks."""

from __future__ import annotations

import warnings
from fractions import Fraction
from pathlib import Path

import numpy as np

from bindsearch.errors import (
    DecodeError,
    DecompressionBombError,
    EmptyInputError,
    NonFiniteError,
)

#: OpenAI CLIP normalisation statistics (RGB, applied after scaling pixels to [0, 1]).
CLIP_MEAN: tuple[float, float, float] = (0.48145466, 0.4578275, 0.40821073)
CLIP_STD: tuple[float, float, float] = (0.26862954, 0.26130258, 0.27577711)

#: Side length of every image-like model input (vision, depth, thermal).
IMAGE_SIZE = 224

#: Largest image we decode, in pixels (about 13.4k x 13.4k): Pillow's own hard bomb limit.
#: We check the declared size against it before any pixel is decoded; Pillow's softer warning
#: at half this size is not treated as an error.
MAX_IMAGE_PIXELS = 178_956_970


#: EXIF Orientation values that need a transpose (1 = upright; others are invalid).
_TRANSPOSED_ORIENTATIONS = frozenset(range(2, 9))
_EXIF_ORIENTATION = 0x0112
#: Orientations that swap width and height.
_QUARTER_TURNS = frozenset({5, 6, 7, 8})


def open_image(path: str | Path, *, draft_min_side: int | None = None):  # -> PIL.Image.Image
    """:func:`open_image_with_size` without the size."""
    return open_image_with_size(path, draft_min_side=draft_min_side)[0]


def open_image_with_size(
    path: str | Path, *, draft_min_side: int | None = None
):  # -> tuple[PIL.Image.Image, tuple[int, int]]
    """Open ``path`` with Pillow, refusing decompression bombs, and apply EXIF orientation.

    The header is read first; the pixel data is decoded only if the declared size is below
    ``MAX_IMAGE_PIXELS``. With ``draft_min_side``, a JPEG is decoded at the smallest of 1/2,
    1/4 or 1/8 scale (libjpeg's DCT-domain scaling, Pillow's ``Image.draft``) whose sides stay
    at least ``draft_min_side`` pixels: much faster for large photos, not bit-identical to a
    full decode. Other formats are unaffected. Raises ``DecodeError`` for unreadable files,
    ``EmptyInputError`` for zero-sized images and ``DecompressionBombError`` for oversize ones.
    Returns the image and its upright ``(width, height)`` in the file's own pixels (the
    decoded image is smaller after a reduced decode). The caller owns (and should close) the
    returned image.
    """
    from PIL import Image, ImageOps, UnidentifiedImageError

    p = Path(path)
    img = None
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", Image.DecompressionBombWarning)
            img = Image.open(p)
            width, height = img.size
            if width * height > MAX_IMAGE_PIXELS:
                raise DecompressionBombError(
                    p, f"image is {width}x{height} pixels, above the {MAX_IMAGE_PIXELS:,} limit"
                )
            if width == 0 or height == 0:
                raise EmptyInputError(p, f"image has zero size ({width}x{height})")
            if draft_min_side is not None and img.format == "JPEG":
                img.draft(img.mode, (draft_min_side, draft_min_side))
            img.load()
            orientation = img.getexif().get(_EXIF_ORIENTATION, 1)
            size = (height, width) if orientation in _QUARTER_TURNS else (width, height)
            if orientation in _TRANSPOSED_ORIENTATIONS:
                oriented = ImageOps.exif_transpose(img)  # a new, rotated image
            elif getattr(img, "fp", None) is not None:
                oriented = img.copy()  # multi-frame formats keep their file open: detach
            else:
                return img, size  # decoded and its file closed: no copy needed
            img.close()
            return oriented, size
    except BaseException as exc:
        if img is not None:
            img.close()
        if isinstance(exc, DecompressionBombError | EmptyInputError):
            raise
        if isinstance(exc, Image.DecompressionBombError):
            raise DecompressionBombError(p, f"refused as a decompression bomb: {exc}") from exc
        if isinstance(exc, FileNotFoundError):
            raise DecodeError(p, "file not found") from exc
        if isinstance(exc, UnidentifiedImageError):
            raise DecodeError(p, "not an image Pillow can identify") from exc
        if isinstance(exc, OSError | SyntaxError | ValueError):
            raise DecodeError(p, f"cannot decode image: {exc}") from exc
        raise


def check_finite(array: np.ndarray, path: str | Path | None, what: str = "values") -> None:
    """Raise ``NonFiniteError`` if ``array`` holds NaN or infinity, ``EmptyInputError`` if empty."""
    if array.size == 0:
        raise EmptyInputError(path, f"no {what}")
    if not np.isfinite(array).all():
        bad = int((~np.isfinite(array)).sum())
        raise NonFiniteError(path, f"{bad} of {array.size} {what} are NaN or infinite")


def clip_windows(
    duration_s: float, clips: int, clip_seconds: float
) -> list[tuple[Fraction, Fraction]]:
    """Start and end (seconds) of ``clips`` evenly spread windows over ``[0, duration_s]``.

    pytorchvideo's ``ConstantClipsPerVideoSampler`` at the commit the reference pins: window
    ``k`` starts at ``k * max(duration_s - clip_seconds, 0) / max(clips - 1, 1)`` and lasts
    ``clip_seconds``; windows repeat when ``duration_s <= clip_seconds``. (PyPI pytorchvideo
    0.1.5 divides by ``clips`` instead.) ``float - Fraction`` is a float in Python, and that
    rounding is kept so sample and frame indices are bit-identical to the reference's.
    """
    clip_len = Fraction(clip_seconds)
    max_start = Fraction(max(duration_s - clip_len, 0))
    step = Fraction(max_start, max(clips - 1, 1))
    return [(step * k, step * k + clip_len) for k in range(clips)]


def load_npy(path: str | Path) -> np.ndarray:
    """A ``.npy`` array (no pickles), raising ``DecodeError`` for missing or unreadable files."""
    try:
        return np.load(path, allow_pickle=False)
    except FileNotFoundError as exc:
        raise DecodeError(path, "file not found") from exc
    except (OSError, ValueError, EOFError) as exc:
        raise DecodeError(path, f"cannot read .npy file: {exc}") from exc
