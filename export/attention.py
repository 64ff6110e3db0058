"""Multi-head attention computed in query blocks, for export.

``nn.MultiheadAttention`` exports either as a fused operator that TensorRT and the ONNX
Runtime CPU provider handle poorly, or as one ``(heads, queries, keys)`` score matrix per
layer: for HT-Demucs that is 8 x 2688 x 2688 floats (230 MB) per batch item. This module
computes the same attention with the module's own weights, one block of queries at a time,
so the largest intermediate is ``(batch, heads, block, keys)``.
"""

from __future__ import annotations

import math

import torch
from torch import nn
from torch.nn import functional as F

DEFAULT_QUERY_BLOCK = 512


class BlockedAttention(nn.Module):
    """Drop-in for an ``nn.MultiheadAttention`` in eval mode (no masks, no dropout)."""

    def __init__(self, attention: nn.MultiheadAttention, query_block: int) -> None:
        super().__init__()
        if not attention._qkv_same_embed_dim:
            raise ValueError("BlockedAttention needs q, k and v of the same embedding size")
        if query_block < 1:
            raise ValueError(f"query_block must be >= 1, got {query_block}")
        self.in_proj_weight = attention.in_proj_weight  # (3 * embed, embed)
        self.in_proj_bias = attention.in_proj_bias  # (3 * embed,) or None
        self.out_proj = attention.out_proj
        self.nb_heads = attention.num_heads
        self.head_dim = attention.head_dim
        self.batch_first = attention.batch_first
        self.query_block = query_block

    def _project(self, x: torch.Tensor, index: int) -> torch.Tensor:
        embed = self.nb_heads * self.head_dim
        weight = self.in_proj_weight[index * embed : (index + 1) * embed]
        bias = None
        if self.in_proj_bias is not None:
            bias = self.in_proj_bias[index * embed : (index + 1) * embed]
        projected = F.linear(x, weight, bias)  # (batch, tokens, embed)
        # (batch, tokens, heads, head_dim) -> (batch, heads, tokens, head_dim)
        return projected.reshape(x.shape[0], x.shape[1], self.nb_heads, self.head_dim).transpose(1, 2)

    def forward(
        self,
        query: torch.Tensor,
        key: torch.Tensor,
        value: torch.Tensor,
        attn_mask: torch.Tensor | None = None,
        key_padding_mask: torch.Tensor | None = None,
        **_: object,
    ) -> tuple[torch.Tensor, None]:
        if attn_mask is not None or key_padding_mask is not None:
            raise ValueError("BlockedAttention does not take attention masks")
        if not self.batch_first:
            # (tokens, batch, embed) -> (batch, tokens, embed)
            query, key, value = (t.transpose(0, 1) for t in (query, key, value))
        q = self._project(query, 0) * (1.0 / math.sqrt(self.head_dim))
        k = self._project(key, 1)
        v = self._project(value, 2)
        nb_queries = query.shape[1]
        blocks = []
        for start in range(0, nb_queries, self.query_block):
            q_block = q[:, :, start : start + self.query_block]  # (batch, heads, block, dim)
            weights = torch.softmax(q_block @ k.transpose(-1, -2), dim=-1)
            blocks.append(weights @ v)  # (batch, heads, block, head_dim)
        attended = torch.cat(blocks, dim=2) if len(blocks) > 1 else blocks[0]
        # (batch, heads, queries, head_dim) -> (batch, queries, heads * head_dim)
        attended = attended.transpose(1, 2).reshape(query.shape[0], nb_queries, self.nb_heads * self.head_dim)
        out = self.out_proj(attended)
        if not self.batch_first:
            out = out.transpose(0, 1)  # (tokens, batch, embed)
        return out, None


def swap_attention(module: nn.Module, query_block: int = DEFAULT_QUERY_BLOCK) -> int:
    """Replace every ``nn.MultiheadAttention`` below ``module`` in place; returns the count."""
    swapped = 0
    for name, child in list(module.named_children()):
        if isinstance(child, nn.MultiheadAttention):
            setattr(module, name, BlockedAttention(child, query_block))
            swapped += 1
        else:
            swapped += swap_attention(child, query_block)
    return swapped
