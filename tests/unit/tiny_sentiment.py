"""A tiny sentiment artifact (random weights, sentencepiece trained on a few sentences) for the
tests of gate explanations and the inspect commands: real files, built in a second."""

from __future__ import annotations

from dataclasses import asdict
from pathlib import Path
from typing import Any

import torch

from models.artifact import save_artifact
from models.classifier import ClassifierConfig, RecurrentClassifier
from models.tokenizer import Tokenizer
from training.tokenizer import train_tokenizer

SENTENCES = [
    "a gripping , funny movie",
    "the plot is dull and the actors are boring",
    "a great film with a good story",
    "not bad at all , but not great either",
    "it was a bad , bad movie",
    "funny , warm and gripping from start to end",
]


def write_tsv(path: Path, rows: list[tuple[str, int]]) -> None:
    """A sentiment split file in the shared data layout (sentence<TAB>label)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("sentence\tlabel\n" + "".join(f"{text}\t{label}\n" for text, label in rows))


def tiny_sentiment_artifact(
    directory: Path, cell: str = "lstm", hidden_dim: int = 6, **extra: Any
) -> Path:
    """Write an artifact folder with a 2-layer bidirectional classifier; ``extra`` goes into
    its config (e.g. ``training={"source": ...}``)."""
    tokenizer_file = train_tokenizer(SENTENCES, directory / "scratch" / "tok", vocab_size=60)
    tokenizer = Tokenizer(tokenizer_file, lowercase=True)
    torch.manual_seed(0)
    config = ClassifierConfig(
        vocab_size=tokenizer.vocab_size, embed_dim=5, hidden_dim=hidden_dim, cell=cell
    )
    model = RecurrentClassifier(config)
    return save_artifact(
        directory / "artifact",
        kind="sentiment",
        model_config=asdict(config),
        state_dict=model.state_dict(),
        tokenizer_file=tokenizer_file,
        lowercase=True,
        labels=["negative", "positive"],
        **extra,
    )
