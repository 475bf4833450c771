"""Recurrent language model (LSTM or GRU) as it is trained and scored, and its state helpers.

    python -m training.train_lm --out artifacts/lm     # trains one and writes its artifact

`RecurrentLM` runs `nn.LSTM`/`nn.GRU` over whole sequences, carrying the recurrent state
across calls. Serving decodes it one token at a time through `DecodeStep`
(models/decode_step.py), which re-packs these same weights for speed and batch invariance.
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
    """The LM's shape, stored as the artifact's ``model`` config. Its defaults are the served
    model's and their one home: training.train_lm's options take theirs from here."""

    vocab_size: int
    embed_dim: int = 128
    hidden_dim: int = 512
    num_layers: int = 2
    dropout: float = 0.1
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


def zero_state(config: LMConfig, batch: int, device: torch.device | str = "cpu") -> State:
    """The state every sequence starts from, shaped as `RecurrentLM` returns it."""
    shape = (config.num_layers, batch, config.hidden_dim)
    h = torch.zeros(shape, device=device)
    return (h, torch.zeros(shape, device=device)) if config.cell == "lstm" else (h,)
