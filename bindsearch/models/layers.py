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

    def _append_bias_kv(self, k: Tensor, v: Tensor) -> tuple[Tensor, Tensor]:
        assert self.bias_k is not None and self.bias_v is not None
        b = k.shape[0]
        # [1, 1, D] -> [B, H, 1, head_dim]; one extra key/value position at the end.
        bk = self.bias_k.view(1, self.num_heads, 1, self.head_dim).expand(b, -1, -1, -1)
        bv = self.bias_v.view(1, self.num_heads, 1, self.head_dim).expand(b, -1, -1, -1)
        return torch.cat([k, bk.to(k.dtype)], dim=2), torch.cat([v, bv.to(v.dtype)], dim=2)

    def forward(self, x: Tensor) -> Tensor:
        """x: [B, L, D] -> [B, L, D]."""
        b, length, dim = x.shape
        qkv = F.linear(x, self.in_proj_weight, self.in_proj_bias)
        # [B, L, 3, H, hd] -> 3 x [B, H, L, hd]
        q, k, v = qkv.view(b, length, 3, self.num_heads, self.head_dim).permute(2, 0, 3, 1, 4)
        if self.bias_k is not None:
            k, v = self._append_bias_kv(k, v)
        causal = self.causal
        if causal and self.bias_k is not None:
            # Causal over the L real positions, the appended bias position visible to all.
            mask = torch.ones(length, length + 1, dtype=torch.bool, device=x.device).tril_()
            mask[:, -1] = True
            out = F.scaled_dot_product_attention(q, k, v, attn_mask=mask)
        else:
            out = F.scaled_dot_product_attention(q, k, v, is_causal=causal)
        out = out.transpose(1, 2).reshape(b, length, dim)
        return self.out_proj(out)


class Mlp(nn.Module):
    """fc1 -> exact GELU -> fc2."""

    def __init__(self, dim: int, hidden_dim: int) -> None:
        super().__init__()
        self.fc1 = nn.Linear(dim, hidden_dim)
        self.fc2 = nn.Linear(hidden_dim, dim)

    def forward(self, x: Tensor) -> Tensor:
        return self.fc2(F.gelu(self.fc1(x)))


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

    def forward(self, x: Tensor) -> Tensor:
        x = x + self.drop_path(self.attn(self.norm_1(x)))
        return x + self.drop_path(self.mlp(self.norm_2(x)))


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

    def forward(self, x: Tensor) -> Tensor:
        """x: [B, L, D] -> [B, L, D]."""
        return self.blocks(self.pre_transformer_layer(x))


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
