"""LSTM and GRU steps written out in NumPy, with the weights of a trained `nn.LSTM`/`nn.GRU`.

Why this exists: `nn.LSTM` runs its gates inside one fused kernel and only hands back h and c,
so the gate activations the lesson talks about (forget, input, output; reset, update) are never
visible. Re-computing each step from the module's own weights exposes them, and matching the
module's outputs to 1e-5 (tests/unit/test_reference_cells.py) proves the equations are the ones
PyTorch actually runs:

    LSTM  (PyTorch row order of the stacked weights: i, f, g, o)
        i = σ(W_ii x + b_ii + W_hi h + b_hi)      f = σ(W_if x + b_if + W_hf h + b_hf)
        g = tanh(W_ig x + b_ig + W_hg h + b_hg)   o = σ(W_io x + b_io + W_ho h + b_ho)
        c' = f * c + i * g                        h' = o * tanh(c')
    GRU   (row order: r, z, n)
        r = σ(W_ir x + b_ir + W_hr h + b_hr)      z = σ(W_iz x + b_iz + W_hz h + b_hz)
        n = tanh(W_in x + b_in + r * (W_hn h + b_hn))     # r applied AFTER the hidden product
        h' = (1 - z) * n + z * h                          # z weighs the OLD state in PyTorch

The lesson writes the GRU update as h' = (1 - z) h + z h̃ and the candidate with r * h inside
the product; both describe the same family, but only PyTorch's form reproduces `nn.GRU`.

Every function works in float64 on arrays shaped [..., features], so a step takes one vector
or a batch alike. Try it:

    .venv/bin/python -m pytest tests/unit/test_reference_cells.py
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import NamedTuple

import numpy as np
import torch
from torch import nn

KINDS = ("LSTM", "GRU")  # the ``mode`` attribute of the modules this file can re-run


@dataclass(frozen=True)
class CellWeights:
    """One layer and direction of a recurrent module: stacked [gates*H, in] and [gates*H, H]."""

    w_ih: np.ndarray
    w_hh: np.ndarray
    b_ih: np.ndarray
    b_hh: np.ndarray

    @property
    def hidden_size(self) -> int:
        return self.w_hh.shape[1]


class LSTMStep(NamedTuple):
    hidden: np.ndarray
    cell: np.ndarray
    input: np.ndarray
    forget: np.ndarray
    cell_candidate: np.ndarray
    output: np.ndarray


class GRUStep(NamedTuple):
    hidden: np.ndarray
    reset: np.ndarray
    update: np.ndarray
    candidate: np.ndarray


def sigmoid(x: np.ndarray) -> np.ndarray:
    """σ via tanh: exact, and never overflows in exp() for large negative inputs."""
    return 0.5 * (1.0 + np.tanh(0.5 * x))


def as_numpy(values: np.ndarray | torch.Tensor) -> np.ndarray:
    """float64 NumPy copy of an array or a tensor on any device."""
    if isinstance(values, torch.Tensor):
        values = values.detach().to("cpu", torch.float64).numpy()
    return np.asarray(values, dtype=np.float64)


def cell_kind(rnn: nn.Module) -> str:
    """The module's kind, "LSTM" or "GRU"; dynamically quantized versions count too."""
    mode = getattr(rnn, "mode", None)
    if mode not in KINDS:
        raise TypeError(f"expected an LSTM or GRU module, got {type(rnn).__name__}")
    if getattr(rnn, "proj_size", 0):
        raise ValueError("LSTMs with proj_size > 0 are not supported")
    return mode


def _named_weights(rnn: nn.Module) -> dict[str, torch.Tensor]:
    # Dynamically quantized modules (torch.ao...dynamic.LSTM) keep packed int8 weights and
    # expose them through get_weight()/get_bias(); dequantized, they are what the gates use.
    if hasattr(rnn, "get_weight") and hasattr(rnn, "get_bias"):
        weights = {name: w.dequantize() for name, w in rnn.get_weight().items()}
        return {**weights, **rnn.get_bias()}
    return dict(rnn.named_parameters())


def cell_weights(rnn: nn.Module, layer: int = 0, direction: int = 0) -> CellWeights:
    """The float64 weights of one layer (``weight_ih_l{k}`` ...) and direction (0 forward,
    1 backward: the ``_reverse`` parameters). A module built with ``bias=False`` gets zeros."""
    cell_kind(rnn)
    directions = 2 if rnn.bidirectional else 1
    if not 0 <= layer < rnn.num_layers:
        raise ValueError(f"layer must be in [0, {rnn.num_layers}), got {layer}")
    if not 0 <= direction < directions:
        raise ValueError(f"direction must be in [0, {directions}), got {direction}")
    params = _named_weights(rnn)
    suffix = f"l{layer}" + ("_reverse" if direction else "")

    def array(name: str) -> np.ndarray:
        return params[name].detach().to("cpu", torch.float64).numpy()

    w_ih, w_hh = array(f"weight_ih_{suffix}"), array(f"weight_hh_{suffix}")
    zeros = np.zeros(w_hh.shape[0])
    has_bias = f"bias_ih_{suffix}" in params
    return CellWeights(
        w_ih=w_ih,
        w_hh=w_hh,
        b_ih=array(f"bias_ih_{suffix}") if has_bias else zeros,
        b_hh=array(f"bias_hh_{suffix}") if has_bias else zeros,
    )


def lstm_step(x: np.ndarray, h: np.ndarray, c: np.ndarray, w: CellWeights) -> LSTMStep:
    """One LSTM step: x [..., in], h and c [..., H] -> new h, c and the four gate blocks."""
    pre = x @ w.w_ih.T + w.b_ih + h @ w.w_hh.T + w.b_hh
    i, f, g, o = np.split(pre, 4, axis=-1)
    i, f, g, o = sigmoid(i), sigmoid(f), np.tanh(g), sigmoid(o)
    c_new = f * c + i * g  # additive memory: the gradient path the lesson is about
    h_new = o * np.tanh(c_new)
    return LSTMStep(h_new, c_new, i, f, g, o)


def gru_step(x: np.ndarray, h: np.ndarray, w: CellWeights) -> GRUStep:
    """One GRU step: x [..., in], h [..., H] -> new h and the reset/update gates, candidate."""
    x_r, x_z, x_n = np.split(x @ w.w_ih.T + w.b_ih, 3, axis=-1)
    h_r, h_z, h_n = np.split(h @ w.w_hh.T + w.b_hh, 3, axis=-1)
    r = sigmoid(x_r + h_r)
    z = sigmoid(x_z + h_z)
    n = np.tanh(x_n + r * h_n)
    return GRUStep((1.0 - z) * n + z * h, r, z, n)


def run_layer(
    kind: str,
    inputs: np.ndarray,
    w: CellWeights,
    h0: np.ndarray | None = None,
    c0: np.ndarray | None = None,
    reverse: bool = False,
) -> dict[str, np.ndarray]:
    """Step one layer over time-major ``inputs`` [T, ..., in].

    Returns every step's fields stacked to [T, ..., H] (keys of `LSTMStep`/`GRUStep`), always
    indexed by input position: a reverse direction runs from the last position to the first,
    so its final state sits at index 0, as in `nn.LSTM`'s bidirectional output.
    """
    batch_shape = inputs.shape[1:-1]
    h = np.zeros((*batch_shape, w.hidden_size)) if h0 is None else np.asarray(h0, np.float64)
    c = np.zeros_like(h) if c0 is None else np.asarray(c0, np.float64)
    steps: list[tuple[np.ndarray, ...]] = []
    order = range(len(inputs) - 1, -1, -1) if reverse else range(len(inputs))
    for t in order:
        if kind == "LSTM":
            step: tuple[np.ndarray, ...] = lstm_step(inputs[t], h, c, w)
            h, c = step[0], step[1]
        else:
            step = gru_step(inputs[t], h, w)
            h = step[0]
        steps.append(step)
    if reverse:
        steps.reverse()
    fields = LSTMStep._fields if kind == "LSTM" else GRUStep._fields
    return {name: np.stack([s[k] for s in steps]) for k, name in enumerate(fields)}


def layer_traces(
    rnn: nn.Module,
    inputs: np.ndarray | torch.Tensor,
    num_layers: int | None = None,
    h0: np.ndarray | torch.Tensor | None = None,
    c0: np.ndarray | torch.Tensor | None = None,
) -> list[list[dict[str, np.ndarray]]]:
    """Traces (see `run_layer`) for layers ``0 .. num_layers-1`` (default all), each direction.

    ``inputs`` is time-major [T, ..., in]; a layer above the first reads the previous layer's
    hidden states, directions concatenated, exactly as `nn.LSTM`/`nn.GRU` do (no inter-layer
    dropout: this is the module in eval mode). ``h0``/``c0`` are initial states shaped like the
    module's: [layers * directions, ..., H].
    """
    kind = cell_kind(rnn)
    directions = 2 if rnn.bidirectional else 1
    num_layers = rnn.num_layers if num_layers is None else num_layers
    x = as_numpy(inputs)
    h0 = None if h0 is None else as_numpy(h0)
    c0 = None if c0 is None else as_numpy(c0)
    traces: list[list[dict[str, np.ndarray]]] = []
    for layer in range(num_layers):
        per_direction = []
        for direction in range(directions):
            k = layer * directions + direction
            per_direction.append(
                run_layer(
                    kind,
                    x,
                    cell_weights(rnn, layer, direction),
                    h0=None if h0 is None else h0[k],
                    c0=None if c0 is None else c0[k],
                    reverse=direction == 1,
                )
            )
        traces.append(per_direction)
        x = np.concatenate([trace["hidden"] for trace in per_direction], axis=-1)
    return traces


def reference_forward(
    rnn: nn.Module,
    inputs: np.ndarray | torch.Tensor,
    state: tuple[np.ndarray | torch.Tensor, ...] | np.ndarray | torch.Tensor | None = None,
) -> tuple[np.ndarray, tuple[np.ndarray, ...]]:
    """What ``rnn(inputs, state)`` returns, computed in NumPy: ``(output, (h_n, c_n))`` for an
    LSTM, ``(output, (h_n,))`` for a GRU. Shapes and ``batch_first`` follow the module
    (unbatched [T, in] input too)."""
    kind = cell_kind(rnn)
    x = as_numpy(inputs)
    batched_first = rnn.batch_first and x.ndim == 3
    if batched_first:
        x = x.swapaxes(0, 1)
    if state is not None and not isinstance(state, tuple):
        state = (state,)
    h0 = None if state is None else state[0]
    c0 = None if state is None or kind == "GRU" else state[1]
    traces = layer_traces(rnn, x, h0=h0, c0=c0)
    output = np.concatenate([t["hidden"] for t in traces[-1]], axis=-1)
    if batched_first:
        output = output.swapaxes(0, 1)
    # Final state: the forward direction ends at the last position, the backward at the first.
    ends = [(t, -1 if d == 0 else 0) for layer in traces for d, t in enumerate(layer)]
    h_n = np.stack([t["hidden"][end] for t, end in ends])
    if kind == "GRU":
        return output, (h_n,)
    return output, (h_n, np.stack([t["cell"][end] for t, end in ends]))
