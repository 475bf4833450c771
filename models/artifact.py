"""The on-disk form of a trained model: the unit that training writes and serving reads.

An artifact is a folder holding ``config.json`` (what kind of model, its hyper-parameters,
its labels and measured quality), ``weights.pt`` (a state dict) and ``tokenizer.model`` (a
sentencepiece model, or a `models.text.WordTokenizer` vocabulary as JSON).
The same folder is what a TorchServe archive unpacks to, so a model can be loaded
identically in a notebook, a benchmark or a handler.
"""

from __future__ import annotations

import json
import shutil
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch

from models import atomic
from models.text import WordTokenizer, is_word_vocabulary
from models.tokenizer import Tokenizer

CONFIG_FILE = "config.json"
WEIGHTS_FILE = "weights.pt"
TOKENIZER_FILE = "tokenizer.model"
ARTIFACT_FILES = (CONFIG_FILE, WEIGHTS_FILE, TOKENIZER_FILE)


@dataclass
class Artifact:
    """A loaded artifact. ``model`` holds the model's constructor keyword arguments."""

    kind: str
    model: dict[str, Any]
    state_dict: dict[str, torch.Tensor]
    tokenizer: Tokenizer | WordTokenizer
    extra: dict[str, Any] = field(default_factory=dict)


def save_artifact(
    directory: str | Path,
    kind: str,
    model_config: dict[str, Any],
    state_dict: dict[str, torch.Tensor],
    tokenizer_file: str | Path,
    lowercase: bool = False,
    **extra: Any,
) -> Path:
    """Write an artifact folder; ``extra`` (labels, metrics, training settings) goes to config.

    Each file is replaced atomically and the weights come last: make takes ``weights.pt`` as
    the sign of a finished artifact, so an interrupted save is retried, never half used. The
    old weights go first: left beside a new tokenizer or config, they would look finished."""
    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    (directory / WEIGHTS_FILE).unlink(missing_ok=True)
    if Path(tokenizer_file).resolve() != (directory / TOKENIZER_FILE).resolve():
        with atomic.replacing(directory / TOKENIZER_FILE) as temporary:
            shutil.copyfile(tokenizer_file, temporary)
    config = {"kind": kind, "model": model_config, "lowercase": lowercase, **extra}
    atomic.write_text(directory / CONFIG_FILE, json.dumps(config, indent=2, sort_keys=True) + "\n")
    with atomic.replacing(directory / WEIGHTS_FILE) as temporary:
        torch.save({k: v.detach().cpu() for k, v in state_dict.items()}, temporary)
    return directory


def load_artifact(directory: str | Path) -> Artifact:
    directory = Path(directory)
    config = json.loads((directory / CONFIG_FILE).read_text())
    state_dict = torch.load(directory / WEIGHTS_FILE, map_location="cpu", weights_only=True)
    lowercase = config.pop("lowercase", False)
    path = directory / TOKENIZER_FILE
    tokenizer = WordTokenizer.load(path) if is_word_vocabulary(path) else Tokenizer(path, lowercase)
    return Artifact(
        kind=config.pop("kind"),
        model=config.pop("model"),
        state_dict=state_dict,
        tokenizer=tokenizer,
        extra=config,
    )
