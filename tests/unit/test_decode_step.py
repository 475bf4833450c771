"""The fast decode step is the model's own RNN, only faster: prove they agree, and that a row's
numbers never depend on the rows batched with it."""

from __future__ import annotations

import pytest
import torch

from models.decode_step import DecodeStep
from models.language_model import LMConfig, RecurrentLM, zero_state


def tiny_model(cell: str, embed: int = 16, hidden: int = 24, layers: int = 2) -> RecurrentLM:
    torch.manual_seed(0)
    config = LMConfig(
        vocab_size=50, embed_dim=embed, hidden_dim=hidden, num_layers=layers, dropout=0.0, cell=cell
    )
    return RecurrentLM(config).eval()


@pytest.mark.parametrize("cell", ["lstm", "gru"])
@pytest.mark.parametrize(("embed", "hidden", "layers"), [(8, 16, 1), (16, 24, 2), (32, 32, 3)])
def test_decode_step_equals_the_rnn_over_many_steps(cell, embed, hidden, layers):
    model = tiny_model(cell, embed, hidden, layers)
    step = DecodeStep(model)
    ids = torch.randint(0, 50, (5, 12))
    with torch.no_grad():
        full_logits, full_state = model(ids)
        state = zero_state(model.config, 5)
        for t in range(ids.shape[1]):
            logits, state = step(ids[:, t], state)
            torch.testing.assert_close(logits, full_logits[:, t], atol=1e-5, rtol=1e-5)
    for ours, theirs in zip(state, full_state, strict=True):
        torch.testing.assert_close(ours, theirs, atol=1e-5, rtol=1e-5)


@pytest.mark.parametrize("cell", ["lstm", "gru"])
def test_prefill_of_uneven_prompts_equals_each_prompt_through_the_rnn(cell):
    model = tiny_model(cell)
    lengths = torch.tensor([7, 1, 4, 7, 2])
    ids = torch.randint(1, 50, (5, 7))
    with torch.no_grad():
        logits, state = DecodeStep(model).prefill(ids, lengths)
        for row, length in enumerate(lengths.tolist()):
            alone_logits, alone_state = model(ids[row : row + 1, :length])
            torch.testing.assert_close(logits[row], alone_logits[0, -1], atol=1e-5, rtol=1e-5)
            for ours, theirs in zip(state, alone_state, strict=True):
                torch.testing.assert_close(ours[:, row], theirs[:, 0], atol=1e-5, rtol=1e-5)


DEVICES = [
    "cpu",
    pytest.param(
        "cuda", marks=pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")
    ),
]


@pytest.mark.parametrize("device", DEVICES)
@pytest.mark.parametrize("quantize", [None, "int8"])
@pytest.mark.parametrize("cell", ["lstm", "gru"])
def test_each_row_is_bitwise_the_same_alone_and_in_any_batch(cell, quantize, device):
    """Bitwise, not close: a 1e-7 difference can flip a sampled token."""
    if quantize and device != "cpu":
        pytest.skip("int8 is CPU-only")
    model = tiny_model(cell, embed=32, hidden=64).to(device)
    step = DecodeStep(model, quantize=quantize)
    generator = torch.Generator().manual_seed(1)
    for batch in (2, 3, 5, 8, 13, 70):
        ids = torch.randint(0, 50, (batch,), generator=generator).to(device)
        state = tuple(
            torch.randn(s.shape, generator=generator).to(device)
            for s in zero_state(model.config, batch)
        )
        with torch.no_grad():
            logits, new_state = step(ids, state)
            for row in range(batch):
                alone, alone_state = step(
                    ids[row : row + 1], tuple(s[:, row : row + 1] for s in state)
                )
                assert torch.equal(logits[row], alone[0]), (batch, row)
                for ours, theirs in zip(new_state, alone_state, strict=True):
                    assert torch.equal(ours[:, row], theirs[:, 0]), (batch, row)


def test_int8_step_predicts_like_fp32():
    model = tiny_model("lstm", embed=32, hidden=64)
    model.head.weight.data *= 4  # a peaked distribution, like a trained model's
    ids = torch.randint(0, 50, (64,))
    state = zero_state(model.config, 64)
    with torch.no_grad():
        exact, _ = DecodeStep(model)(ids, state)
        approx, _ = DecodeStep(model, quantize="int8")(ids, state)
    agree = (exact.argmax(1) == approx.argmax(1)).float().mean()
    assert agree >= 0.9, agree


def test_unknown_quantization_is_refused():
    with pytest.raises(ValueError):
        DecodeStep(tiny_model("lstm"), quantize="int4")
