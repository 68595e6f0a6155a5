"""Model architecture: parity with the reference, key layout, strict loading, registry."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F
from reference import import_reference_model, reference_and_ours

from bindsearch.errors import ConfigError, ShapeError, UnknownModelError, WeightsError
from bindsearch.modality import MODALITIES
from bindsearch.models import (
    ImageBindConfig,
    convert_reference_state_dict,
    create_model,
    get_model_entry,
    list_models,
)

# Small but complete: every tower, several heads, bias_kv, causal text, drop-path schedules.
SMALL = {
    "out_embed_dim": 48,
    "vision_embed_dim": 64, "vision_num_blocks": 2, "vision_num_heads": 4,
    "text_embed_dim": 64, "text_num_blocks": 2, "text_num_heads": 4,
    "audio_embed_dim": 32, "audio_num_blocks": 2, "audio_num_heads": 2,
    "depth_embed_dim": 32, "depth_num_blocks": 2, "depth_num_heads": 2,
    "thermal_embed_dim": 32, "thermal_num_blocks": 2, "thermal_num_heads": 2,
    "imu_embed_dim": 32, "imu_num_blocks": 2, "imu_num_heads": 2,
}  # fmt: skip


def _inputs(batch: int = 2) -> dict[str, torch.Tensor]:
    g = torch.Generator().manual_seed(1)
    ids = torch.randint(1, 49000, (batch, 77), generator=g)
    ids[0, 9:] = 0
    ids[0, 8] = 49407  # short text: EOT then zero padding
    ids[1, 76] = 49407  # full-length text
    return {
        "vision": torch.randn(batch, 3, 224, 224, generator=g),
        "text": ids,
        "audio": torch.randn(batch, 3, 1, 128, 204, generator=g),
        "depth": torch.randn(batch, 1, 224, 224, generator=g),
        "thermal": torch.randn(batch, 1, 224, 224, generator=g),
        "imu": torch.randn(batch, 6, 2000, generator=g),
    }


def _rel(a: torch.Tensor, b: torch.Tensor) -> float:
    return float(((a - b).norm(dim=-1) / b.norm(dim=-1)).max())


@pytest.fixture(scope="module")
def reference_pair():
    return reference_and_ours(SMALL)


@pytest.mark.parametrize("modality", [m.value for m in MODALITIES])
def test_parity_with_reference_every_modality(reference_pair, modality):
    reference, ours = reference_pair
    x = _inputs()[modality]
    with torch.inference_mode():
        expected = F.normalize(reference({modality: x})[modality], dim=-1)
        got = ours.embed(modality, x)
    assert got.shape == expected.shape
    assert _rel(got, expected) <= 1e-5


def test_parity_with_reference_multiclip_video(reference_pair):
    reference, ours = reference_pair
    video = torch.randn(2, 5, 3, 2, 224, 224, generator=torch.Generator().manual_seed(2))
    with torch.inference_mode():
        expected = F.normalize(reference({"vision": video})["vision"], dim=-1)
        got = ours.embed("vision", video)
        single_clip = ours.embed("vision", video[:, 0])  # [B, 3, 2, H, W]
        ref_single = F.normalize(reference({"vision": video[:, :1]})["vision"], dim=-1)
    assert _rel(got, expected) <= 1e-5
    assert _rel(single_clip, ref_single) <= 1e-5


def test_image_equals_two_identical_frames(reference_pair):
    _, ours = reference_pair
    image = _inputs()["vision"]
    clip = image.unsqueeze(2).expand(-1, -1, 2, -1, -1)
    with torch.inference_mode():
        assert _rel(ours.embed("vision", image), ours.embed("vision", clip)) <= 1e-5


def test_logit_scales_match_reference(reference_pair):
    _, ours = reference_pair
    assert ours.logit_scale("vision") == 1.0
    assert ours.logit_scale("audio") == pytest.approx(20.0)
    assert ours.logit_scale("depth") == pytest.approx(5.0)
    assert ours.logit_scale("thermal") == pytest.approx(10.0)
    assert ours.logit_scale("imu") == pytest.approx(5.0)
    assert ours.logit_scale("text") == pytest.approx(1 / 0.07, rel=1e-5)


def test_huge_keys_and_shapes_equal_reference():
    """Full-size key set without allocating: ours on the meta device vs the spec'd reference."""
    ref_module = import_reference_model()
    with torch.device("meta"):
        from bindsearch.models import ImageBindModel

        ours = ImageBindModel(get_model_entry("imagebind-huge").config)
    ref_small = ref_module.ImageBindModel(**SMALL)  # same code path as huge, cheap to build
    ours_sd = ours.state_dict()
    assert len(ours_sd) == 1311
    assert sum(v.numel() for v in ours_sd.values()) == 1_200_786_990
    ours_small = create_model(ImageBindConfig.from_reference(**SMALL))
    assert list(ours_small.state_dict()) == list(ref_small.state_dict())
    expected_shapes = {
        "modality_preprocessors.vision.rgbt_stem.proj.1.weight": (1280, 3, 2, 14, 14),
        "modality_preprocessors.vision.pos_embedding_helper.pos_embed": (1, 257, 1280),
        "modality_preprocessors.text.mask": (77, 77),
        "modality_preprocessors.audio.pos_embedding_helper.pos_embed": (1, 229, 768),
        "modality_preprocessors.imu.imu_stem.proj.weight": (512, 48),
        "modality_trunks.vision.pre_transformer_layer.0.weight": (1280,),
        "modality_trunks.audio.blocks.11.attn.bias_k": (1, 1, 768),
        "modality_trunks.text.blocks.23.mlp.fc1.weight": (4096, 1024),
        "modality_heads.text.proj.1.weight": (1024, 1024),
        "modality_heads.imu.3.weight": (1024, 512),
        "modality_postprocessors.text.1.log_logit_scale": (),
    }
    for key, shape in expected_shapes.items():
        assert tuple(ours_sd[key].shape) == shape, key


def _full_size_checkpoint() -> dict[str, torch.Tensor]:
    """Every huge key at full shape, stored as 1-element expanded tensors (tiny on disk)."""
    with torch.device("meta"):
        from bindsearch.models import ImageBindModel

        meta = ImageBindModel(get_model_entry("imagebind-huge").config)
    return {k: torch.zeros(()).expand(v.shape) for k, v in meta.state_dict().items()}


def test_strict_load_of_generated_full_size_checkpoint(tmp_path):
    sd = _full_size_checkpoint()
    path = tmp_path / "imagebind_huge.pth"
    torch.save(sd, path)
    assert path.stat().st_size < 5_000_000
    model = create_model("imagebind-huge", checkpoint=path, modalities=["text", "imu"])
    assert set(model.state_dict()) == {k for k in sd if k.split(".")[1] in ("text", "imu")}
    # Missing and unexpected keys are refused, naming them.
    del sd["modality_trunks.imu.blocks.0.norm_1.weight"]
    with pytest.raises(WeightsError, match="missing"):
        create_model("imagebind-huge", checkpoint=sd, modalities=["imu"])
    sd["modality_trunks.imu.blocks.0.norm_1.weight"] = torch.zeros(512)
    sd["modality_trunks.imu.blocks.6.norm_1.weight"] = torch.zeros(512)
    with pytest.raises(WeightsError, match="unexpected"):
        create_model("imagebind-huge", checkpoint=sd, modalities=["imu"])


def test_wrong_shapes_are_refused():
    tiny = create_model("imagebind-tiny", modalities=["depth"])
    sd = tiny.state_dict()
    sd["modality_heads.depth.2.weight"] = torch.zeros(3, 3)
    with pytest.raises(WeightsError, match="shape"):
        create_model("imagebind-tiny", checkpoint=sd, modalities=["depth"])


def test_convert_reference_state_dict_unwraps_and_rejects_foreign_keys():
    tensor = torch.zeros(1)
    key = "modality_trunks.imu.blocks.0.norm_1.weight"
    assert convert_reference_state_dict({key: tensor}) == {key: tensor}
    assert convert_reference_state_dict({"model": {f"module.{key}": tensor}}) == {key: tensor}
    with pytest.raises(WeightsError, match="not an ImageBind"):
        convert_reference_state_dict({"optimizer.state": tensor})


def test_from_reference_config_mapping():
    cfg = ImageBindConfig.from_reference(vision_embed_dim=1280, vision_num_blocks=32,
                                         text_embed_dim=1024, text_num_blocks=24,
                                         text_num_heads=16, out_embed_dim=1024,
                                         imu_drop_path=0.7, audio_drop_path=0.1)  # fmt: skip
    assert cfg == ImageBindConfig()  # the huge config, exactly as imagebind_huge() builds it
    assert ImageBindConfig.from_reference().out_embed_dim == 768  # reference ctor default
    with pytest.raises(ConfigError, match="unknown"):
        ImageBindConfig.from_reference(vision_width=3)
    with pytest.raises(ConfigError, match="multiple"):
        ImageBindConfig(vision_embed_dim=30, vision_num_heads=4)


@pytest.mark.parametrize("name", list_models())
def test_registered_models_build_on_meta(name):
    entry = get_model_entry(name)
    with torch.device("meta"):
        from bindsearch.models import ImageBindModel

        model = ImageBindModel(entry.config)
    assert model.embed_dim == entry.config.out_embed_dim


def test_tiny_is_deterministic_unit_norm_and_leaves_global_rng():
    torch.manual_seed(123)
    before = torch.rand(1)
    torch.manual_seed(123)
    a = create_model("imagebind-tiny")
    after = torch.rand(1)
    assert torch.equal(before, after)
    b = create_model("imagebind-tiny")
    for key, value in a.state_dict().items():
        assert torch.equal(value, b.state_dict()[key]), key
    inputs = _inputs()
    with torch.inference_mode():
        for modality, x in inputs.items():
            out = a.embed(modality, x)
            assert out.shape == (2, 64)
            assert torch.allclose(out.norm(dim=-1), torch.ones(2), atol=1e-5)
            assert torch.isfinite(out).all()


def test_embed_rejects_wrong_rank_and_missing_tower():
    model = create_model("imagebind-tiny", modalities=["imu"])
    with pytest.raises(ShapeError):
        model.embed("imu", torch.zeros(6))
    with pytest.raises(ConfigError, match="without the vision tower"):
        model.embed("vision", torch.zeros(1, 3, 224, 224))
    with pytest.raises(UnknownModelError, match="imagebind-tiny"):
        create_model("imagebind-nope")


def _trunk_and_tokens(pre_norm: bool) -> tuple[torch.nn.Module, torch.Tensor]:
    from bindsearch.models.layers import Trunk, init_trunk_

    torch.manual_seed(3)
    trunk = Trunk(64, 3, 4, pre_norm=pre_norm).eval()
    init_trunk_(trunk)
    with torch.no_grad():
        for name, p in trunk.named_parameters():
            if "norm" in name or name.endswith("bias"):
                p.add_(0.05 * torch.randn_like(p))
    return trunk, torch.randn(2, 17, 64)


@pytest.mark.parametrize("pre_norm", [True, False])
def test_trunk_inference_leaves_input_and_matches_autograd_path(pre_norm):
    """Without autograd, blocks accumulate into their own buffers and GELU runs in place: the
    caller's tokens stay untouched and the values equal the autograd computation's."""
    trunk, x = _trunk_and_tokens(pre_norm)
    x_before = x.clone()
    pool = torch.tensor([0, 5])
    expected = trunk(x, pool)  # grad enabled: nothing in place
    for context in (torch.no_grad, torch.inference_mode):
        with context():
            got = trunk(x, pool)
        assert torch.equal(x, x_before)
        assert _rel(got.squeeze(1), expected.detach().squeeze(1)) <= 1e-5
