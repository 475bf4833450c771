"""The fast, batch-invariant one-token step that serves the language model.

    python -m benchmarks.decode        # nn.LSTM single steps vs this step, fp32 vs int8

Training and scoring use `nn.LSTM`/`nn.GRU` over whole sequences (models/language_model.py).
Decoding one token at a time through `nn.LSTM` pays a large per-call overhead on the oneDNN
path (see docs/experiments/cpu.md), so `DecodeStep` re-packs the same weights
into one matrix per layer and does a single GEMM over [x, h] per layer and step; the serving
engine uses it for prompts too (row-masked), so one code path decides every number a user
sees. `tests/unit/test_decode_step.py` proves it equal to `nn.LSTM`/`nn.GRU` within 1e-5.

Batch invariance (a seeded request must give the same text alone or in any batch): no
arithmetic may depend on how many rows a batch has.
- int8 (`Int8Linear`, models/int8_linear.py): activations are quantised per row and
  multiplied as integers, so a row's result cannot depend on its batch mates.
- fp32: BLAS libraries pick kernels (and summation orders) by the number of rows: MKL on this
  AMD CPU gave bitwise equal rows only for some row counts, a different set on the H100
  host's CPU, and cuBLAS another (rows equal only from 33 rows up). So every fp32 GEMM call
  gets exactly `FP32_ROW_BLOCK` rows (16 on CPU, 64 on CUDA): larger batches are cut into
  blocks, smaller ones zero-padded. What that costs is measured by `python -m
  benchmarks.decode`, which times the fp32 step with and without its row blocks. int8, the
  recommended CPU mode, needs none of it.
"""

from __future__ import annotations

from collections.abc import Callable

import torch
from torch import nn

from models.int8_linear import Int8Linear
from models.language_model import RecurrentLM, State, zero_state
from models.quantize import resolve_quantize

# Rows per fp32 GEMM call, by device type: every call gets exactly this many rows (the last
# block zero-padded), so the BLAS never picks another kernel for another batch size. int8
# needs no blocks: its sums are exact.
FP32_ROW_BLOCK = {"cpu": 16, "cuda": 64}


class DecodeStep(nn.Module):
    """One token for a batch of rows: the same maths as the model's RNN, one GEMM per layer.

    Each layer's input and hidden weights become one `nn.Linear` over the concatenation
    [x, h]. For a GRU the reset gate multiplies only the hidden part of the candidate, so its
    matrix keeps the candidate's input and hidden products in separate output columns.
    ``quantize="int8"`` swaps every layer and the head for `Int8Linear` (CPU only); ``"auto"``
    does where it is the faster (models/quantize.py).
    """

    def __init__(self, model: RecurrentLM, quantize: str | None = None) -> None:
        super().__init__()
        quantize = resolve_quantize(quantize, model.head.weight.device)
        config = model.config
        self.config = config
        self.quantize = quantize
        self.embedding = model.embedding
        self.layers = nn.ModuleList()
        for layer in range(config.num_layers):
            w_ih = getattr(model.rnn, f"weight_ih_l{layer}").detach()
            w_hh = getattr(model.rnn, f"weight_hh_l{layer}").detach()
            b_ih = getattr(model.rnn, f"bias_ih_l{layer}").detach()
            b_hh = getattr(model.rnn, f"bias_hh_l{layer}").detach()
            weight, bias = (_lstm_matrix if config.cell == "lstm" else _gru_matrix)(
                w_ih, w_hh, b_ih, b_hh
            )
            linear = nn.Linear(weight.shape[1], weight.shape[0], device=weight.device)
            linear.weight.data.copy_(weight)
            linear.bias.data.copy_(bias)
            self.layers.append(Int8Linear(linear) if quantize else linear)
        self.head = Int8Linear(model.head) if quantize else model.head
        self.row_blocks = FP32_ROW_BLOCK  # {} gives up batch invariance for speed (benchmarks)

    @property
    def device(self) -> torch.device:
        """Where its weights live: the ids and states it is given must be there too."""
        return self.embedding.weight.device

    def forward(self, ids: torch.Tensor, state: State) -> tuple[torch.Tensor, State]:
        """Logits [B, V] for one token per row (ids [B]) and the new state."""
        state = self.advance(ids, state)
        return self.logits(state), state

    def advance(self, ids: torch.Tensor, state: State) -> State:
        """The state after feeding one token per row (no output layer)."""
        x = self.embedding(ids)
        hs, cs = [], []
        hidden = self.config.hidden_dim
        for index, linear in enumerate(self.layers):
            h = state[0][index]
            gates = self._matmul(linear, torch.cat([x, h], dim=1))
            if self.config.cell == "lstm":
                i, f, g, o = gates.chunk(4, dim=1)
                c = torch.sigmoid(f) * state[1][index] + torch.sigmoid(i) * torch.tanh(g)
                h = torch.sigmoid(o) * torch.tanh(c)
                cs.append(c)
            else:
                rz, n_x, n_h = gates.split([2 * hidden, hidden, hidden], dim=1)
                r, z = torch.sigmoid(rz).chunk(2, dim=1)
                n = torch.tanh(n_x + r * n_h)
                h = (1 - z) * n + z * h
            hs.append(h)
            x = h
        return (torch.stack(hs), torch.stack(cs)) if cs else (torch.stack(hs),)

    def logits(self, state: State) -> torch.Tensor:
        """Next-token logits [B, V] from the top layer's hidden state."""
        return self._matmul(self.head, state[0][-1])

    def prefill(self, ids: torch.Tensor, lengths: torch.Tensor) -> tuple[torch.Tensor, State]:
        """Run right-padded prompts ids [B, T] (true lengths [B], each >= 1) from a zero state.

        Every row takes the same steps it would take alone: a row whose prompt has ended keeps
        its state (per-row mask), so padding never reaches it. Returns the logits after each
        row's last prompt token and the states there.
        """
        state = zero_state(self.config, ids.shape[0], ids.device)
        for t in range(ids.shape[1]):
            moved = self.advance(ids[:, t], state)
            if bool((lengths > t).all()):
                state = moved
            else:
                live = (lengths > t).view(1, -1, 1)
                pairs = zip(moved, state, strict=True)
                state = tuple(torch.where(live, new, old) for new, old in pairs)
        return self.logits(state), state

    def _matmul(self, linear: Callable[[torch.Tensor], torch.Tensor], x: torch.Tensor):
        block = None if self.quantize else self.row_blocks.get(x.device.type)
        if block is None:
            return linear(x)
        rows = x.shape[0]
        padded = nn.functional.pad(x, (0, 0, 0, -rows % block))
        return torch.cat([linear(part) for part in padded.split(block)])[:rows]


def _lstm_matrix(w_ih, w_hh, b_ih, b_hh) -> tuple[torch.Tensor, torch.Tensor]:
    # PyTorch's gate order (i, f, g, o) is kept; the Linear sees [x, h].
    return torch.cat([w_ih, w_hh], dim=1), b_ih + b_hh


def _gru_matrix(w_ih, w_hh, b_ih, b_hh) -> tuple[torch.Tensor, torch.Tensor]:
    hidden = w_hh.shape[1]
    inputs = w_ih.shape[1]
    weight = torch.zeros(4 * hidden, inputs + hidden, dtype=w_ih.dtype, device=w_ih.device)
    weight[: 2 * hidden, :inputs] = w_ih[: 2 * hidden]  # r, z from x
    weight[: 2 * hidden, inputs:] = w_hh[: 2 * hidden]  # r, z from h (summed)
    weight[2 * hidden : 3 * hidden, :inputs] = w_ih[2 * hidden :]  # candidate from x
    weight[3 * hidden :, inputs:] = w_hh[2 * hidden :]  # candidate from h (times r)
    bias = torch.cat(
        [b_ih[: 2 * hidden] + b_hh[: 2 * hidden], b_ih[2 * hidden :], b_hh[2 * hidden :]]
    )
    return weight, bias
