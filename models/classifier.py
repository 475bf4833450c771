"""Recurrent sentence classifier (LSTM or GRU) and the batched predictor that serves it.

Variable-length batches are packed, so a sentence gets exactly the same logits whatever it is
batched with: padding never reaches the recurrent cells or the pooling.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import torch
from torch import nn
from torch.nn.utils.rnn import pack_padded_sequence, pad_packed_sequence

from models.artifact import load_artifact
from models.tokenizer import Tokenizer

LABELS = ("negative", "positive")
CELLS = {"lstm": nn.LSTM, "gru": nn.GRU}
POOLINGS = ("last", "max", "max_last")


@dataclass
class ClassifierConfig:
    vocab_size: int
    embed_dim: int = 128
    hidden_dim: int = 256
    num_layers: int = 2
    bidirectional: bool = True
    dropout: float = 0.3
    embed_dropout: float = 0.2
    cell: str = "lstm"
    num_classes: int = 2
    pad_id: int = 0
    pooling: str = "max_last"  # "last", "max", or max over time concatenated with last states

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


class RecurrentClassifier(nn.Module):
    """Embedding -> (Bi)LSTM/GRU -> pooled states -> linear. ``.embedding``/``.rnn`` are public:
    gate inspection reads their weights."""

    def __init__(self, config: ClassifierConfig) -> None:
        super().__init__()
        if config.cell not in CELLS:
            raise ValueError(f"cell must be one of {sorted(CELLS)}, got {config.cell!r}")
        self.config = config
        self.embedding = nn.Embedding(
            config.vocab_size, config.embed_dim, padding_idx=config.pad_id
        )
        self.embed_dropout = nn.Dropout(config.embed_dropout)
        self.rnn = CELLS[config.cell](
            config.embed_dim,
            config.hidden_dim,
            num_layers=config.num_layers,
            batch_first=True,
            dropout=config.dropout if config.num_layers > 1 else 0.0,
            bidirectional=config.bidirectional,
        )
        directions = 2 if config.bidirectional else 1
        if config.pooling not in POOLINGS:
            raise ValueError(f"pooling must be one of {POOLINGS}, got {config.pooling!r}")
        features = config.hidden_dim * directions * (2 if config.pooling == "max_last" else 1)
        self.head = nn.Sequential(
            nn.Dropout(config.dropout), nn.Linear(features, config.num_classes)
        )

    def forward(self, ids: torch.Tensor, lengths: torch.Tensor) -> torch.Tensor:
        """Logits [B, C] for token ids [B, T] whose true lengths are ``lengths`` [B] (all >= 1)."""
        embedded = self.embed_dropout(self.embedding(ids))
        packed = pack_padded_sequence(
            embedded, lengths.cpu(), batch_first=True, enforce_sorted=False
        )
        outputs, hidden = self.rnn(packed)
        if isinstance(hidden, tuple):  # LSTM returns (h, c)
            hidden = hidden[0]
        # Last layer's final state of each direction: forward saw the whole sentence left to
        # right, backward right to left; packing makes "final" mean each row's own last token.
        directions = 2 if self.config.bidirectional else 1
        last = torch.cat(list(hidden[-directions:]), dim=-1)
        if self.config.pooling == "last":
            return self.head(last)
        padded, _ = pad_packed_sequence(outputs, batch_first=True, padding_value=float("-inf"))
        pooled = padded.max(dim=1).values
        if self.config.pooling == "max":
            return self.head(pooled)
        return self.head(torch.cat([pooled, last], dim=-1))


class SentimentPredictor:
    """Text in, labels and probabilities out: tokenization, padding and one forward pass."""

    def __init__(
        self,
        model: nn.Module,
        tokenizer: Tokenizer,
        config: ClassifierConfig,
        device: torch.device | str = "cpu",
        labels: tuple[str, ...] = LABELS,
        max_tokens: int = 512,
    ) -> None:
        self.model = model.to(device).eval()
        self.tokenizer = tokenizer
        self.config = config
        self.device = torch.device(device)
        self.labels = tuple(labels)
        self.max_tokens = max_tokens

    @classmethod
    def from_artifact(
        cls, directory: str | Path, device: torch.device | str = "cpu", quantize: str | None = None
    ) -> SentimentPredictor:
        artifact = load_artifact(directory)
        config = ClassifierConfig(**artifact.model)
        model = RecurrentClassifier(config)
        model.load_state_dict(artifact.state_dict)
        model.eval()
        if quantize == "int8":
            model = quantize_dynamic_int8(model)
        elif quantize:
            raise ValueError(f"unknown quantization {quantize!r}")
        model.to(device)
        labels = tuple(artifact.extra.get("labels", LABELS))
        return cls(model, artifact.tokenizer, config, device, labels)

    def encode(self, texts: list[str]) -> tuple[torch.Tensor, torch.Tensor]:
        """Padded ids [B, T] and lengths [B]. A text with no tokens becomes one unknown token,
        so every row has a length of at least 1 (packing requires it)."""
        unk = self.tokenizer.unk_id
        rows = [ids[: self.max_tokens] or [unk] for ids in self.tokenizer.encode_batch(texts)]
        lengths = torch.tensor([len(row) for row in rows], dtype=torch.long)
        ids = torch.full((len(rows), int(lengths.max())), self.config.pad_id, dtype=torch.long)
        for index, row in enumerate(rows):
            ids[index, : len(row)] = torch.tensor(row, dtype=torch.long)
        return ids, lengths

    @torch.inference_mode()
    def predict_logits(self, ids: torch.Tensor, lengths: torch.Tensor) -> torch.Tensor:
        return self.model(ids.to(self.device), lengths).float().cpu()

    def predict(self, texts: list[str]) -> list[dict[str, Any]]:
        if not texts:
            return []
        probabilities = torch.softmax(self.predict_logits(*self.encode(texts)), dim=-1)
        answers = []
        for row in probabilities.tolist():
            best = max(range(len(row)), key=row.__getitem__)
            answers.append(
                {
                    "label": self.labels[best],
                    "score": row[best],
                    "probabilities": dict(zip(self.labels, row, strict=True)),
                }
            )
        return answers


def quantize_dynamic_int8(model: nn.Module) -> nn.Module:
    """Dynamic int8 weights for the recurrent and linear layers (CPU only)."""
    from torch.ao.quantization import quantize_dynamic

    return quantize_dynamic(model, {nn.LSTM, nn.GRU, nn.Linear}, dtype=torch.qint8)
