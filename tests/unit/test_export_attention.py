"""Query-blocked attention against nn.MultiheadAttention."""

from __future__ import annotations

import pytest
import torch
from stemserve.export.attention import BlockedAttention, swap_attention
from torch import nn

from tests.unit import export_fixtures

one_thread = export_fixtures.one_thread
pytestmark = pytest.mark.usefixtures("one_thread")


@pytest.mark.parametrize("batch_first", [True, False])
@pytest.mark.parametrize("query_block", [1, 7, 64, 1000])
def test_blocked_attention_matches_multihead_attention(batch_first: bool, query_block: int) -> None:
    torch.manual_seed(query_block)
    reference = nn.MultiheadAttention(32, 4, batch_first=batch_first).eval()
    blocked = BlockedAttention(reference, query_block)
    queries, keys = torch.randn(3, 50, 32), torch.randn(3, 37, 32)
    if not batch_first:
        queries, keys = queries.transpose(0, 1), keys.transpose(0, 1)
    with torch.no_grad():
        expected = reference(queries, keys, keys, need_weights=False)[0]
        got, weights = blocked(queries, keys, keys, need_weights=False)
    assert weights is None
    assert got.shape == expected.shape
    assert (got - expected).abs().max().item() < 1e-5


def test_swap_attention_replaces_nested_modules_and_refuses_masks() -> None:
    layer = nn.TransformerEncoderLayer(16, 2, batch_first=True)
    model = nn.Sequential(layer, nn.Linear(16, 16))
    assert swap_attention(model, 8) == 1
    assert isinstance(layer.self_attn, BlockedAttention)
    x = torch.randn(1, 4, 16)
    with pytest.raises(ValueError, match="masks"):
        layer.self_attn(x, x, x, attn_mask=torch.zeros(4, 4))
