"""Transformer building blocks of the ImageBind trunks.

Parameter names follow the reference checkpoint (``attn.in_proj_weight``, ``norm_1``, ``mlp.fc1``
...) so official weights load without renaming, but the computation is ours: batch-first
tensors throughout and attention through ``F.scaled_dot_product_attention``.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from bindsearch.models import gemm

#: Epsilon of every LayerNorm inside the trunks and heads.
LN_EPS = 1e-6


class DropPath(nn.Module):
    """Stochastic depth on the residual branch (train mode only; identity in eval)."""

    def __init__(self, rate: float) -> None:
        super().__init__()
        self.rate = float(rate)

    def forward(self, x: Tensor) -> Tensor:
        if not self.training or self.rate == 0.0:
            return x
        keep = 1.0 - self.rate
        mask = x.new_empty((x.shape[0],) + (1,) * (x.ndim - 1)).bernoulli_(keep)
        return x * mask / keep


class SelfAttention(nn.Module):
    """Multi-head self-attention with a packed q|k|v projection and optional learned bias k/v.

    With ``add_bias_kv`` a learned key and value (``bias_k``, ``bias_v``, each ``[1, 1, D]``) are
    appended after projection as one extra attention position, so L queries attend to L+1 keys.
    """

    def __init__(self, dim: int, num_heads: int, *, add_bias_kv: bool, causal: bool) -> None:
        super().__init__()
        self.num_heads = num_heads
        self.head_dim = dim // num_heads
        self.causal = causal
        self.in_proj_weight = nn.Parameter(torch.empty(3 * dim, dim))
        self.in_proj_bias = nn.Parameter(torch.zeros(3 * dim))
        if add_bias_kv:
            self.bias_k: nn.Parameter | None = nn.Parameter(torch.zeros(1, 1, dim))
            self.bias_v: nn.Parameter | None = nn.Parameter(torch.zeros(1, 1, dim))
        else:
            self.bias_k = self.bias_v = None
        self.out_proj = nn.Linear(dim, dim)

    def _heads(self, t: Tensor) -> Tensor:
        """[B, L, D] -> [B, H, L, head_dim] (a view)."""
        return t.unflatten(-1, (self.num_heads, self.head_dim)).transpose(1, 2)

    def _append_bias_kv(self, k: Tensor, v: Tensor) -> tuple[Tensor, Tensor]:
        assert self.bias_k is not None and self.bias_v is not None
        b = k.shape[0]
        # [1, 1, D] -> [B, H, 1, head_dim]; one extra key/value position at the end.
        bk = self.bias_k.view(1, self.num_heads, 1, self.head_dim).expand(b, -1, -1, -1)
        bv = self.bias_v.view(1, self.num_heads, 1, self.head_dim).expand(b, -1, -1, -1)
        return torch.cat([k, bk.to(k.dtype)], dim=2), torch.cat([v, bv.to(v.dtype)], dim=2)

    def _project(self, x: Tensor, query_index: Tensor | None) -> tuple[Tensor, Tensor, Tensor]:
        """q [B, H, Lq, hd], k and v [B, H, L, hd]; one packed GEMM unless queries are selected."""
        dim = x.shape[-1]
        if query_index is None:
            q, k, v = gemm.linear(x, self.in_proj_weight, self.in_proj_bias).chunk(3, dim=-1)
        else:
            w, b = self.in_proj_weight, self.in_proj_bias
            q = gemm.linear(select_tokens(x, query_index), w[:dim], b[:dim])
            k, v = gemm.linear(x, w[dim:], b[dim:]).chunk(2, dim=-1)
        return self._heads(q), self._heads(k), self._heads(v)

    def _mask(self, x: Tensor, query_index: Tensor | None) -> Tensor | None:
        """Boolean [Lq or B x 1, Lk] "may attend" mask, or None where SDPA's is_causal suffices."""
        length = x.shape[1]
        if not self.causal or (query_index is None and self.bias_k is None):
            return None
        keys = torch.arange(length, device=x.device)
        if query_index is None:
            mask = keys[None, :] <= keys[:, None]  # [L, L]
        else:
            mask = (keys[None, :] <= query_index[:, None])[:, None, None, :]  # [B, 1, 1, L]
        if self.bias_k is not None:  # the appended bias position is visible to every query
            mask = torch.cat([mask, mask.new_ones(*mask.shape[:-1], 1)], dim=-1)
        return mask

    def attend(self, x: Tensor, query_index: Tensor | None = None) -> Tensor:
        """Attention output before ``out_proj``: x [B, L, D] -> [B, L, D].

        With ``query_index`` [B] (a token position per row) only that token queries, attending
        to all L keys as it would in the full computation: -> [B, 1, D].
        """
        q, k, v = self._project(x, query_index)
        if self.bias_k is not None:
            k, v = self._append_bias_kv(k, v)
        mask = self._mask(x, query_index)
        is_causal = self.causal and mask is None
        out = F.scaled_dot_product_attention(q, k, v, attn_mask=mask, is_causal=is_causal)
        return out.transpose(1, 2).flatten(2)

    def forward(self, x: Tensor, query_index: Tensor | None = None) -> Tensor:
        """x: [B, L, D] -> [B, L, D] ([B, 1, D] with ``query_index``; see :meth:`attend`)."""
        return self.out_proj(self.attend(x, query_index))


class Mlp(nn.Module):
    """fc1 -> exact GELU -> fc2."""

    def __init__(self, dim: int, hidden_dim: int) -> None:
        super().__init__()
        self.fc1 = nn.Linear(dim, hidden_dim)
        self.fc2 = nn.Linear(hidden_dim, dim)

    def hidden(self, x: Tensor) -> Tensor:
        """GELU(fc1(x)): the input of ``fc2``."""
        h = gemm.linear(x, self.fc1.weight, self.fc1.bias)
        # In place when nothing needs fc1's output for backward: no second [N, 4D] buffer.
        return F.gelu(h) if torch.is_grad_enabled() else torch.ops.aten.gelu_(h)

    def forward(self, x: Tensor) -> Tensor:
        return self.fc2(self.hidden(x))


def select_tokens(x: Tensor, index: Tensor) -> Tensor:
    """x [B, L, D], index [B] -> [B, 1, D]: the token at ``index[b]`` of each row."""
    return x.gather(1, index.view(-1, 1, 1).expand(-1, 1, x.shape[-1]))


def add_linear(
    residual: Tensor, x: Tensor, linear: nn.Linear, *, overwrite: bool = False
) -> Tensor:
    """``residual + linear(x)`` as one GEMM accumulating into ``residual + bias``.

    Saves the separate bias-broadcast copy and residual-add passes over [B, L, D]; the sum is
    the same up to float rounding order. ``residual`` is not modified unless ``overwrite`` says
    the caller owns it and autograd is off: then the sum is accumulated into it (same values,
    no new [B, L, D] buffer, so no fresh pages to fault in per block). Falls back to the plain
    expression under autocast or mixed dtypes, where an in-place GEMM cannot follow the casts.
    Where :mod:`~bindsearch.models.gemm` picks oneDNN, its GEMM is added into ``residual``
    instead (oneDNN cannot accumulate in place).
    """
    weight, bias = linear.weight, linear.bias
    if gemm.uses_onednn(x, weight) and residual.dtype == x.dtype:
        y = gemm.onednn_linear(x, weight, bias)
        if overwrite and residual.is_contiguous():
            return residual.add_(y)
        return residual + y
    if torch.is_autocast_enabled(x.device.type) or not (x.dtype == residual.dtype == weight.dtype):
        return residual + linear(x)
    if overwrite and residual.is_contiguous() and not torch.is_grad_enabled():
        out = residual.add_(bias) if bias is not None else residual
    else:
        out = residual + bias if bias is not None else residual.clone()
    out.view(-1, out.shape[-1]).addmm_(x.reshape(-1, x.shape[-1]), weight.t())
    return out


class Block(nn.Module):
    """Pre-norm transformer block: x + attn(norm_1(x)); x + mlp(norm_2(x))."""

    def __init__(
        self,
        dim: int,
        num_heads: int,
        *,
        add_bias_kv: bool,
        causal: bool,
        drop_path: float,
    ) -> None:
        super().__init__()
        self.attn = SelfAttention(dim, num_heads, add_bias_kv=add_bias_kv, causal=causal)
        self.norm_1 = nn.LayerNorm(dim, eps=LN_EPS)
        self.mlp = Mlp(dim, 4 * dim)
        self.norm_2 = nn.LayerNorm(dim, eps=LN_EPS)
        self.drop_path = DropPath(drop_path)

    def _add_branch(
        self, x: Tensor, hidden: Tensor, linear: nn.Linear, *, overwrite: bool
    ) -> Tensor:
        """x + drop_path(linear(hidden)), fused into one GEMM when drop-path is inactive."""
        if self.drop_path.training and self.drop_path.rate > 0.0:
            return x + self.drop_path(linear(hidden))
        return add_linear(x, hidden, linear, overwrite=overwrite)

    def forward(
        self, x: Tensor, query_index: Tensor | None = None, *, overwrite: bool = False
    ) -> Tensor:
        """x [B, L, D] -> [B, L, D]; with ``query_index`` [B] only those tokens -> [B, 1, D].

        The selected tokens' outputs equal those of the full block (only attention mixes tokens,
        and every key and value is still computed from all of x), up to float rounding order.
        With ``overwrite`` (the caller owns ``x``) and autograd off, the output reuses x's memory.
        """
        hidden = self.attn.attend(self.norm_1(x), query_index)
        if query_index is not None:
            x = select_tokens(x, query_index)  # a new tensor: ours to overwrite
            overwrite = True
        x = self._add_branch(x, hidden, self.attn.out_proj, overwrite=overwrite)
        # x is now a tensor this block made: the MLP branch accumulates into it.
        return self._add_branch(x, self.mlp.hidden(self.norm_2(x)), self.mlp.fc2, overwrite=True)


class Trunk(nn.Module):
    """A stack of blocks with an optional LayerNorm before them (vision only)."""

    def __init__(
        self,
        dim: int,
        num_blocks: int,
        num_heads: int,
        *,
        pre_norm: bool = False,
        add_bias_kv: bool = False,
        causal: bool = False,
        drop_path: float = 0.0,
    ) -> None:
        super().__init__()
        if pre_norm:
            # Index 0 of a Sequential, as in the checkpoint (``pre_transformer_layer.0.*``).
            self.pre_transformer_layer = nn.Sequential(nn.LayerNorm(dim, eps=LN_EPS))
        else:
            self.pre_transformer_layer = nn.Sequential()
        # Progressive stochastic depth 0 -> drop_path (plain floats: also works on meta).
        step = drop_path / (num_blocks - 1) if num_blocks > 1 else 0.0
        rates = [i * step for i in range(num_blocks)]
        self.blocks = nn.Sequential(
            *(
                Block(dim, num_heads, add_bias_kv=add_bias_kv, causal=causal, drop_path=r)
                for r in rates
            )
        )

    def forward(self, x: Tensor, pool_index: Tensor | None = None) -> Tensor:
        """x: [B, L, D] -> [B, L, D].

        With ``pool_index`` [B] (the one token per row a head reads) the last block computes
        only that token -> [B, 1, D], the same values as ``forward(x)[arange(B), pool_index]``
        at about a sixth of that block's cost.
        """
        # The caller's x is never modified; what the pre-norm or a block returns is ours, so
        # (without autograd) each later block accumulates into it instead of allocating.
        owned = len(self.pre_transformer_layer) > 0
        x = self.pre_transformer_layer(x)
        *body, last = self.blocks
        for block in body:
            x = block(x, overwrite=owned)
            owned = True
        return last(x, pool_index, overwrite=owned)


def init_trunk_(trunk: Trunk) -> None:
    """Random init: Xavier-uniform Linear weights, zero biases, unit LayerNorms, small bias k/v."""
    for module in trunk.modules():
        if isinstance(module, nn.Linear):
            nn.init.xavier_uniform_(module.weight)
            if module.bias is not None:
                nn.init.zeros_(module.bias)
        elif isinstance(module, nn.LayerNorm):
            nn.init.ones_(module.weight)
            nn.init.zeros_(module.bias)
        elif isinstance(module, SelfAttention):
            # Same bound as Xavier-uniform on the unpacked [D, D] q, k and v matrices.
            dim = module.in_proj_weight.shape[1]
            bound = math.sqrt(6.0 / (2 * dim))
            nn.init.uniform_(module.in_proj_weight, -bound, bound)
            nn.init.zeros_(module.in_proj_bias)
            if module.bias_k is not None and module.bias_v is not None:
                nn.init.normal_(module.bias_k, std=0.02)
                nn.init.normal_(module.bias_v, std=0.02)
