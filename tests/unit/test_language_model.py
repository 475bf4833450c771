"""The training-time language model: state carried across calls, tied weights."""

from __future__ import annotations

import pytest
import torch

from models.language_model import LMConfig, RecurrentLM


def test_state_carries_across_calls():
    torch.manual_seed(1)
    model = RecurrentLM(LMConfig(vocab_size=30, embed_dim=8, hidden_dim=8, dropout=0.0)).eval()
    ids = torch.randint(0, 30, (2, 10))
    with torch.no_grad():
        whole, _ = model(ids)
        first, state = model(ids[:, :4])
        rest, _ = model(ids[:, 4:], state)
    torch.testing.assert_close(torch.cat([first, rest], dim=1), whole, atol=1e-6, rtol=1e-6)


def test_tied_weights_share_the_embedding():
    model = RecurrentLM(LMConfig(vocab_size=30, embed_dim=16, hidden_dim=16, tie_weights=True))
    assert model.head.weight is model.embedding.weight
    with pytest.raises(ValueError):
        RecurrentLM(LMConfig(vocab_size=30, embed_dim=8, hidden_dim=16, tie_weights=True))
