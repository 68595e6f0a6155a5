"""Per-modality stems (tokenizers), heads and logit scales of ImageBind.

Attribute names reproduce the reference checkpoint's key layout (for example the vision stem's
conv sits at index 1 of ``rgbt_stem.proj`` and the IMU head's Linear at index 3); the forward
computations are written for inference speed.
"""

from __future__ import annotations

import math
from typing import cast

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from bindsearch.models.layers import LN_EPS

#: Stem LayerNorm epsilon (PyTorch's default, unlike the 1e-6 of the trunks and heads).
STEM_LN_EPS = 1e-5
#: Upper clamp of every logit scale.
MAX_LOGIT_SCALE = 100.0


class PadToClip(nn.Module):
    """Index 0 of the vision stem: an image [B, 3, H, W] becomes a clip [B, 3, frames, H, W].

    :class:`VisionPreprocessor` skips it for images (a cheaper equivalent 2-D conv); it is kept
    so ``rgbt_stem.proj`` is a complete clip stem on its own.
    """

    def __init__(self, frames: int) -> None:
        super().__init__()
        self.frames = frames

    def forward(self, x: Tensor) -> Tensor:
        if x.ndim == 4:
            x = x.unsqueeze(2)
        if x.shape[2] == 1:
            x = x.expand(-1, -1, self.frames, -1, -1)
        return x


class Stem(nn.Module):
    """Patchify with a bias-free conv (``proj``), then an optional LayerNorm (``norm_layer``)."""

    def __init__(self, proj: nn.Module, dim: int | None) -> None:
        super().__init__()
        self.proj = proj
        self.norm_layer = nn.LayerNorm(dim, eps=STEM_LN_EPS) if dim is not None else None

    def forward(self, x: Tensor) -> Tensor:
        """x: conv input -> tokens [B, N, D] (row-major over the conv's output grid)."""
        tokens = self.proj(x).flatten(2).transpose(1, 2)
        return self.norm_layer(tokens) if self.norm_layer is not None else tokens


class PositionalEmbedding(nn.Module):
    """Learned positions for CLS + a square (or fixed) patch grid, stored as ``pos_embed``."""

    def __init__(self, num_tokens: int, dim: int) -> None:
        super().__init__()
        self.pos_embed = nn.Parameter(torch.zeros(1, num_tokens, dim))

    def for_tokens(self, num_patches: int) -> Tensor:
        """Position table [1, 1 + num_patches, D]; bicubic-resized if the square grid differs."""
        stored = self.pos_embed.shape[1] - 1
        if num_patches == stored:
            return self.pos_embed
        side_old, side_new = math.isqrt(stored), math.isqrt(num_patches)
        if side_old**2 != stored or side_new**2 != num_patches:
            raise ValueError(
                f"cannot resize positions of {stored} patches to {num_patches}: grids must be square"
            )
        cls_pos, patch_pos = self.pos_embed[:, :1], self.pos_embed[:, 1:]
        dim = patch_pos.shape[-1]
        grid = patch_pos.float().reshape(1, side_old, side_old, dim).permute(0, 3, 1, 2)
        grid = F.interpolate(grid, scale_factor=math.sqrt(num_patches / stored), mode="bicubic")
        patch_pos = grid.permute(0, 2, 3, 1).reshape(1, -1, dim).to(cls_pos.dtype)
        return torch.cat([cls_pos, patch_pos], dim=1)


class PatchPreprocessor(nn.Module):
    """Stem -> prepend CLS -> add positions, for vision, audio, depth and thermal.

    ``stem_attr`` is the checkpoint's name for the stem (``rgbt_stem`` or ``depth_stem``).
    """

    def __init__(self, stem: Stem, num_patches: int, dim: int, stem_attr: str) -> None:
        super().__init__()
        self.cls_token = nn.Parameter(torch.zeros(1, 1, dim))
        self.stem_attr = stem_attr
        self.add_module(stem_attr, stem)
        self.pos_embedding_helper = PositionalEmbedding(1 + num_patches, dim)

    def tokenize(self, x: Tensor) -> Tensor:
        stem: Stem = getattr(self, self.stem_attr)
        return stem(x)

    def forward(self, x: Tensor) -> Tensor:
        tokens = self.tokenize(x)
        cls = self.cls_token.expand(tokens.shape[0], -1, -1).to(tokens.dtype)
        tokens = torch.cat([cls, tokens], dim=1)
        return tokens + self.pos_embedding_helper.for_tokens(tokens.shape[1] - 1)


class VisionPreprocessor(PatchPreprocessor):
    """Images [B, 3, H, W] or 2-frame clips [B, 3, 2, H, W] -> tokens [B, 1 + N, D].

    An image is a clip of two identical frames, so its patch embedding is a 2-D conv with the
    temporal kernel slices summed: half the work of repeating the frame.
    """

    def tokenize(self, x: Tensor) -> Tensor:
        conv = cast(nn.Conv3d, cast(nn.Sequential, cast(Stem, self.rgbt_stem).proj)[1])
        if x.ndim == 5 and x.shape[2] == 1:
            x = x[:, :, 0]
        if x.ndim == 4:
            weight = conv.weight.sum(dim=2)  # [D, 3, kt, kh, kw] -> [D, 3, kh, kw]
            out = F.conv2d(x, weight.to(x.dtype), stride=conv.stride[1:])
        else:
            out = conv(x)
        return out.flatten(2).transpose(1, 2)


class TextPreprocessor(nn.Module):
    """Token ids [B, 77] -> embeddings + positions [B, 77, D]; keeps the causal ``mask`` buffer."""

    def __init__(self, vocab_size: int, context_length: int, dim: int) -> None:
        super().__init__()
        self.pos_embed = nn.Parameter(torch.zeros(1, context_length, dim))
        # Additive causal mask, -inf strictly above the diagonal. Part of the checkpoint; the
        # trunk applies causality through SDPA's is_causal instead of reading it. Made on the
        # CPU even when the model is built on the meta device (before a checkpoint is assigned):
        # triu on meta tensors imports torch._dynamo and sympy, a second of a query's cold start.
        mask = torch.full((context_length, context_length), float("-inf"), device="cpu").triu_(1)
        self.register_buffer("mask", mask, persistent=True)
        self.token_embedding = nn.Embedding(vocab_size, dim)

    def forward(self, ids: Tensor) -> Tensor:
        """ids [B, L <= 77] -> [B, L, D] (a prefix of the 77 positions)."""
        return self.token_embedding(ids) + self.pos_embed[:, : ids.shape[1]]


class ImuPreprocessor(nn.Module):
    """IMU [B, 6, T] -> windows of ``kernel`` steps -> Linear -> LN -> CLS + positions."""

    def __init__(self, channels: int, length: int, kernel: int, dim: int) -> None:
        super().__init__()
        self.kernel = kernel
        self.pos_embed = nn.Parameter(torch.zeros(1, 1 + length // kernel, dim))
        self.cls_token = nn.Parameter(torch.zeros(1, 1, dim))
        self.imu_stem = Stem(nn.Linear(channels * kernel, dim, bias=False), dim)

    def forward(self, x: Tensor) -> Tensor:
        b, channels, _ = x.shape
        # [B, C, T] -> [B, C, T/k, k] -> [B, T/k, C*k] with feature index = channel * k + t.
        windows = x.unfold(-1, self.kernel, self.kernel).permute(0, 2, 1, 3)
        windows = windows.reshape(b, -1, channels * self.kernel)
        stem = self.imu_stem
        assert stem.norm_layer is not None
        tokens = stem.norm_layer(stem.proj(windows))
        cls = self.cls_token.expand(b, -1, -1).to(tokens.dtype)
        return torch.cat([cls, tokens], dim=1) + self.pos_embed


class SelectCls(nn.Module):
    """[B, L, D] -> [B, D], the CLS token (index 0)."""

    def forward(self, x: Tensor) -> Tensor:
        return x[:, 0]


def create_cls_head(dim: int, out_dim: int, *, dropout: float | None = None) -> nn.Sequential:
    """LN -> CLS -> (Dropout) -> Linear, indexed as in the checkpoint."""
    layers: list[nn.Module] = [nn.LayerNorm(dim, eps=LN_EPS), SelectCls()]
    if dropout is not None:
        layers.append(nn.Dropout(dropout))
    layers.append(nn.Linear(dim, out_dim, bias=False))
    return nn.Sequential(*layers)


class EotHead(nn.Module):
    """Text head: pick the end-of-text position, then LN -> Linear (``proj.0``, ``proj.1``)."""

    def __init__(self, dim: int, out_dim: int) -> None:
        super().__init__()
        self.proj = nn.Sequential(
            nn.LayerNorm(dim, eps=LN_EPS), nn.Linear(dim, out_dim, bias=False)
        )

    def forward(self, x: Tensor, eot_index: Tensor) -> Tensor:
        return self.proj(x[torch.arange(x.shape[0], device=x.device), eot_index])


class Normalize(nn.Module):
    """L2 normalisation over the last dimension."""

    def forward(self, x: Tensor) -> Tensor:
        return F.normalize(x, dim=-1)


class LogitScale(nn.Module):
    """Holds ``log_logit_scale`` = ln(scale); learnable for text, a fixed buffer elsewhere."""

    def __init__(self, scale: float, learnable: bool) -> None:
        super().__init__()
        value = torch.tensor(math.log(scale))
        if learnable:
            self.log_logit_scale = nn.Parameter(value)
        else:
            self.register_buffer("log_logit_scale", value, persistent=True)

    def scale(self) -> Tensor:
        """exp(log_logit_scale) clamped to at most 100."""
        return self.log_logit_scale.exp().clamp(max=MAX_LOGIT_SCALE)

    def forward(self, x: Tensor) -> Tensor:
        return self.scale() * x


def create_postprocessor(scale: float | None, *, learnable: bool = False) -> nn.Module:
    """Normalize, then (unless vision) a logit scale at index 1."""
    if scale is None:
        return Normalize()
    return nn.Sequential(Normalize(), LogitScale(scale, learnable))
