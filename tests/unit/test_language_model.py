"""The fast decode step is the model's own RNN, only faster: prove they agree."""

from __future__ import annotations

import pytest
import torch

from models.language_model import DecodeStep, LMConfig, RecurrentLM, zero_state


@pytest.mark.parametrize("cell", ["lstm", "gru"])
@pytest.mark.parametrize(("embed", "hidden", "layers"), [(8, 16, 1), (16, 24, 2), (32, 32, 3)])
def test_decode_step_equals_the_rnn_over_many_steps(cell, embed, hidden, layers):
    torch.manual_seed(0)
    config = LMConfig(
        vocab_size=50, embed_dim=embed, hidden_dim=hidden, num_layers=layers, dropout=0.0, cell=cell
    )
    model = RecurrentLM(config).eval()
    step = DecodeStep(model)
    ids = torch.randint(0, 50, (5, 12))
    with torch.no_grad():
        full_logits, full_state = model(ids)
        state = zero_state(config, 5)
        for t in range(ids.shape[1]):
            logits, state = step(ids[:, t], state)
            torch.testing.assert_close(logits, full_logits[:, t], atol=1e-5, rtol=1e-5)
    for ours, theirs in zip(state, full_state, strict=True):
        torch.testing.assert_close(ours, theirs, atol=1e-5, rtol=1e-5)


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
