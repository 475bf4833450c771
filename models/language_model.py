"""Recurrent language model (LSTM or GRU) and the fast, batch-invariant step that serves it.

    python -m benchmarks.decode        # nn.LSTM single steps vs this step, fp32 vs int8

Training and scoring use `nn.LSTM`/`nn.GRU` over whole sequences. Decoding one token at a time
through `nn.LSTM` pays a large per-call overhead on the oneDNN path (see
../shared/docs/cpu-performance-notes.md), so `DecodeStep` re-packs the same weights into one
matrix per layer and does a single GEMM over [x, h] per layer and step; the serving engine
uses it for prompts too (row-masked), so one code path decides every number a user sees.
`tests/unit/test_language_model.py` proves it equal to `nn.LSTM`/`nn.GRU` within 1e-5.

Batch invariance (a seeded request must give the same text alone or in any batch): no
arithmetic may depend on how many rows a batch has.
- int8 (`Int8Linear`): activations are quantised per row and multiplied as integers
  (`torch._int_mm`, exact int32 sums), so a row's result cannot depend on its batch mates.
  `quantize_dynamic` was rejected for this: it scales activations per *tensor*, so one row's
  values moved another's logits by up to 0.15 and 11 of 15 seeded requests changed text.
- fp32: BLAS libraries pick kernels (and summation orders) by the number of rows: MKL on this
  AMD CPU gave bitwise equal rows only for some row counts, a different set on the H100
  host's CPU, and cuBLAS another (rows equal only from 33 rows up). So every fp32 GEMM call
  gets exactly `FP32_ROW_BLOCK` rows (16 on CPU, 64 on CUDA): larger batches are cut into
  blocks, smaller ones zero-padded. On 2 CPU threads a step then costs about 3x at one row
  and 1.5x at 64 rows (4-row blocks: 2.5x and 4x); free on CUDA. int8, the recommended CPU
  mode, needs none of it.
"""

from __future__ import annotations

from collections.abc import Callable
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


class Int8Linear(nn.Module):
    """``x @ W.T + b`` with int8 weights (one scale per output row) and int8 activations (one
    scale per input row), multiplied as integers.

    Per-row activation scales and exact integer sums make every output row a function of its
    own input row only, unlike ``quantize_dynamic`` (per-tensor activation scale), and they
    lose less: on the trained model the validation loss moved by < 0.001 nats/char.
    """

    def __init__(self, linear: nn.Linear) -> None:
        super().__init__()
        weight = linear.weight.detach().float()
        scale = weight.abs().amax(dim=1).clamp(min=1e-12) / 127
        self.register_buffer("weight", torch.round(weight / scale[:, None]).to(torch.int8))
        self.register_buffer("weight_scale", scale)
        bias = linear.bias.detach().float() if linear.bias is not None else torch.zeros_like(scale)
        self.register_buffer("bias", bias.clone())

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        scale = x.abs().amax(dim=1, keepdim=True).clamp(min=1e-12) / 127
        quantized = torch.round(x / scale).to(torch.int8)
        # The transposed view of the [out, in] matrix is the layout _int_mm runs fastest on.
        products = torch._int_mm(quantized, self.weight.t())
        return torch.addcmul(self.bias, products.float(), scale * self.weight_scale)


# Rows per fp32 GEMM call, by device type: every call gets exactly this many rows (the last
# block zero-padded), so the BLAS never picks another kernel for another batch size. int8
# needs no blocks: its sums are exact.
FP32_ROW_BLOCK = {"cpu": 16, "cuda": 64}


class DecodeStep(nn.Module):
    """One token for a batch of rows: the same maths as the model's RNN, one GEMM per layer.

    Each layer's input and hidden weights become one `nn.Linear` over the concatenation
    [x, h]. For a GRU the reset gate multiplies only the hidden part of the candidate, so its
    matrix keeps the candidate's input and hidden products in separate output columns.
    ``quantize="int8"`` swaps every layer and the head for `Int8Linear` (CPU only).
    """

    def __init__(self, model: RecurrentLM, quantize: str | None = None) -> None:
        super().__init__()
        if quantize not in (None, "int8"):
            raise ValueError(f"quantize must be None or 'int8', got {quantize!r}")
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


def zero_state(config: LMConfig, batch: int, device: torch.device | str = "cpu") -> State:
    shape = (config.num_layers, batch, config.hidden_dim)
    h = torch.zeros(shape, device=device)
    return (h, torch.zeros(shape, device=device)) if config.cell == "lstm" else (h,)
