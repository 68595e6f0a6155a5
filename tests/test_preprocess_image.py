"""Image preprocessing: formats and modes, EXIF, failures, and parity with the reference."""

from __future__ import annotations

from pathlib import Path

import media
import numpy as np
import pytest
import torch
from PIL import Image
from reference import import_reference

from bindsearch.errors import DecodeError, DecompressionBombError, NonFiniteError
from bindsearch.preprocess.common import CLIP_MEAN, CLIP_STD
from bindsearch.preprocess.image import (
    convert_to_rgb,
    image_transform,
    load_image,
    load_image_with_size,
)


def _unnormalise(tensor: torch.Tensor) -> torch.Tensor:
    """``[3, H, W]`` normalised -> pixel values in [0, 1]."""
    mean = torch.tensor(CLIP_MEAN).view(3, 1, 1)
    std = torch.tensor(CLIP_STD).view(3, 1, 1)
    return tensor * std + mean


# (file name, Pillow mode written, extra save args)
FORMATS = [
    ("rgb.jpg", "RGB", {"quality": 90}),
    ("rgb.png", "RGB", {}),
    ("rgba.png", "RGBA", {}),
    ("cmyk.jpg", "CMYK", {}),
    ("gray.png", "L", {}),
    ("gray_alpha.png", "LA", {}),
    ("palette.png", "P", {}),
    ("lossless.webp", "RGB", {"lossless": True}),
    ("plain.bmp", "RGB", {}),
    ("plain.tiff", "RGB", {}),
]


@pytest.mark.parametrize(("name", "mode", "save"), FORMATS, ids=[f[0] for f in FORMATS])
def test_formats_and_modes_decode_to_normalised_rgb(tmp_path: Path, name, mode, save) -> None:
    path = media.write_image(tmp_path / name, 173, 91, mode, **save)
    tensor, size_px = load_image_with_size(path)
    assert tensor.shape == (3, 224, 224) and tensor.dtype == torch.float32
    assert size_px == (173, 91)
    pixels = _unnormalise(tensor)
    assert pixels.min() > -1e-3 and pixels.max() < 1 + 1e-3
    if mode in ("L", "LA"):  # grey stays grey in all three channels
        assert torch.allclose(pixels[0], pixels[1], atol=1e-5)
        assert torch.allclose(pixels[1], pixels[2], atol=1e-5)


REFERENCE_CASES = [
    ("wide.jpg", 301, 199, "RGB"),
    ("tall.png", 199, 301, "RGB"),
    ("square.png", 224, 224, "RGB"),
    ("odd_tall.jpg", 225, 1001, "RGB"),
    ("small_upscaled.png", 97, 61, "RGB"),
    ("rgba.png", 250, 180, "RGBA"),
    ("cmyk.jpg", 180, 250, "CMYK"),
    ("gray.png", 333, 222, "L"),
    ("palette.png", 260, 230, "P"),
]


def test_parity_with_reference_loader(tmp_path: Path) -> None:
    data = import_reference()
    for seed, (name, width, height, mode) in enumerate(REFERENCE_CASES):
        path = media.write_image(tmp_path / name, width, height, mode, seed=seed)
        expected = data.load_and_transform_vision_data([str(path)], "cpu")[0]
        actual = load_image(path)
        assert torch.allclose(actual, expected, atol=1e-6, rtol=0), name


def test_image_transform_of_in_memory_image_equals_file_path(tmp_path: Path) -> None:
    path = media.write_image(tmp_path / "x.png", 150, 260)
    with Image.open(path) as image:
        in_memory = image_transform(image)
    assert torch.equal(in_memory, load_image(path))


def test_sixteen_bit_grayscale_is_scaled_not_clipped(tmp_path: Path) -> None:
    path, values = media.write_gray16_png(tmp_path / "g16.png", 240, 230)
    with Image.open(path) as image:
        assert image.mode.startswith("I")
    expected_8bit = Image.fromarray(((values.astype(np.uint32) + 128) // 257).astype(np.uint8))
    assert torch.equal(load_image(path), image_transform(expected_8bit))
    # Pillow's plain convert("RGB") would clip all but the darkest pixels to white.
    assert abs(float(_unnormalise(load_image(path)).mean()) - 0.5) < 0.05


def test_float_image_with_nan_is_rejected(tmp_path: Path) -> None:
    values = np.linspace(0, 1, 64 * 64, dtype=np.float32).reshape(64, 64)
    values[3, 5] = np.nan
    path = tmp_path / "nan.tiff"
    Image.fromarray(values).save(path)
    with pytest.raises(NonFiniteError):
        load_image(path)


def test_float_image_in_unit_range_maps_to_8bit() -> None:
    values = np.linspace(0, 1, 32 * 32, dtype=np.float32).reshape(32, 32)
    rgb = convert_to_rgb(Image.fromarray(values))
    assert rgb.mode == "RGB"
    assert np.array_equal(np.asarray(rgb)[..., 0], np.round(values * 255).astype(np.uint8))


def test_palette_gif_with_transparency(tmp_path: Path) -> None:
    path = media.write_palette_gif_with_transparency(tmp_path / "t.gif", 120, 80)
    tensor, size_px = load_image_with_size(path)
    assert size_px == (120, 80) and torch.isfinite(tensor).all()
    with Image.open(path) as image:
        assert "transparency" in image.info
        assert torch.equal(tensor, image_transform(image.convert("RGB")))


def test_exif_orientation_is_applied(tmp_path: Path) -> None:
    path = media.write_exif_rotated_jpeg(tmp_path / "rot.jpg", 160, 90, orientation=6)
    tensor, size_px = load_image_with_size(path)
    assert size_px == (90, 160)  # upright: the stored landscape pixels are displayed portrait
    with Image.open(path) as stored:  # raw pixels, orientation ignored
        upright = stored.transpose(Image.Transpose.ROTATE_270)  # tag 6 = rotate 90 deg clockwise
        assert torch.equal(tensor, image_transform(upright))
        assert not torch.equal(tensor, image_transform(stored))


def test_truncated_jpeg_is_a_decode_error(tmp_path: Path) -> None:
    path = media.write_image(tmp_path / "full.jpg", 200, 150)
    truncated = tmp_path / "truncated.jpg"
    truncated.write_bytes(path.read_bytes()[: path.stat().st_size // 2])
    with pytest.raises(DecodeError):
        load_image(truncated)


@pytest.mark.parametrize(
    ("name", "content"),
    [("empty.png", b""), ("garbage.jpg", bytes(range(256)) * 8), ("text.png", b"not an image\n")],
)
def test_unreadable_files_are_decode_errors(tmp_path: Path, name: str, content: bytes) -> None:
    path = tmp_path / name
    path.write_bytes(content)
    with pytest.raises(DecodeError) as info:
        load_image(path)
    assert info.value.path == str(path)


def test_missing_file_is_a_decode_error(tmp_path: Path) -> None:
    with pytest.raises(DecodeError):
        load_image(tmp_path / "absent.png")


def test_decompression_bomb_is_refused(tmp_path: Path) -> None:
    path = media.write_png_with_declared_size(tmp_path / "bomb.png", 20000, 20000)
    assert path.stat().st_size < 200
    with pytest.raises(DecompressionBombError):
        load_image(path)


# --------------------------------------------------------------------------- exact vs reduced

#: Tolerance of the default (reduced JPEG decoding) path against the exact one, on textured
#: content with pixel noise (a worst case); benchmarks/ingest.py measures the same figures.
REDUCED_MAX_ABS = 0.15
REDUCED_MEAN_ABS = 0.025


@pytest.mark.parametrize(("width", "height"), [(1920, 1080), (1000, 1800), (3600, 2700)])
def test_large_jpeg_default_is_reduced_within_tolerance(tmp_path: Path, width, height) -> None:
    path = media.write_image(tmp_path / "photo.jpg", width, height, quality=90)
    data = import_reference()
    expected = data.load_and_transform_vision_data([str(path)], "cpu")[0]
    exact, exact_size = load_image_with_size(path, exact=True)
    fast, fast_size = load_image_with_size(path)
    assert torch.equal(exact, expected)  # the exact path is the reference's, bit for bit
    assert exact_size == fast_size == (width, height)  # the file's size, not the decoded one
    assert not torch.equal(fast, exact)  # decoded at reduced scale
    diff = (fast - exact).abs()
    assert diff.max().item() <= REDUCED_MAX_ABS
    assert diff.mean().item() <= REDUCED_MEAN_ABS


@pytest.mark.parametrize(
    ("name", "width", "height"),
    [("just_below.jpg", 1200, 895), ("small.jpg", 640, 480), ("big.png", 1920, 1080)],
)
def test_default_is_exact_for_small_jpegs_and_other_formats(tmp_path: Path, name, width, height):
    path = media.write_image(tmp_path / name, width, height)
    assert torch.equal(load_image(path), load_image(path, exact=True))


def test_environment_variable_selects_the_exact_path(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    path = media.write_image(tmp_path / "photo.jpg", 1800, 1000, quality=90)
    exact = load_image(path, exact=True)
    monkeypatch.setenv("BINDSEARCH_IMAGE_EXACT", "1")
    assert torch.equal(load_image(path), exact)
    assert not torch.equal(load_image(path, exact=False), exact)  # the argument wins
    monkeypatch.setenv("BINDSEARCH_IMAGE_EXACT", "0")
    assert not torch.equal(load_image(path), exact)


def test_rotated_large_jpeg_reports_upright_file_size(tmp_path: Path) -> None:
    path = media.write_exif_rotated_jpeg(tmp_path / "rot.jpg", 1800, 1000, orientation=6)
    fast, size_px = load_image_with_size(path)
    exact, exact_size = load_image_with_size(path, exact=True)
    assert size_px == exact_size == (1000, 1800)
    assert (fast - exact).abs().mean().item() <= REDUCED_MEAN_ABS


def test_animated_gif_first_frame_and_file_closed(tmp_path: Path) -> None:
    frames = [Image.fromarray(media.textured_rgb(120, 80, seed)) for seed in range(3)]
    path = tmp_path / "anim.gif"
    frames[0].save(path, save_all=True, append_images=frames[1:], duration=50)
    with Image.open(path) as image:
        expected = image_transform(image.convert("RGB"))
    tensor, size_px = load_image_with_size(path)
    assert size_px == (120, 80) and torch.equal(tensor, expected)
