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


def open_image(path: str | Path):  # -> PIL.Image.Image (PIL imported lazily)
    """Open ``path`` with Pillow, refusing decompression bombs, and apply EXIF orientation.

    The header is read first; the pixel data is decoded only if the declared size is below
    ``MAX_IMAGE_PIXELS``. Raises ``DecodeError`` for unreadable files, ``EmptyInputError`` for
    zero-sized images and ``DecompressionBombError`` for oversize ones.
    """
    from PIL import Image, ImageOps, UnidentifiedImageError

    p = Path(path)
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", Image.DecompressionBombWarning)
            with Image.open(p) as img:
                width, height = img.size
                if width * height > MAX_IMAGE_PIXELS:
                    raise DecompressionBombError(
                        p, f"image is {width}x{height} pixels, above the {MAX_IMAGE_PIXELS:,} limit"
                    )
                if width == 0 or height == 0:
                    raise EmptyInputError(p, f"image has zero size ({width}x{height})")
                img.load()
                oriented = ImageOps.exif_transpose(img)
    except (DecompressionBombError, EmptyInputError):
        raise
    except Image.DecompressionBombError as exc:
        raise DecompressionBombError(p, f"refused as a decompression bomb: {exc}") from exc
    except FileNotFoundError as exc:
        raise DecodeError(p, "file not found") from exc
    except UnidentifiedImageError as exc:
        raise DecodeError(p, "not an image Pillow can identify") from exc
    except (OSError, SyntaxError, ValueError) as exc:
        raise DecodeError(p, f"cannot decode image: {exc}") from exc
    return oriented


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
