"""Recurrent language model (LSTM or GRU) and its fast single-token decode step.

Training and prompt prefill use `nn.LSTM`/`nn.GRU` over whole sequences. Decoding one token
at a time through `nn.LSTM` pays a large per-call overhead on the oneDNN path (see
../shared/docs/cpu-performance-notes.md), so `DecodeStep` re-packs the same weights into one
pre-transposed matrix per layer and does a single GEMM over [x, h] per layer and step.
`tests/unit/test_language_model.py` proves both paths equal within 1e-5.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any

import torch
from torch import nn

CELLS = {"lstm": nn.LSTM, "gru": nn.GRU}

# Recurrent state: (h, c) for an LSTM, (h,) for a GRU; each [layers, batch, hidden].
State = tuple[torch.Tensor, ...]


@dataclass
class LMConfig:
    vocab_size: int
    embed_dim: int = 256
    hidden_dim: int = 512
    num_layers: int = 2
    dropout: float = 0.2
    cell: str = "lstm"
    tie_weights: bool = False

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


class RecurrentLM(nn.Module):
    """Embedding -> LSTM/GRU -> linear head over the vocabulary; state carried across calls."""

    def __init__(self, config: LMConfig) -> None:
        super().__init__()
        if config.cell not in CELLS:
            raise ValueError(f"cell must be one of {sorted(CELLS)}, got {config.cell!r}")
        self.config = config
        self.embedding = nn.Embedding(config.vocab_size, config.embed_dim)
        self.rnn = CELLS[config.cell](
            config.embed_dim,
            config.hidden_dim,
            num_layers=config.num_layers,
            batch_first=True,
            dropout=config.dropout if config.num_layers > 1 else 0.0,
        )
        self.drop = nn.Dropout(config.dropout)
        self.head = nn.Linear(config.hidden_dim, config.vocab_size)
        if config.tie_weights:
            if config.embed_dim != config.hidden_dim:
                raise ValueError("tie_weights needs embed_dim == hidden_dim")
            self.head.weight = self.embedding.weight

    def forward(self, ids: torch.Tensor, state: State | None = None) -> tuple[torch.Tensor, State]:
        """Logits [B, T, V] for ids [B, T], and the state after the last position."""
        outputs, state = self.run_rnn(self.drop(self.embedding(ids)), state)
        return self.head(self.drop(outputs)), state

    def run_rnn(self, inputs: Any, state: State | None) -> tuple[Any, State]:
        """The recurrent layers on embeddings (a tensor or a PackedSequence), state as a tuple."""
        if state is not None and self.config.cell == "gru":
            outputs, hidden = self.rnn(inputs, state[0])
        else:
            outputs, hidden = self.rnn(inputs, state)
        return outputs, (hidden,) if self.config.cell == "gru" else tuple(hidden)


class DecodeStep(nn.Module):
    """One token for a batch of rows: the same maths as the model's RNN, one GEMM per layer.

    Each layer's input and hidden weights become one `nn.Linear` over the concatenation
    [x, h], so dynamic int8 quantisation can be applied to these modules and the head alike.
    For a GRU the reset gate multiplies only the hidden part of the candidate, so its matrix
    keeps the candidate's input and hidden products in separate output columns.
    """

    def __init__(self, model: RecurrentLM) -> None:
        super().__init__()
        config = model.config
        self.cell = config.cell
        self.hidden = config.hidden_dim
        self.embedding = model.embedding
        self.head = model.head
        self.layers = nn.ModuleList()
        for layer in range(config.num_layers):
            w_ih = getattr(model.rnn, f"weight_ih_l{layer}").detach()
            w_hh = getattr(model.rnn, f"weight_hh_l{layer}").detach()
            b_ih = getattr(model.rnn, f"bias_ih_l{layer}").detach()
            b_hh = getattr(model.rnn, f"bias_hh_l{layer}").detach()
            weight, bias = (_lstm_matrix if self.cell == "lstm" else _gru_matrix)(
                w_ih, w_hh, b_ih, b_hh
            )
            linear = nn.Linear(weight.shape[1], weight.shape[0])
            linear.weight.data.copy_(weight)
            linear.bias.data.copy_(bias)
            self.layers.append(linear)

    def forward(self, ids: torch.Tensor, state: State) -> tuple[torch.Tensor, State]:
        """Logits [B, V] for one token per row (ids [B]) and the new state."""
        x = self.embedding(ids)
        hs, cs = [], []
        for index, linear in enumerate(self.layers):
            h = state[0][index]
            gates = linear(torch.cat([x, h], dim=1))
            if self.cell == "lstm":
                i, f, g, o = gates.chunk(4, dim=1)
                c = torch.sigmoid(f) * state[1][index] + torch.sigmoid(i) * torch.tanh(g)
                h = torch.sigmoid(o) * torch.tanh(c)
                cs.append(c)
            else:
                rz, n_x, n_h = gates.split([2 * self.hidden, self.hidden, self.hidden], dim=1)
                r, z = torch.sigmoid(rz).chunk(2, dim=1)
                n = torch.tanh(n_x + r * n_h)
                h = (1 - z) * n + z * h
            hs.append(h)
            x = h
        new_state = (torch.stack(hs), torch.stack(cs)) if cs else (torch.stack(hs),)
        return self.head(x), new_state


def _lstm_matrix(w_ih, w_hh, b_ih, b_hh) -> tuple[torch.Tensor, torch.Tensor]:
    # PyTorch's gate order (i, f, g, o) is kept; the Linear sees [x, h].
    return torch.cat([w_ih, w_hh], dim=1), b_ih + b_hh


def _gru_matrix(w_ih, w_hh, b_ih, b_hh) -> tuple[torch.Tensor, torch.Tensor]:
    hidden = w_hh.shape[1]
    inputs = w_ih.shape[1]
    weight = torch.zeros(4 * hidden, inputs + hidden, dtype=w_ih.dtype)
    weight[: 2 * hidden, :inputs] = w_ih[: 2 * hidden]  # r, z from x
    weight[: 2 * hidden, inputs:] = w_hh[: 2 * hidden]  # r, z from h (summed)
    weight[2 * hidden : 3 * hidden, :inputs] = w_ih[2 * hidden :]  # candidate from x
    weight[3 * hidden :, inputs:] = w_hh[2 * hidden :]  # candidate from h (times r)
    bias = torch.cat(
        [b_ih[: 2 * hidden] + b_hh[: 2 * hidden], b_ih[2 * hidden :], b_hh[2 * hidden :]]
    )
    return weight, bias


def zero_state(config: LMConfig, batch: int, device: torch.device | str = "cpu") -> State:
    shape = (config.num_layers, batch, config.hidden_dim)
    h = torch.zeros(shape, device=device)
    return (h, torch.zeros(shape, device=device)) if config.cell == "lstm" else (h,)
