"""IMU recordings -> ImageBind IMU input ``[6, 2000]``.

The reference ships no IMU loader; the paper uses accelerometer xyz + gyroscope xyz over 5-s
windows of 2,000 steps (400 Hz) (spec section 3.5). Values are passed through in their own
units (no normalisation is published).

Accepted files:

* CSV (any suffix but ``.npy``): 6 numeric columns in the order accel x, y, z, gyro x, y, z;
  an optional header row (any non-numeric cell in the first row marks it as a header);
  delimiter ``,`` ``;`` tab or whitespace. 7 columns are accepted when the first is a timestamp:
  it must be strictly increasing and is dropped (a 7th column that is not monotonic is rejected
  rather than guessed at).
* ``.npy``: ``[6, T]``, or ``[T, 6]`` (transposed; ``[6, 6]`` is read as ``[6, T]``).

Length rule: **always resample linearly to 2,000 steps** (half-pixel-centred, antialiased when
shrinking; ``T = 2000`` passes through unchanged). A file is treated as one window, as the
model saw 5-s windows whatever their sampling rate; this keeps the whole recording (a crop
would drop data, zero padding would add "motionless" steps the model never saw). Long
recordings should be split into windows before loading.
"""

from __future__ import annotations

import logging
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

from bindsearch.errors import DecodeError, EmptyInputError, ShapeError
from bindsearch.preprocess.common import check_finite, load_npy

logger = logging.getLogger(__name__)

__all__ = ["IMU_CHANNELS", "IMU_STEPS", "load_imu", "resample_imu"]

IMU_CHANNELS = 6
IMU_STEPS = 2000

_LAYOUT = "accel x, y, z, gyro x, y, z"


def load_imu(path: str | Path) -> torch.Tensor:
    """Load an IMU recording as float32 ``[6, 2000]``.

    Raises:
        DecodeError: unreadable file or non-numeric values.
        ShapeError: wrong number of channels/columns, ragged rows.
        NonFiniteError: NaN or infinite values.
        EmptyInputError: no samples.
    """
    path = Path(path)
    data = _read_npy(path) if path.suffix.lower() == ".npy" else _read_csv(path)  # [6, T]
    check_finite(data, path, "IMU samples")
    return resample_imu(torch.from_numpy(data.astype(np.float32)))


def resample_imu(data: torch.Tensor, steps: int = IMU_STEPS) -> torch.Tensor:
    """[C, T] -> [C, steps] by linear interpolation (antialiased when T > steps)."""
    if data.shape[-1] == steps:
        return data.clone()
    x = data[None, :, None, :]  # [1, C, 1, T]: bilinear over a height-1 image is linear in T
    x = F.interpolate(x, size=(1, steps), mode="bilinear", align_corners=False, antialias=True)
    return x[0, :, 0, :]


def _read_npy(path: Path) -> np.ndarray:
    """``.npy`` [6, T] or [T, 6] -> float64 [6, T]."""
    array = load_npy(path)
    if not (np.issubdtype(array.dtype, np.number) and not np.iscomplexobj(array)):
        raise DecodeError(path, f"IMU array must be real numbers, got dtype {array.dtype}")
    if array.ndim != 2 or IMU_CHANNELS not in array.shape:
        raise ShapeError(
            path, f"IMU array must be [6, T] or [T, 6] ({_LAYOUT}); got {list(array.shape)}"
        )
    if array.shape[0] != IMU_CHANNELS:
        array = array.T
    if array.shape[1] == 0:
        raise EmptyInputError(path, "IMU array has no samples")
    return array.astype(np.float64)


def _read_csv(path: Path) -> np.ndarray:
    """CSV text -> float64 [6, T] (see the module docstring for the accepted layouts)."""
    rows = _split_rows(path)
    if rows and not _is_numeric_row(rows[0]):
        rows = rows[1:]  # header
    if not rows:
        raise EmptyInputError(path, "CSV has no data rows")
    parsed = [[_parse_cell(path, n, c) for c in r] for n, r in enumerate(rows)]
    widths = {len(r) for r in parsed}
    if len(widths) != 1:
        raise ShapeError(path, f"CSV rows have different numbers of columns: {sorted(widths)}")
    table = np.array(parsed, dtype=np.float64)  # [T, C]
    columns = table.shape[1]
    if columns == IMU_CHANNELS + 1:
        if table.shape[0] > 1 and not (np.diff(table[:, 0]) > 0).all():
            raise ShapeError(
                path,
                "7 columns, but the first is not a strictly increasing timestamp; "
                f"expected 6 columns ({_LAYOUT}), optionally after a timestamp column",
            )
        table = table[:, 1:]
    elif columns != IMU_CHANNELS:
        raise ShapeError(
            path, f"expected 6 columns ({_LAYOUT}), optionally after a timestamp; got {columns}"
        )
    return table.T


def _split_rows(path: Path) -> list[list[str]]:
    """Non-blank lines split on the delimiter the first line uses."""
    try:
        text = path.read_text(encoding="utf-8-sig")
    except FileNotFoundError as exc:
        raise DecodeError(path, "file not found") from exc
    except (OSError, UnicodeDecodeError) as exc:
        raise DecodeError(path, f"cannot read as UTF-8 text: {exc}") from exc
    lines = [line.strip() for line in text.splitlines() if line.strip()]
    if not lines:
        raise EmptyInputError(path, "file has no text")
    delimiter = next((d for d in (",", ";", "\t") if d in lines[0]), None)
    return [[cell.strip() for cell in line.split(delimiter)] for line in lines]


def _is_numeric_row(cells: list[str]) -> bool:
    try:
        [float(c) for c in cells]
    except ValueError:
        return False
    return True


def _parse_cell(path: Path, row: int, cell: str) -> float:
    try:
        return float(cell)
    except ValueError:
        raise DecodeError(path, f"data row {row + 1}: non-numeric value {cell!r}") from None
