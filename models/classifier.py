"""The recurrent text classifier (pure torch, no TorchServe); the predictor that serves it is
`models.classifier_predictor`, which also builds its int8 twin (`models.int8_classifier`).

Variable-length batches are packed (``pack_padded_sequence``) and pooling masks padded steps,
so a text gets the same answer alone or in any batch: the handler batches requests from
different users together, and a user must not be able to tell who else was in the batch.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any

import torch
from torch import nn
from torch.nn.utils.rnn import pack_padded_sequence, pad_packed_sequence

LABELS = ("negative", "positive")
CELLS = {"lstm": nn.LSTM, "gru": nn.GRU}
# "last": final hidden state of each direction (the textbook readout); "max"/"mean": over time
# of the top layer's outputs; "max_last" / "max_mean": max and last (or mean) concatenated
# (max-pooling keeps a strong cue from anywhere in a long sentence, which the last state tends
# to forget).
POOLINGS = ("last", "max", "mean", "max_last", "max_mean")
# Serving accepts 2,000 characters; SST-2's longest sentence is ~60 tokens. The cap bounds the
# cost of one hostile request without touching any real review.
MAX_TOKENS = 512


@dataclass
class ClassifierConfig:
    """Hyper-parameters of `RecurrentClassifier`; stored as the artifact's ``model`` config.
    Its defaults are the served model's and their one home: training.train_sentiment's
    options take theirs from here."""

    vocab_size: int
    embed_dim: int = 50  # GloVe's 50-d rows (the trainer may widen them with teacher vectors)
    hidden_dim: int = 192
    num_layers: int = 2
    bidirectional: bool = True
    dropout: float = 0.4  # between recurrent layers and before the output layer
    embed_dropout: float = 0.2  # on embedding vectors, GloVe rows and learned ones alike
    cell: str = "lstm"
    num_classes: int = 2
    pad_id: int = 0
    pooling: str = "max_mean"

    def __post_init__(self) -> None:
        if self.cell not in CELLS:
            raise ValueError(f"cell must be one of {sorted(CELLS)}, not {self.cell!r}")
        if self.pooling not in POOLINGS:
            raise ValueError(f"pooling must be one of {POOLINGS}, not {self.pooling!r}")

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


class RecurrentClassifier(nn.Module):
    """Embedding -> (Bi)LSTM/GRU -> pooling -> dropout -> linear logits.

    The attribute names ``embedding`` and ``rnn`` are public: gate inspection reads them.
    """

    def __init__(self, config: ClassifierConfig) -> None:
        super().__init__()
        self.config = config
        self.embedding = nn.Embedding(config.vocab_size, config.embed_dim, config.pad_id)
        self.embed_dropout = nn.Dropout(config.embed_dropout)
        self.rnn = CELLS[config.cell](
            config.embed_dim,
            config.hidden_dim,
            num_layers=config.num_layers,
            bidirectional=config.bidirectional,
            dropout=config.dropout if config.num_layers > 1 else 0.0,
            batch_first=True,
        )
        self.directions = 2 if config.bidirectional else 1
        width = config.hidden_dim * self.directions
        features = width * (2 if config.pooling in ("max_last", "max_mean") else 1)
        self.dropout = nn.Dropout(config.dropout)
        self.output = nn.Linear(features, config.num_classes)

    def forward(self, ids: torch.Tensor, lengths: torch.Tensor) -> torch.Tensor:
        """``ids`` [B, T] right-padded, ``lengths`` [B] (each >= 1) -> logits [B, C]."""
        x = self.embed_dropout(self.embedding(ids))
        lengths_cpu = lengths.to("cpu", torch.int64)
        # Packing only matters when some row is padded; an unpadded batch (one text, or the
        # trainer's batches of one length) stays on the dense path, which computes the same
        # numbers on oneDNN's fused kernels: faster on CPU, and bf16 under autocast.
        packed = bool((lengths_cpu != ids.shape[1]).any())
        if packed:
            x = pack_padded_sequence(x, lengths_cpu, batch_first=True, enforce_sorted=False)
        outputs, state = self.rnn(x)
        hidden = state[0] if isinstance(state, tuple) else state  # LSTM (h, c); GRU h
        pieces = []
        if self.config.pooling in ("last", "max_last"):
            # With packing, "final" means each row's own last token (forward direction) and its
            # first token (backward direction).
            pieces.append(torch.cat(list(hidden[-self.directions :]), dim=-1))
        if self.config.pooling != "last":
            if packed:
                outputs, _ = pad_packed_sequence(outputs, batch_first=True)
            steps = torch.arange(outputs.shape[1], device=outputs.device)
            valid = (steps[None, :] < lengths.to(outputs.device)[:, None]).unsqueeze(-1)
            if self.config.pooling != "mean":
                pieces.append(outputs.masked_fill(~valid, float("-inf")).amax(dim=1))
            if self.config.pooling in ("mean", "max_mean"):
                summed = outputs.masked_fill(~valid, 0.0).sum(dim=1)
                pieces.append(summed / lengths.to(outputs.device, outputs.dtype)[:, None])
        return self.output(self.dropout(torch.cat(pieces, dim=-1)))


def pad_batch(rows: list[list[int]], pad_id: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Right-padded ids [B, T] and lengths [B]; a row with no tokens becomes one pad token
    (packing needs lengths >= 1). Shared by training and serving so both see the same input."""
    rows = [row or [pad_id] for row in rows]
    lengths = torch.tensor([len(row) for row in rows], dtype=torch.int64)
    ids = torch.full((len(rows), int(lengths.max()) if rows else 1), pad_id, dtype=torch.int64)
    for i, row in enumerate(rows):
        ids[i, : len(row)] = torch.tensor(row, dtype=torch.int64)
    return ids, lengths
