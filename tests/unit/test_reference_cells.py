"""The NumPy LSTM/GRU steps reproduce nn.LSTM / nn.GRU to 1e-5 (lesson exercise 5)."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from torch import nn

from models.reference_cells import (
    cell_weights,
    gru_step,
    lstm_step,
    reference_forward,
)

TOLERANCE = 1e-5
SIZES = [(1, 4), (3, 7), (10, 20), (32, 16)]  # (input_size, hidden_size)


def random_sequence(steps: int, size: int, seed: int, batch: int | None = None) -> torch.Tensor:
    shape = (steps, size) if batch is None else (batch, steps, size)
    return torch.randn(*shape, generator=torch.Generator().manual_seed(seed))


@pytest.mark.parametrize(("input_size", "hidden_size"), SIZES)
def test_lstm_steps_match_nn_lstm(input_size: int, hidden_size: int) -> None:
    torch.manual_seed(input_size)
    lstm = nn.LSTM(input_size, hidden_size, batch_first=True)
    inputs = random_sequence(12, input_size, seed=hidden_size)
    with torch.no_grad():
        expected, (_, c_n) = lstm(inputs)
    weights = cell_weights(lstm)
    h = c = np.zeros(hidden_size)
    for t, x in enumerate(inputs.double().numpy()):
        h, c, *_ = lstm_step(x, h, c, weights)
        np.testing.assert_allclose(h, expected[t].numpy(), atol=TOLERANCE, rtol=0)
    np.testing.assert_allclose(c, c_n[0].numpy(), atol=TOLERANCE, rtol=0)


@pytest.mark.parametrize(("input_size", "hidden_size"), SIZES)
def test_gru_steps_match_nn_gru(input_size: int, hidden_size: int) -> None:
    torch.manual_seed(input_size)
    gru = nn.GRU(input_size, hidden_size, batch_first=True)
    inputs = random_sequence(12, input_size, seed=hidden_size)
    with torch.no_grad():
        expected, _ = gru(inputs)
    weights = cell_weights(gru)
    h = np.zeros(hidden_size)
    for t, x in enumerate(inputs.double().numpy()):
        h, *_ = gru_step(x, h, weights)
        np.testing.assert_allclose(h, expected[t].numpy(), atol=TOLERANCE, rtol=0)


def test_gru_weights_loaded_in_pytorch_gate_order() -> None:
    """Swapping PyTorch's r/z blocks (the lesson's order) must break the match: the test above
    would not notice a reference that happened to be symmetric in them."""
    torch.manual_seed(0)
    gru = nn.GRU(3, 5)
    inputs = random_sequence(10, 3, seed=1)
    with torch.no_grad():
        expected, _ = gru(inputs)
        for name in ("weight_ih_l0", "weight_hh_l0", "bias_ih_l0", "bias_hh_l0"):
            r, z, n = getattr(gru, name).chunk(3)
            getattr(gru, name).copy_(torch.cat([z, r, n]))
    h = np.zeros(5)
    for x in inputs.double().numpy():
        h, *_ = gru_step(x, h, cell_weights(gru))
    assert np.abs(h - expected[-1].numpy()).max() > 1e-3


@pytest.mark.parametrize("mode", ["LSTM", "GRU"])
@pytest.mark.parametrize("bidirectional", [False, True])
@pytest.mark.parametrize("batch_first", [False, True])
def test_multilayer_forward_matches_module(mode: str, bidirectional: bool, batch_first: bool):
    torch.manual_seed(3)
    module = getattr(nn, mode)(
        5, 6, num_layers=3, bidirectional=bidirectional, batch_first=batch_first
    ).eval()
    inputs = random_sequence(11, 5, seed=4, batch=2)
    if not batch_first:
        inputs = inputs.transpose(0, 1)
    states = 3 * (2 if bidirectional else 1)
    h0 = torch.randn(states, 2, 6)
    state = (h0, torch.randn(states, 2, 6)) if mode == "LSTM" else h0
    with torch.no_grad():
        expected, expected_state = module(inputs, state)
    output, final = reference_forward(module, inputs, state)
    np.testing.assert_allclose(output, expected.numpy(), atol=TOLERANCE, rtol=0)
    expected_state = expected_state if mode == "LSTM" else (expected_state,)
    assert len(final) == len(expected_state)
    for ours, theirs in zip(final, expected_state, strict=True):
        np.testing.assert_allclose(ours, theirs.numpy(), atol=TOLERANCE, rtol=0)


def test_unbatched_input_and_no_bias() -> None:
    torch.manual_seed(5)
    lstm = nn.LSTM(4, 3, num_layers=2, bias=False)
    inputs = random_sequence(10, 4, seed=6)
    with torch.no_grad():
        expected, (h_n, c_n) = lstm(inputs)
    output, (h, c) = reference_forward(lstm, inputs)
    np.testing.assert_allclose(output, expected.numpy(), atol=TOLERANCE, rtol=0)
    np.testing.assert_allclose(h, h_n.numpy(), atol=TOLERANCE, rtol=0)
    np.testing.assert_allclose(c, c_n.numpy(), atol=TOLERANCE, rtol=0)


def test_lstm_gates_are_probabilities_and_candidate_is_signed() -> None:
    torch.manual_seed(7)
    lstm = nn.LSTM(2, 8)
    step = lstm_step(np.array([3.0, -2.0]), np.zeros(8), np.zeros(8), cell_weights(lstm))
    for gate in (step.input, step.forget, step.output):
        assert ((gate > 0) & (gate < 1)).all()
    assert (np.abs(step.cell_candidate) < 1).all()


def test_bad_layer_or_direction_is_refused() -> None:
    lstm = nn.LSTM(2, 3, num_layers=2)
    with pytest.raises(ValueError, match="layer"):
        cell_weights(lstm, layer=2)
    with pytest.raises(ValueError, match="direction"):
        cell_weights(lstm, layer=0, direction=1)
    with pytest.raises(TypeError):
        cell_weights(nn.RNN(2, 3))
