"""Depth, thermal and IMU preprocessing on generated files."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from bindsearch.errors import DecodeError, EmptyInputError, NonFiniteError, ShapeError
from bindsearch.preprocess.depth import DepthConfig, load_depth
from bindsearch.preprocess.imu import load_imu
from bindsearch.preprocess.thermal import load_thermal

KINECT = 0.075 * 518.8579  # default baseline (m) x focal (px)

# --------------------------------------------------------------------------- depth


def scene_m(height: int = 240, width: int = 320) -> np.ndarray:
    """A depth scene in metres: a 0.5-4.5 m ramp with a box at 1 m and a hole (0) of no data."""
    y, x = np.mgrid[0:height, 0:width]
    depth = 0.5 + 4.0 * x / (width - 1) + 0.2 * np.sin(y / 9)
    depth[60:120, 80:160] = 1.0
    depth[150:200, 200:260] = 0.0
    return np.round(depth * 1000) / 1000  # whole millimetres, so the PNG holds it exactly


def write_depth_png(path: Path, depth_m: np.ndarray) -> Path:
    Image.fromarray(np.round(depth_m * 1000).astype(np.uint16)).save(path)
    return path


def write_npy(path: Path, array: np.ndarray) -> Path:
    np.save(path, array)
    return path


def test_png_millimetres_and_npy_metres_agree(tmp_path: Path) -> None:
    depth = scene_m()
    from_png = load_depth(write_depth_png(tmp_path / "d.png", depth))
    from_npy = load_depth(write_npy(tmp_path / "d.npy", depth.astype(np.float32)))
    assert from_png.shape == (1, 224, 224) and from_png.dtype == torch.float32
    torch.testing.assert_close(from_png, from_npy, rtol=1e-5, atol=1e-5)
    hwc = load_depth(write_npy(tmp_path / "hwc.npy", depth[..., None].astype(np.float32)))
    torch.testing.assert_close(hwc, from_npy)


def test_disparity_values_and_clipping(tmp_path: Path) -> None:
    two_m = load_depth(write_npy(tmp_path / "c.npy", np.full((50, 80), 2.0)))
    torch.testing.assert_close(two_m, torch.full((1, 224, 224), KINECT / 2.0))
    near = load_depth(write_depth_png(tmp_path / "near.png", np.full((30, 30), 0.001)))  # 1 mm
    torch.testing.assert_close(near, torch.full_like(near, KINECT / 0.01))
    far = load_depth(write_npy(tmp_path / "far.npy", np.full((30, 30), 80.0)))
    torch.testing.assert_close(far, torch.full_like(far, KINECT / 50.0))
    realsense = load_depth(tmp_path / "c.npy", DepthConfig(baseline_m=0.095))
    torch.testing.assert_close(realsense, two_m * (0.095 / 0.075))


def test_invalid_pixels_become_zero_disparity(tmp_path: Path) -> None:
    depth = np.full((224, 448), 1.0)
    depth[:, :224] = 0.0  # left half: no data
    depth[0, 300] = -3.0  # negative in a .npy is invalid too
    out = load_depth(write_npy(tmp_path / "holes.npy", depth))[0]  # [224, 224] from x 112..336
    assert out.min() >= 0
    assert (out[:, :100] == 0).all()
    torch.testing.assert_close(out[1:, 120:], torch.full_like(out[1:, 120:], KINECT))
    with pytest.raises(EmptyInputError, match="no valid depth"):
        load_depth(write_depth_png(tmp_path / "zeros.png", np.zeros((40, 40))))


@pytest.mark.parametrize(
    "array",
    [
        np.ones((20, 30, 3), np.float32),  # RGB-like
        np.ones((1, 20, 30), np.float32),  # channel-first
        np.ones(30, np.float32),
        np.ones((20, 30), np.uint16),  # integers: millimetres belong in a PNG
    ],
    ids=["hw3", "1hw", "1d", "uint16"],
)
def test_depth_rejects_wrong_npy_layout(tmp_path: Path, array: np.ndarray) -> None:
    with pytest.raises(ShapeError, match="16-bit single-channel PNG in millimetres"):
        load_depth(write_npy(tmp_path / "bad.npy", array))


@pytest.mark.parametrize("mode", ["RGB", "L"])
def test_depth_rejects_8_bit_images(tmp_path: Path, mode: str) -> None:
    path = tmp_path / f"{mode}.png"
    Image.new(mode, (40, 30), 100).save(path)
    with pytest.raises(ShapeError, match=f"16-bit single-channel PNG.*8-bit {mode}"):
        load_depth(path)


@pytest.mark.parametrize("bad", [np.nan, np.inf])
def test_depth_rejects_non_finite(tmp_path: Path, bad: float) -> None:
    depth = np.ones((20, 20), np.float32)
    depth[3, 4] = bad
    with pytest.raises(NonFiniteError):
        load_depth(write_npy(tmp_path / "nan.npy", depth))


def test_depth_unreadable_and_empty(tmp_path: Path) -> None:
    with pytest.raises(EmptyInputError):
        load_depth(write_npy(tmp_path / "empty.npy", np.zeros((0, 5), np.float32)))
    (tmp_path / "junk.png").write_bytes(b"not a png at all")
    (tmp_path / "junk.npy").write_bytes(b"not a npy at all")
    for path in [tmp_path / "junk.png", tmp_path / "junk.npy", tmp_path / "missing.npy"]:
        with pytest.raises(DecodeError):
            load_depth(path)


def test_depth_portrait_shape(tmp_path: Path) -> None:
    out = load_depth(write_depth_png(tmp_path / "tall.png", scene_m(320, 100)))
    assert out.shape == (1, 224, 224) and torch.isfinite(out).all()
    assert out.min() >= 0  # bilinear resizing across holes does not overshoot below 0


# --------------------------------------------------------------------------- thermal


def thermal_pattern(height: int = 240, width: int = 320) -> np.ndarray:
    """uint8 [H, W]: a warm blob on a gradient."""
    y, x = np.mgrid[0:height, 0:width]
    blob = 180 * np.exp(-((x - 200) ** 2 + (y - 100) ** 2) / 900)
    return np.clip(40 + 0.2 * x + blob, 0, 255).astype(np.uint8)


def pil_expected(grey: np.ndarray) -> torch.Tensor:
    """Independent pipeline with Pillow calls: bicubic short side 224, centre crop, / 255."""
    h, w = grey.shape
    size = (int(224 * w / h), 224) if w >= h else (224, int(224 * h / w))
    resized = np.asarray(Image.fromarray(grey).resize(size, Image.Resampling.BICUBIC))
    top, left = round((resized.shape[0] - 224) / 2), round((resized.shape[1] - 224) / 2)
    crop = resized[top : top + 224, left : left + 224]
    return torch.from_numpy(crop.astype(np.float32) / 255)[None]


def test_thermal_8_bit_grey(tmp_path: Path) -> None:
    grey = thermal_pattern()
    path = tmp_path / "t.png"
    Image.fromarray(grey).save(path)
    out = load_thermal(path)
    assert out.shape == (1, 224, 224) and out.dtype == torch.float32
    torch.testing.assert_close(out, pil_expected(grey), atol=1e-6, rtol=0)  # no Normalize
    rgb = tmp_path / "t_rgb.png"
    Image.fromarray(np.repeat(grey[..., None], 3, axis=-1)).save(rgb)
    torch.testing.assert_close(load_thermal(rgb), out)


def test_thermal_16_bit_is_stretched(tmp_path: Path) -> None:
    grey = thermal_pattern()
    counts = 7000 + (grey.astype(np.uint16) - grey.min())  # raw counts in a narrow band
    path16 = tmp_path / "t16.png"
    Image.fromarray(counts.astype(np.uint16)).save(path16)
    span = float(grey.max() - grey.min())
    stretched = np.round((grey.astype(np.float64) - grey.min()) * 255 / span).astype(np.uint8)
    torch.testing.assert_close(load_thermal(path16), pil_expected(stretched), atol=1e-6, rtol=0)
    flat = tmp_path / "flat16.png"
    Image.fromarray(np.full((50, 60), 9000, np.uint16)).save(flat)
    assert (load_thermal(flat) == 0).all()


def test_thermal_unreadable(tmp_path: Path) -> None:
    (tmp_path / "x.png").write_bytes(b"\x89PNG broken")
    with pytest.raises(DecodeError):
        load_thermal(tmp_path / "x.png")


# --------------------------------------------------------------------------- IMU


def imu_at(t_s: np.ndarray) -> np.ndarray:
    """float64 [6, len(t_s)]: slow sinusoids, one per channel."""
    return np.stack([np.sin(2 * np.pi * (0.2 + 0.1 * c) * t_s + c) for c in range(6)])


def imu_signal(steps: int) -> np.ndarray:
    """float64 [6, T]: ``imu_at`` sampled ``steps`` times over 5 s."""
    return imu_at(np.arange(steps) * 5.0 / steps)


def write_csv(path: Path, rows: np.ndarray, header: str | None = None, sep: str = ",") -> Path:
    lines = [] if header is None else [header]
    lines += [sep.join(repr(float(v)) for v in row) for row in rows]
    path.write_text("\n".join(lines) + "\n")
    return path


def test_imu_csv_exact_passthrough(tmp_path: Path) -> None:
    data = imu_signal(2000).astype(np.float32)
    path = write_csv(tmp_path / "imu.csv", data.T, header="ax,ay,az,gx,gy,gz")
    out = load_imu(path)
    assert out.shape == (6, 2000) and out.dtype == torch.float32
    assert torch.equal(out, torch.from_numpy(data))


def test_imu_csv_timestamp_column_is_dropped(tmp_path: Path) -> None:
    data = imu_signal(2000).astype(np.float32)
    stamps = 1.7e9 + np.arange(2000) / 400.0
    path = write_csv(tmp_path / "ts.csv", np.column_stack([stamps, data.T]), header="t,a,b,c,d,e,f")
    assert torch.equal(load_imu(path), torch.from_numpy(data))
    not_time = np.column_stack([np.sin(np.arange(2000)), data.T])
    with pytest.raises(ShapeError, match="timestamp"):
        load_imu(write_csv(tmp_path / "seven.csv", not_time))


@pytest.mark.parametrize("sep", [";", "\t", " "])
def test_imu_csv_other_delimiters(tmp_path: Path, sep: str) -> None:
    data = imu_signal(2000).astype(np.float32)
    assert torch.equal(load_imu(write_csv(tmp_path / "s.txt", data.T, sep=sep)), torch.tensor(data))


def test_imu_npy_both_layouts(tmp_path: Path) -> None:
    data = imu_signal(2000).astype(np.float32)
    channels_first = load_imu(write_npy(tmp_path / "cf.npy", data))
    assert torch.equal(channels_first, torch.from_numpy(data))
    assert torch.equal(load_imu(write_npy(tmp_path / "tf.npy", data.T.copy())), channels_first)


@pytest.mark.parametrize("steps", [500, 1000, 3000, 8000])
def test_imu_resampled_to_2000(tmp_path: Path, steps: int) -> None:
    out = load_imu(write_npy(tmp_path / "r.npy", imu_signal(steps)))
    assert out.shape == (6, 2000)
    # Half-sample-centred resampling: output j sits at source time 5 (j + 0.5) / 2000 - 2.5 / T.
    t_s = 5.0 * (np.arange(2000) + 0.5) / 2000 - 2.5 / steps
    expected = torch.from_numpy(imu_at(t_s)).float()
    torch.testing.assert_close(out[:, 10:-10], expected[:, 10:-10], atol=2e-3, rtol=0)
    constant = load_imu(write_npy(tmp_path / "c.npy", np.full((6, steps), 9.81)))
    torch.testing.assert_close(constant, torch.full((6, 2000), 9.81))


def test_imu_rejects_bad_files(tmp_path: Path) -> None:
    five = imu_signal(100)[:5].T
    with pytest.raises(ShapeError, match="expected 6 columns"):
        load_imu(write_csv(tmp_path / "five.csv", five))
    with pytest.raises(ShapeError):
        load_imu(write_npy(tmp_path / "five.npy", five))
    with pytest.raises(ShapeError):
        load_imu(write_npy(tmp_path / "flat.npy", np.zeros(6)))
    (tmp_path / "ragged.csv").write_text("1,2,3,4,5,6\n1,2,3\n")
    with pytest.raises(ShapeError, match="different numbers of columns"):
        load_imu(tmp_path / "ragged.csv")
    (tmp_path / "text.csv").write_text("ax,ay,az,gx,gy,gz\n1,2,3,4,5,6\n1,2,oops,4,5,6\n")
    with pytest.raises(DecodeError, match="non-numeric value 'oops'"):
        load_imu(tmp_path / "text.csv")
    (tmp_path / "prose.txt").write_text("This is not\nan IMU recording at all.\n")
    with pytest.raises(DecodeError):
        load_imu(tmp_path / "prose.txt")


def test_imu_non_finite_and_empty(tmp_path: Path) -> None:
    (tmp_path / "nan.csv").write_text("1,2,3,4,5,6\n1,2,nan,4,5,6\n")
    with pytest.raises(NonFiniteError):
        load_imu(tmp_path / "nan.csv")
    data = imu_signal(100)
    data[2, 7] = np.inf
    with pytest.raises(NonFiniteError):
        load_imu(write_npy(tmp_path / "inf.npy", data))
    for name, text in [("empty.csv", ""), ("blank.csv", "\n\n"), ("header.csv", "a,b,c,d,e,f\n")]:
        (tmp_path / name).write_text(text)
        with pytest.raises(EmptyInputError):
            load_imu(tmp_path / name)
    with pytest.raises(EmptyInputError):
        load_imu(write_npy(tmp_path / "none.npy", np.zeros((6, 0))))
    with pytest.raises(DecodeError):
        load_imu(tmp_path / "missing.csv")
