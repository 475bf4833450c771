"""Gate traces reproduce nn.LSTM's layer outputs; sentiment explanations cover every token."""

from __future__ import annotations

import json
import re
from pathlib import Path

import numpy as np
import pytest
import torch
from torch import nn

from models.classifier_predictor import ClassifierPredictor
from models.gates import explain_sentiment, gate_trace, lstm_gate_trace
from tests.unit.tiny_sentiment import tiny_sentiment_artifact

TOLERANCE = 1e-5


def first_layers(rnn: nn.LSTM | nn.GRU, layers: int) -> nn.Module:
    """The same module cut after ``layers`` layers: its output is that layer's output."""
    cut = type(rnn)(
        rnn.input_size, rnn.hidden_size, num_layers=layers, bidirectional=rnn.bidirectional
    )
    kept = {
        name: value
        for name, value in rnn.state_dict().items()
        if int(re.search(r"_l(\d+)", name).group(1)) < layers
    }
    cut.load_state_dict(kept)
    return cut.eval()


@pytest.mark.parametrize("mode", ["LSTM", "GRU"])
@pytest.mark.parametrize("bidirectional", [False, True])
def test_trace_hidden_equals_each_layer_output(mode: str, bidirectional: bool) -> None:
    torch.manual_seed(0)
    rnn = getattr(nn, mode)(5, 7, num_layers=3, bidirectional=bidirectional).eval()
    inputs = torch.randn(13, 5)
    for layer in range(3):
        with torch.no_grad():
            expected, _ = first_layers(rnn, layer + 1)(inputs)
        for direction in range(2 if bidirectional else 1):
            trace = gate_trace(rnn, inputs, layer, direction)
            columns = expected[:, direction * 7 : (direction + 1) * 7].numpy()
            np.testing.assert_allclose(trace["hidden"], columns, atol=TOLERANCE, rtol=0)


def test_lstm_trace_fields_obey_the_cell_equations() -> None:
    torch.manual_seed(1)
    lstm = nn.LSTM(3, 4, num_layers=2, bidirectional=True)
    trace = lstm_gate_trace(lstm, torch.randn(10, 3), layer=1, direction=1)
    assert set(trace) == {"forget", "input", "output", "cell_candidate", "cell", "hidden"}
    assert all(values.shape == (10, 4) for values in trace.values())
    # Backward direction: position t is computed after t+1.
    previous = np.vstack([trace["cell"][1:], np.zeros((1, 4))])
    cell = trace["forget"] * previous + trace["input"] * trace["cell_candidate"]
    np.testing.assert_allclose(trace["cell"], cell, atol=1e-12)
    np.testing.assert_allclose(trace["hidden"], trace["output"] * np.tanh(cell), atol=1e-12)


def test_bad_arguments_are_refused() -> None:
    lstm = nn.LSTM(3, 4, num_layers=2)
    with pytest.raises(ValueError, match="layer"):
        lstm_gate_trace(lstm, torch.randn(5, 3), layer=2)
    with pytest.raises(ValueError, match="direction"):
        lstm_gate_trace(lstm, torch.randn(5, 3), layer=0, direction=1)
    with pytest.raises(ValueError, match="one sequence"):
        lstm_gate_trace(lstm, torch.randn(2, 5, 3), layer=0)
    with pytest.raises(TypeError):
        lstm_gate_trace(nn.GRU(3, 4), torch.randn(5, 3), layer=0)


@pytest.fixture(scope="module")
def artifact(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tiny_sentiment_artifact(tmp_path_factory.mktemp("sentiment"))


TEXT = "A gripping , funny movie"


@pytest.mark.parametrize("layer", [0, 1])
def test_explanation_has_one_entry_per_token_with_gates_in_unit_interval(
    artifact: Path, layer: int
) -> None:
    predictor = ClassifierPredictor.from_artifact(artifact)
    explanation = explain_sentiment(predictor, TEXT, layer=layer)
    ids = predictor.tokenizer.encode(TEXT)
    assert [t["id"] for t in explanation["tokens"]] == ids
    assert [t["piece"] for t in explanation["tokens"]] == [
        predictor.tokenizer.id_to_piece(i) for i in ids
    ]
    assert explanation["gates"] == ["forget", "input", "output"]
    assert explanation["directions"] == ["forward", "backward"]
    for token in explanation["tokens"]:
        for direction in ("forward", "backward"):
            assert set(token[direction]) == {"forget", "input", "output"}
            assert all(0 < value < 1 for value in token[direction].values())
    json.dumps(explanation)  # what the handler sends back must serialise as is


def test_explanation_matches_the_served_model(artifact: Path) -> None:
    """The per-unit gates reproduce the model's own first-layer hidden states."""
    predictor = ClassifierPredictor.from_artifact(artifact)
    explanation = explain_sentiment(predictor, TEXT, layer=0, per_unit=True, decimals=8)
    ids = torch.tensor([predictor.tokenizer.encode(TEXT)])
    with torch.no_grad():
        expected, _ = first_layers(predictor.model.rnn, 1)(predictor.model.embedding(ids)[0])
    trace = lstm_gate_trace(predictor.model.rnn, predictor.model.embedding(ids)[0], layer=0)
    np.testing.assert_allclose(trace["hidden"], expected[:, :6].numpy(), atol=TOLERANCE, rtol=0)
    forget = np.array([t["forward"]["forget"] for t in explanation["tokens"]])
    np.testing.assert_allclose(forget, trace["forget"], atol=1e-8)


def test_int8_model_and_gru_model_are_explained(tmp_path: Path) -> None:
    artifact = tiny_sentiment_artifact(tmp_path / "lstm")
    full = explain_sentiment(ClassifierPredictor.from_artifact(artifact), TEXT)
    small = explain_sentiment(ClassifierPredictor.from_artifact(artifact, quantize="int8"), TEXT)
    for a, b in zip(full["tokens"], small["tokens"], strict=True):
        for gate, value in a["forward"].items():
            assert b["forward"][gate] == pytest.approx(value, abs=0.02)

    gru = explain_sentiment(
        ClassifierPredictor.from_artifact(tiny_sentiment_artifact(tmp_path / "gru", cell="gru")),
        TEXT,
        per_unit=True,
    )
    assert gru["cell"] == "gru" and gru["gates"] == ["reset", "update"]
    unit_values = [v for t in gru["tokens"] for g in t["backward"].values() for v in g]
    assert len(unit_values) == len(gru["tokens"]) * 2 * 6
    assert all(0 < v < 1 for v in unit_values)
