"""The ImageBind model: six towers into one embedding space."""

from __future__ import annotations

from collections.abc import Iterable, Mapping

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from bindsearch.errors import ConfigError, ShapeError
from bindsearch.modality import MODALITIES, Modality
from bindsearch.models.config import TEXT_CONTEXT_LENGTH, TEXT_VOCAB_SIZE, ImageBindConfig
from bindsearch.models.layers import Trunk, init_trunk_
from bindsearch.models.towers import (
    EotHead,
    ImuPreprocessor,
    LogitScale,
    PadToClip,
    PatchPreprocessor,
    Stem,
    TextPreprocessor,
    VisionPreprocessor,
    create_cls_head,
    create_postprocessor,
)

#: Fixed output scales of the reference's non-vision postprocessors (text's is learned).
_FIXED_SCALES = {
    Modality.AUDIO: 20.0,
    Modality.DEPTH: 5.0,
    Modality.THERMAL: 10.0,
    Modality.IMU: 5.0,
}
_TEXT_SCALE_INIT = 1 / 0.07

# ndim of one un-batched input per modality (vision: image; a clip adds a time axis).
_ITEM_NDIM = {
    Modality.VISION: 3,
    Modality.TEXT: 1,
    Modality.AUDIO: 3,
    Modality.DEPTH: 3,
    Modality.THERMAL: 3,
    Modality.IMU: 2,
}


def _build_preprocessor(cfg: ImageBindConfig, m: Modality) -> nn.Module:
    if m is Modality.VISION:
        kt, kh, kw = cfg.kernel_size
        conv = nn.Conv3d(
            3, cfg.vision_embed_dim, cfg.kernel_size, stride=cfg.kernel_size, bias=False
        )
        stem = Stem(nn.Sequential(PadToClip(cfg.video_frames), conv), None)
        rows, cols = cfg.vision_grid()
        return VisionPreprocessor(stem, rows * cols, cfg.vision_embed_dim, "rgbt_stem")
    if m is Modality.TEXT:
        return TextPreprocessor(TEXT_VOCAB_SIZE, TEXT_CONTEXT_LENGTH, cfg.text_embed_dim)
    if m is Modality.AUDIO:
        dim, k = cfg.audio_embed_dim, cfg.audio_kernel_size
        stem = Stem(nn.Conv2d(1, dim, k, stride=cfg.audio_stride, bias=False), dim)
        freq, time = cfg.audio_grid()
        return PatchPreprocessor(stem, freq * time, dim, "rgbt_stem")
    if m is Modality.IMU:
        return ImuPreprocessor(
            cfg.imu_channels, cfg.imu_length, cfg.imu_kernel_size, cfg.imu_embed_dim
        )
    dim, k = getattr(cfg, f"{m.value}_embed_dim"), getattr(cfg, f"{m.value}_kernel_size")
    stem = Stem(nn.Conv2d(1, dim, k, stride=k, bias=False), dim)
    attr = "depth_stem" if m is Modality.DEPTH else "rgbt_stem"
    return PatchPreprocessor(stem, (cfg.image_size // k) ** 2, dim, attr)


def _build_trunk(cfg: ImageBindConfig, m: Modality) -> Trunk:
    name = m.value
    return Trunk(
        getattr(cfg, f"{name}_embed_dim"),
        getattr(cfg, f"{name}_num_blocks"),
        getattr(cfg, f"{name}_num_heads"),
        pre_norm=m is Modality.VISION,
        add_bias_kv=m not in (Modality.VISION, Modality.TEXT),
        causal=m is Modality.TEXT,
        drop_path=getattr(cfg, f"{name}_drop_path", 0.0),
    )


def _build_head(cfg: ImageBindConfig, m: Modality) -> nn.Module:
    dim = getattr(cfg, f"{m.value}_embed_dim")
    if m is Modality.TEXT:
        return EotHead(dim, cfg.out_embed_dim)
    return create_cls_head(dim, cfg.out_embed_dim, dropout=0.5 if m is Modality.IMU else None)


def _build_postprocessor(m: Modality) -> nn.Module:
    if m is Modality.VISION:
        return create_postprocessor(None)
    if m is Modality.TEXT:
        return create_postprocessor(_TEXT_SCALE_INIT, learnable=True)
    return create_postprocessor(_FIXED_SCALES[m])


class ImageBindModel(nn.Module):
    """ImageBind with any subset of its six towers.

    ``state_dict()`` keys equal the reference checkpoint's (``modality_trunks.vision.blocks.0...``)
    for the towers present. :meth:`embed` returns unit vectors; the reference's per-modality
    logit scales stay available through :meth:`logit_scale` for zero-shot logits.
    """

    def __init__(
        self, config: ImageBindConfig, modalities: Iterable[Modality | str] | None = None
    ) -> None:
        super().__init__()
        self.config = config
        wanted = MODALITIES if modalities is None else {Modality.parse(m) for m in modalities}
        self.modalities: tuple[Modality, ...] = tuple(m for m in MODALITIES if m in wanted)
        if not self.modalities:
            raise ConfigError("a model needs at least one modality")
        names = [m.value for m in self.modalities]
        self.modality_preprocessors = nn.ModuleDict(
            {m.value: _build_preprocessor(config, m) for m in self.modalities}
        )
        self.modality_trunks = nn.ModuleDict(
            {m.value: _build_trunk(config, m) for m in self.modalities}
        )
        self.modality_heads = nn.ModuleDict(
            {m.value: _build_head(config, m) for m in self.modalities}
        )
        self.modality_postprocessors = nn.ModuleDict(
            {n: _build_postprocessor(m) for n, m in zip(names, self.modalities, strict=True)}
        )

    @property
    def embed_dim(self) -> int:
        """Dimension of the shared embedding space."""
        return self.config.out_embed_dim

    def init_weights(self, seed: int = 0) -> None:
        """Deterministic random initialisation (seeded, leaves the global RNG untouched)."""
        device = next(self.parameters()).device
        with torch.random.fork_rng(devices=[device] if device.type == "cuda" else []):
            torch.manual_seed(seed)
            for name in (m.value for m in self.modalities):
                pre = self.modality_preprocessors[name]
                for pname, param in pre.named_parameters():
                    if pname.endswith(("cls_token", "pos_embed")) or "token_embedding" in pname:
                        nn.init.trunc_normal_(param, std=0.02)
                    elif pname.endswith("weight") and param.ndim > 1:
                        nn.init.xavier_uniform_(param.view(param.shape[0], -1))
                trunk = self.modality_trunks[name]
                assert isinstance(trunk, Trunk)
                init_trunk_(trunk)
                for module in self.modality_heads[name].modules():
                    if isinstance(module, nn.Linear):
                        nn.init.xavier_uniform_(module.weight)

    def logit_scale(self, modality: Modality | str) -> float:
        """The reference's output scale for ``modality`` (1 for vision)."""
        post = self.modality_postprocessors[Modality.parse(modality).value]
        if isinstance(post, nn.Sequential) and isinstance(post[1], LogitScale):
            return float(post[1].scale())
        return 1.0

    def _tower(self, m: Modality, x: Tensor) -> Tensor:
        """One batch of single items through one tower -> unit vectors [B, out_dim] (fp32)."""
        name = m.value
        if m is Modality.TEXT:
            # End-of-text sits at the largest id (49407); argmax finds its first occurrence.
            pool_index = x.argmax(dim=-1)
            # Attention is causal, so positions after the last EOT never reach a pooled token:
            # dropping them is exact and saves most of the work for short texts.
            x = x[:, : int(pool_index.max()) + 1]
        tokens = self.modality_preprocessors[name](x)
        if m is not Modality.TEXT:
            pool_index = torch.zeros(x.shape[0], dtype=torch.long, device=x.device)  # CLS
        # The trunk returns only the pooled token, [B, 1, D]: the head reads position 0.
        pooled = self.modality_trunks[name](tokens, pool_index)
        if m is Modality.TEXT:
            out = self.modality_heads[name](pooled, torch.zeros_like(pool_index))
        else:
            out = self.modality_heads[name](pooled)
        return F.normalize(out.float(), dim=-1)

    def embed(self, modality: Modality | str, x: Tensor) -> Tensor:
        """Embed a batch: ``x`` in the reference input layout -> unit vectors [B, out_dim].

        Single items: vision ``[B,3,H,W]`` (image) or ``[B,3,2,H,W]`` (2-frame clip), text
        ``[B,77]`` ids, audio ``[B,1,128,204]``, depth/thermal ``[B,1,224,224]``, IMU ``[B,6,2000]``.
        One more leading axis, ``[B,S,...]``, holds S clips (audio crops, video clips x crops,
        several images) per item: their unit vectors are averaged and re-normalised.
        """
        m = Modality.parse(modality)
        if m not in self.modalities:
            raise ConfigError(f"this model was built without the {m.value} tower")
        base = _ITEM_NDIM[m] + 1
        if m is Modality.VISION and (
            x.ndim == 6 or (x.ndim == 5 and x.shape[1] == 3 and x.shape[2] != 3)
        ):
            base = 5  # items are clips [3, T, H, W]; [B, 3, T, H, W] is not S=3 images
        if x.ndim == base:
            return self._tower(m, x)
        if x.ndim == base + 1:
            b, s = x.shape[:2]
            per_clip = self._tower(m, x.reshape(b * s, *x.shape[2:])).view(b, s, -1)
            return F.normalize(per_clip.mean(dim=1), dim=-1)
        raise ShapeError(None, f"{m.value} input has shape {tuple(x.shape)}; see embed() docs")

    def forward(self, inputs: Mapping[str, Tensor]) -> dict[str, Tensor]:
        """Reference-style call: ``{modality: input}`` -> ``{modality: unit vectors}``."""
        return {key: self.embed(key, value) for key, value in inputs.items()}
