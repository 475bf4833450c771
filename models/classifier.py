"""The recurrent sentiment classifier and the predictor that serves it (pure torch, no TorchServe).

    python -m models.classifier artifacts/sentiment "a gripping , funny movie" "dull and lifeless"

Variable-length batches are packed (``pack_padded_sequence``) and pooling masks padded steps,
so a text gets the same answer alone or in any batch: the handler batches requests from
different users together, and a user must not be able to tell who else was in the batch.
"""

from __future__ import annotations

import sys
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


class SentimentPredictor:
    """Texts in, labels and probabilities out; one forward pass per call of `predict`."""

    def __init__(
        self,
        model: nn.Module,
        tokenizer: Tokenizer,
        config: ClassifierConfig | None = None,
        device: str | torch.device = "cpu",
        labels: tuple[str, ...] = LABELS,
        max_tokens: int | None = MAX_TOKENS,
    ) -> None:
        self.device = torch.device(device)
        self.model = model.to(self.device).eval()
        # What gate inspection reads (embedding, rnn): the fp32 model behind an int8 one.
        self.float_model = getattr(model, "float_model", self.model)
        self.config = config if config is not None else model.config
        self.tokenizer = tokenizer
        self.labels = tuple(labels)
        self.max_tokens = max_tokens

    @classmethod
    def from_artifact(
        cls,
        directory: str | Path,
        device: str | torch.device = "cpu",
        quantize: str | None = None,
        max_tokens: int | None = MAX_TOKENS,
    ) -> SentimentPredictor:
        """Load an artifact folder; ``quantize="int8"`` serves `Int8Classifier` (CPU, LSTM only):
        int8 products with per-row scales, so answers stay independent of the batch (bit for
        bit on one thread; see models/int8_classifier.py). ``quantize_dynamic`` was dropped
        for this: its per-tensor activation scale let batch mates move a text's probabilities
        (SST-2 dev, batches of 16 vs one by one: up to 0.04, 3 of 872 labels flipped).
        """
        artifact = load_artifact(directory)
        if artifact.kind != "sentiment":
            raise ValueError(f"{directory} holds a {artifact.kind!r} model, not 'sentiment'")
        config = ClassifierConfig(**artifact.model)
        model = RecurrentClassifier(config)
        model.load_state_dict(artifact.state_dict)
        model.eval()
        device = torch.device(device)
        if quantize not in (None, "", "none"):
            if quantize != "int8":
                raise ValueError(f"quantize must be 'int8' or None, not {quantize!r}")
            if device.type != "cpu":
                raise ValueError("the int8 classifier runs on CPU only")
            from models.int8_classifier import Int8Classifier  # it imports this module

            model = Int8Classifier(model)
        labels = tuple(artifact.extra.get("labels", LABELS))
        return cls(model, artifact.tokenizer, config, device, labels, max_tokens)

    def encode(
        self, texts: list[str], max_tokens: int | None = None
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """Right-padded ids [B, T] on the predictor's device and lengths [B] on the CPU.

        A text with no tokens (empty, or only spaces) becomes a single pad token, whose
        embedding is zero: the model then answers from its biases alone, the same "no
        evidence" answer for every such text, instead of failing on a zero-length sequence.
        Only the first ``max_tokens`` tokens (default: the predictor's) of a text are read.
        """
        limit = max_tokens if max_tokens is not None else self.max_tokens
        rows = [row[:limit] if limit else row for row in self.tokenizer.encode_batch(texts)]
        ids, lengths = pad_batch(rows, self.config.pad_id)
        return ids.to(self.device), lengths

    @torch.inference_mode()
    def predict_logits(self, ids: torch.Tensor, lengths: torch.Tensor) -> torch.Tensor:
        """Raw logits [B, C] (float32, CPU) for encoded input; benchmarks time this alone."""
        return self.model(ids.to(self.device), lengths).float().cpu()

    @torch.inference_mode()
    def predict(self, texts: list[str]) -> list[dict[str, Any]]:
        """One answer per text: {"label", "score" (its probability), "probabilities"}."""
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


if __name__ == "__main__":
    predictor = SentimentPredictor.from_artifact(sys.argv[1])
    for text, answer in zip(sys.argv[2:], predictor.predict(sys.argv[2:]), strict=True):
        print(f"{answer['label']:>8} {answer['score']:.3f}  {text}")
