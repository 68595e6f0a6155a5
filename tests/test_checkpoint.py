"""Converting reference checkpoints into per-modality safetensors files and loading them back."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch
from safetensors.torch import save_file
from torch import Tensor

from bindsearch.errors import WeightsError
from bindsearch.modality import MODALITIES
from bindsearch.models.checkpoint import (
    MANIFEST_NAME,
    convert_checkpoint,
    load_modality_state_dict,
    prepare_modality_weights,
    split_by_modality,
)

ALL = [m.value for m in MODALITIES]


def fake_state_dict() -> dict[str, Tensor]:
    """Reference-keyed tensors of all six towers with tiny shapes and a mix of dtypes."""
    gen = torch.Generator().manual_seed(0)
    widths = {"vision": 32, "text": 24, "audio": 16, "depth": 8, "thermal": 16, "imu": 8}
    state: dict[str, Tensor] = {}
    for m, d in widths.items():
        state[f"modality_preprocessors.{m}.cls_token"] = torch.randn(1, 1, d, generator=gen)
        state[f"modality_trunks.{m}.blocks.0.attn.in_proj_weight"] = torch.randn(
            3 * d, d, generator=gen
        )
        state[f"modality_trunks.{m}.blocks.0.norm_1.bias"] = torch.randn(d, generator=gen)
        state[f"modality_heads.{m}.0.weight"] = torch.randn(d, generator=gen)
        if m != "vision":
            state[f"modality_postprocessors.{m}.1.log_logit_scale"] = torch.tensor(float(d))
    state["modality_preprocessors.text.mask"] = torch.ones(5, 5).triu(1).bool()
    state["modality_preprocessors.text.token_ids"] = torch.arange(7, dtype=torch.int64)
    state["modality_heads.audio.2.weight"] = torch.randn(4, 16, generator=gen).to(torch.bfloat16)
    state["modality_preprocessors.imu.empty"] = torch.zeros(0, 3)
    return state


@pytest.fixture
def state() -> dict[str, Tensor]:
    return fake_state_dict()


@pytest.fixture
def pth(tmp_path: Path, state: dict[str, Tensor]) -> Path:
    path = tmp_path / "imagebind_fake.pth"
    torch.save(state, path)
    return path


def assert_same(loaded: dict[str, Tensor], expected: dict[str, Tensor]) -> None:
    assert sorted(loaded) == sorted(expected)
    for key, tensor in expected.items():
        assert loaded[key].dtype == tensor.dtype, key
        assert torch.equal(loaded[key], tensor), key


def test_convert_writes_one_file_per_modality_and_manifest(
    pth: Path, tmp_path: Path, state: dict[str, Tensor]
):
    out = tmp_path / "converted"
    written = convert_checkpoint(pth, out)
    assert list(written) == ALL
    assert sorted(p.name for p in out.iterdir()) == sorted(
        [f"{m}.safetensors" for m in ALL] + [MANIFEST_NAME]
    )
    manifest = json.loads((out / MANIFEST_NAME).read_text())
    assert sum(e["num_keys"] for e in manifest["modalities"].values()) == len(state)
    assert manifest["modalities"]["text"]["dtypes"] == {"float32": 5, "bool": 1, "int64": 1}
    assert manifest["source"]["size"] == pth.stat().st_size
    assert manifest["bindsearch_version"]


def test_roundtrip_is_exact(pth: Path, tmp_path: Path, state: dict[str, Tensor]):
    convert_checkpoint(pth, tmp_path / "converted")
    assert_same(load_modality_state_dict(tmp_path / "converted", ALL), state)


def test_loading_text_opens_only_the_text_file(pth: Path, tmp_path: Path, state: dict[str, Tensor]):
    out = tmp_path / "converted"
    convert_checkpoint(pth, out)
    for m in ALL:
        if m != "text":
            (out / f"{m}.safetensors").rename(out / f"{m}.moved")
    text = load_modality_state_dict(out, ["text"])
    assert_same(text, split_by_modality(state)["text"])
    with pytest.raises(WeightsError, match=r"vision\.safetensors is missing"):
        load_modality_state_dict(out, ["vision"])


def test_prepare_converts_once_and_reuses(pth: Path, tmp_path: Path, state: dict[str, Tensor]):
    cache = tmp_path / "cache"
    first = prepare_modality_weights(pth, cache)
    stamps = {p.name: p.stat().st_mtime_ns for p in first.iterdir()}
    second = prepare_modality_weights(pth, cache)
    assert second == first and second.parent == cache and second.name.startswith("imagebind_fake-")
    assert {p.name: p.stat().st_mtime_ns for p in second.iterdir()} == stamps
    assert_same(load_modality_state_dict(second, ALL), state)


def test_prepare_defaults_to_the_weights_dir(
    pth: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
):
    monkeypatch.setenv("BINDSEARCH_HOME", str(tmp_path / "home"))
    out = prepare_modality_weights(pth)
    assert out.parent == tmp_path / "home" / "weights" / "converted"


def test_interrupted_conversion_is_redone(pth: Path, tmp_path: Path, state: dict[str, Tensor]):
    out = prepare_modality_weights(pth, tmp_path / "cache")
    (out / MANIFEST_NAME).unlink()  # as if the process died before the manifest was written
    inode = (out / "vision.safetensors").stat().st_ino
    assert prepare_modality_weights(pth, tmp_path / "cache") == out
    assert (out / MANIFEST_NAME).is_file()
    assert (out / "vision.safetensors").stat().st_ino != inode
    assert_same(load_modality_state_dict(out, ALL), state)


def test_changed_source_gets_a_new_conversion(pth: Path, tmp_path: Path, state: dict[str, Tensor]):
    first = prepare_modality_weights(pth, tmp_path / "cache")
    state["modality_heads.text.0.weight"] = state["modality_heads.text.0.weight"] + 1
    torch.save(state, pth)
    second = prepare_modality_weights(pth, tmp_path / "cache")
    assert second != first
    assert_same(load_modality_state_dict(second, ["text"]), split_by_modality(state)["text"])


def test_unknown_key_is_rejected(tmp_path: Path, state: dict[str, Tensor]):
    state["logit_scale"] = torch.tensor(1.0)
    with pytest.raises(WeightsError, match="'logit_scale'"):
        split_by_modality(state)
    torch.save(state, tmp_path / "bad.pth")
    with pytest.raises(WeightsError, match="belong to no ImageBind modality"):
        convert_checkpoint(tmp_path / "bad.pth", tmp_path / "out")
    assert not (tmp_path / "out" / MANIFEST_NAME).exists()


def test_wrapped_and_data_parallel_checkpoints(tmp_path: Path, state: dict[str, Tensor]):
    torch.save(
        {"model": {f"module.{k}": v for k, v in state.items()}, "epoch": 3}, tmp_path / "w.pth"
    )
    out = prepare_modality_weights(tmp_path / "w.pth", tmp_path / "cache")
    assert_same(load_modality_state_dict(out, ALL), state)


def test_legacy_non_zip_checkpoint(tmp_path: Path, state: dict[str, Tensor]):
    torch.save(state, tmp_path / "old.pth", _use_new_zipfile_serialization=False)
    out = prepare_modality_weights(tmp_path / "old.pth", tmp_path / "cache")
    assert_same(load_modality_state_dict(out, ALL), state)


def test_flat_safetensors_file_and_converted_dir(tmp_path: Path, state: dict[str, Tensor]):
    save_file(state, tmp_path / "flat.safetensors")
    out = prepare_modality_weights(tmp_path / "flat.safetensors", tmp_path / "cache")
    assert_same(load_modality_state_dict(out, ALL), state)
    assert prepare_modality_weights(out) == out


def test_partial_checkpoint_has_only_its_towers(tmp_path: Path, state: dict[str, Tensor]):
    text_only = split_by_modality(state)["text"]
    torch.save(text_only, tmp_path / "text.pth")
    written = convert_checkpoint(tmp_path / "text.pth", tmp_path / "out")
    assert list(written) == ["text"]
    with pytest.raises(WeightsError, match="no audio tower"):
        load_modality_state_dict(tmp_path / "out", ["audio"])


def test_corrupt_inputs_raise_weights_error(pth: Path, tmp_path: Path):
    truncated = tmp_path / "truncated.pth"
    truncated.write_bytes(pth.read_bytes()[: pth.stat().st_size // 2])
    with pytest.raises(WeightsError, match="truncated, corrupt or not a PyTorch"):
        prepare_modality_weights(truncated, tmp_path / "cache")
    with pytest.raises(WeightsError, match="does not exist"):
        prepare_modality_weights(tmp_path / "absent.pth", tmp_path / "cache")
    with pytest.raises(WeightsError, match="without any"):
        prepare_modality_weights(tmp_path, tmp_path / "cache")
    out = prepare_modality_weights(pth, tmp_path / "cache")
    (out / "depth.safetensors").write_bytes(b"garbage")
    with pytest.raises(WeightsError, match="cannot read"):
        load_modality_state_dict(out, ["depth"])
