"""Texts in, labels and probabilities out: the predictor that serves any trained
`models.classifier.RecurrentClassifier` (sentiment, or a model added beside it), in fp32 or as
its batch-invariant int8 twin. Pure torch, no TorchServe: the handlers, the benchmarks and the
lessons load a classifier through it.

    python -m models.classifier_predictor artifacts/sentiment "a gripping , funny movie" "dull"

Its own module, above both the model and the int8 twin (which imports the model), so that
neither imports the other back.
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

import torch
from torch import nn

from models.artifact import load_artifact
from models.classifier import LABELS, MAX_TOKENS, ClassifierConfig, RecurrentClassifier, pad_batch
from models.int8_classifier import Int8Classifier
from models.quantize import resolve_quantize
from models.tokenizer import Tokenizer


def classifier_quantize(requested: str | None, cell: str, device: torch.device) -> str | None:
    """The mode (``"int8"`` or ``None``: fp32) a classifier of ``cell`` runs ``requested``
    in on ``device``: `resolve_quantize`, knowing that the int8 classifier has LSTM cells only."""
    return resolve_quantize(requested, device, int8_available=cell == "lstm")


class ClassifierPredictor:
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
    ) -> ClassifierPredictor:
        """Load an artifact folder; ``quantize="int8"`` serves `Int8Classifier` (CPU, LSTM only;
        ``"auto"``: where it is the faster, models/quantize.py):
        int8 products with per-row scales, so answers stay independent of the batch (bit for
        bit on one thread; see models/int8_classifier.py). ``quantize_dynamic`` was dropped
        for this: its per-tensor activation scale let batch mates move a text's probabilities
        (SST-2 dev, batches of 16 vs one by one: up to 0.04, 3 of 872 labels flipped).
        """
        artifact = load_artifact(directory)
        try:
            config = ClassifierConfig(**artifact.model)
        except TypeError as exc:  # e.g. a language model's settings
            raise ValueError(
                f"{directory} holds a {artifact.kind!r} model, not a classifier"
            ) from exc
        model = RecurrentClassifier(config)
        model.load_state_dict(artifact.state_dict)
        model.eval()
        device = torch.device(device)
        if classifier_quantize(quantize, config.cell, device):
            if device.type != "cpu":
                raise ValueError("the int8 classifier runs on CPU only")
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
    predictor = ClassifierPredictor.from_artifact(sys.argv[1])
    for text, answer in zip(sys.argv[2:], predictor.predict(sys.argv[2:]), strict=True):
        print(f"{answer['label']:>8} {answer['score']:.3f}  {text}")
