"""Encoder API: unit-norm float32 contract, batching, lazy towers, weights from a checkpoint."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from media import write_image

from bindsearch import create_encoder
from bindsearch.errors import DecodeError, WeightsError
from bindsearch.modality import Modality
from bindsearch.models import create_model
from bindsearch.preprocess.image import load_image
from bindsearch.preprocess.text import tokenize


@pytest.fixture(scope="module")
def encoder():
    return create_encoder("imagebind-tiny", device="cpu")


def _assert_unit_float32(vectors: np.ndarray, n: int, dim: int = 64) -> None:
    assert vectors.dtype == np.float32
    assert vectors.shape == (n, dim)
    assert np.isfinite(vectors).all()
    np.testing.assert_allclose(np.linalg.norm(vectors, axis=1), 1.0, atol=1e-5)


def test_text_vectors_unit_norm_and_batch_independent(encoder):
    texts = ["a dog", "a car", "rain on a tin roof", "a dog"]
    whole = encoder.encode("text", texts)
    _assert_unit_float32(whole, 4)
    one_by_one = encoder.encode("text", texts, batch_size=1)
    np.testing.assert_allclose(whole, one_by_one, atol=1e-5)
    np.testing.assert_array_equal(whole[0], whole[3])
    assert not np.allclose(whole[0], whole[1])
    assert encoder.encode("text", []).shape == (0, 64)


def test_lazy_towers_only_load_what_is_used():
    enc = create_encoder("imagebind-tiny", device="cpu")
    assert enc.loaded_modalities == ()
    enc.encode("text", ["hello"])
    assert enc.loaded_modalities == (Modality.TEXT,)


def test_image_files_match_model_on_loaded_tensor(encoder, tmp_path):
    paths = [write_image(tmp_path / f"im{i}.png", 64 + 16 * i, 48, seed=i) for i in range(3)]
    vectors = encoder.encode("image", paths, batch_size=2)
    _assert_unit_float32(vectors, 3)
    model = create_model("imagebind-tiny", modalities=["vision"])
    with torch.inference_mode():
        expected = model.embed("vision", torch.stack([load_image(p) for p in paths]))
    np.testing.assert_allclose(vectors, expected.numpy(), atol=1e-5)
    # "vision" is the tower name and means images too; a PIL image is accepted in memory.
    from PIL import Image

    with Image.open(paths[0]) as im:
        np.testing.assert_allclose(encoder.encode("vision", [im.copy()])[0], vectors[0], atol=1e-5)


def test_tensors_in_model_layout_and_text_files(encoder, tmp_path):
    imu = torch.randn(2, 6, 2000, generator=torch.Generator().manual_seed(0))
    _assert_unit_float32(encoder.encode("imu", list(imu)), 2)
    note = tmp_path / "note.txt"
    note.write_text("A dog.\n", encoding="utf-8")
    from_file = encoder.encode("text", [note])
    np.testing.assert_allclose(from_file, encoder.encode("text", ["A dog."]), atol=1e-6)
    assert tokenize("A dog.")[0, :5].tolist() == [49406, 320, 1929, 269, 49407]


def test_bad_file_raises_input_error_naming_it(encoder, tmp_path):
    broken = tmp_path / "broken.png"
    broken.write_bytes(b"\x89PNG\r\n\x1a\n not really")
    with pytest.raises(DecodeError) as info:
        encoder.encode("image", [broken])
    assert info.value.path == str(broken)


def test_encoder_from_checkpoint_reads_only_needed_tower(tmp_path):
    other = create_model("imagebind-tiny")
    with torch.no_grad():  # different weights from the seeded init
        for p in other.parameters():
            p.add_(0.1)
    ckpt = tmp_path / "tiny.pth"
    torch.save(other.state_dict(), ckpt)
    enc = create_encoder("imagebind-tiny", weights=ckpt, device="cpu")
    assert enc.source.directory is not None
    assert enc.weights_id.startswith("sha256:") and len(enc.weights_id) == 7 + 64
    (enc.source.directory / "vision.safetensors").unlink()  # text must not need it
    got = enc.encode("text", ["a bird"])
    with torch.inference_mode():
        expected = other.embed("text", tokenize(["a bird"])).numpy()
    np.testing.assert_allclose(got, expected, atol=1e-5)
    with pytest.raises(WeightsError, match="vision.safetensors"):
        enc.encode("image", [torch.zeros(3, 224, 224)])
    random_init = create_encoder("imagebind-tiny", device="cpu")
    assert random_init.weights_id == "random-init"
    assert not np.allclose(random_init.encode("text", ["a bird"]), got)


def test_huge_without_weights_and_no_download_explains_the_fix():
    with pytest.raises(WeightsError, match="BINDSEARCH_WEIGHTS"):
        create_encoder("imagebind-huge", download=False)
