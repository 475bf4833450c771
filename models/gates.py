"""Gate activations of a trained LSTM/GRU at every time step, and per-token sentiment gates.

`nn.LSTM` returns only hidden and cell states; the gates live inside its fused kernel. Here a
layer is re-run step by step with its own weights through the NumPy reference cells
(models/reference_cells.py), which tests prove equal to `nn.LSTM` to 1e-5, so what is shown is
what the served model computes. Pure torch/NumPy: the sentiment handler's ``"explain": true``
calls `explain_sentiment`, and so do the plots of

    .venv/bin/python -m lesson.inspect_model gates --artifact artifacts/sentiment \
        --text "a gripping , funny movie" --layer 0 --out runs/gates/
"""

from __future__ import annotations

from typing import Any

import numpy as np
import torch
from torch import nn

from models.reference_cells import as_numpy, cell_kind, layer_traces

LSTM_TRACE = ("forget", "input", "output", "cell_candidate", "cell", "hidden")
GRU_TRACE = ("reset", "update", "candidate", "hidden")
# The sigmoid gates, each in (0, 1): the values an explanation reports per token.
GATES = {"LSTM": ("forget", "input", "output"), "GRU": ("reset", "update")}
DIRECTIONS = ("forward", "backward")


def _check_position(rnn: nn.Module, layer: int, direction: int) -> None:
    # Fail before stepping the lower layers, with a message naming the bad value.
    if not 0 <= layer < rnn.num_layers:
        raise ValueError(f"layer must be in [0, {rnn.num_layers}), got {layer}")
    directions = 2 if rnn.bidirectional else 1
    if not 0 <= direction < directions:
        raise ValueError(f"direction must be in [0, {directions}), got {direction}")


def gate_trace(
    rnn: nn.Module, inputs: torch.Tensor | np.ndarray, layer: int, direction: int = 0
) -> dict[str, np.ndarray]:
    """Every step of one layer and direction for ONE sequence ``inputs`` [T, input_size]:
    `LSTM_TRACE` or `GRU_TRACE` keys, each [T, hidden] float64, indexed by input position
    (also for the backward direction, which reads the sequence from its end)."""
    kind = cell_kind(rnn)
    _check_position(rnn, layer, direction)
    sequence = as_numpy(inputs)
    if sequence.ndim != 2:
        raise ValueError(f"inputs must be one sequence [T, input_size], got {sequence.shape}")
    trace = layer_traces(rnn, sequence, num_layers=layer + 1)[layer][direction]
    return {key: trace[key] for key in (LSTM_TRACE if kind == "LSTM" else GRU_TRACE)}


def lstm_gate_trace(
    rnn: nn.Module, inputs: torch.Tensor | np.ndarray, layer: int, direction: int = 0
) -> dict[str, np.ndarray]:
    """forget, input, output, cell_candidate, cell and hidden, each [T, hidden], of one LSTM
    layer/direction. Layers above 0 read the layer below's outputs (directions concatenated)."""
    if cell_kind(rnn) != "LSTM":
        raise TypeError("lstm_gate_trace needs an LSTM; use gate_trace for a GRU")
    return gate_trace(rnn, inputs, layer, direction)


def explain_sentiment(
    predictor: Any, text: str, layer: int = 0, per_unit: bool = False, decimals: int = 3
) -> dict[str, Any]:
    """Per-token pieces and gate activations of the classifier's recurrent ``layer``.

    ``predictor`` is a `models.classifier_predictor.ClassifierPredictor` (anything with
    ``.model`` holding ``.embedding`` and ``.rnn``, ``.tokenizer.id_to_piece`` and ``.encode``);
    the text is tokenized exactly as for prediction. Each token gets, per direction, the mean of
    every gate over the layer's units (or, with ``per_unit``, one value per unit), rounded to
    ``decimals``.
    An int8 predictor is explained with its fp32 weights, so its gates can differ from its
    int8 computation in the second or third decimal.
    """
    model = predictor.float_model
    ids, _ = predictor.encode([text])
    ids = ids[0]
    with torch.inference_mode():
        embedded = model.embedding(ids.to(model.embedding.weight.device))
    rnn = model.rnn
    kind = cell_kind(rnn)
    directions = DIRECTIONS[: 2 if rnn.bidirectional else 1]
    traces = [gate_trace(rnn, embedded, layer, d) for d in range(len(directions))]

    def shown(values: np.ndarray) -> float | list[float]:
        if per_unit:
            return np.round(values, decimals).tolist()
        return round(float(values.mean()), decimals)

    tokens = []
    for position, token_id in enumerate(ids.tolist()):
        entry: dict[str, Any] = {"piece": predictor.tokenizer.id_to_piece(token_id), "id": token_id}
        for name, trace in zip(directions, traces, strict=True):
            entry[name] = {gate: shown(trace[gate][position]) for gate in GATES[kind]}
        tokens.append(entry)
    return {
        "cell": kind.lower(),
        "layer": layer,
        "hidden_size": rnn.hidden_size,
        "directions": list(directions),
        "gates": list(GATES[kind]),
        "values": "per unit" if per_unit else f"mean over the {rnn.hidden_size} units",
        "tokens": tokens,
    }
