"""The sentiment trainer's options: every setting one run depends on, its named profiles,
and the check that fails a misspelt choice before minutes of data loading
(`training.train_sentiment` parses them from the command line)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from handlers.registry import artifact_folder
from models.classifier import CELLS, POOLINGS, ClassifierConfig
from training import budget, cli
from training.batching import batch_order, equal_length_batches
from training.precision import PRECISIONS
from training.schedule import SHAPES

TOKENIZERS = ("words", "unigram", "bpe")
BATCHINGS = {"equal": equal_length_batches, "buckets": batch_order}

# Named settings that replace the defaults below before flags are applied.
# fmt: off
PROFILES: dict[str, dict[str, Any]] = {
    "default": {},
    # Opt-in (`make models PROFILE=fast`): half the perturbed copies for the teacher to label
    # and the student to read: about a minute shorter, a few tenths of a point lower (measured
    # per seed in docs/experiments/sentiment.md).
    "fast": dict(augment_copies=3),
    # Opt-in (`make models PROFILE=budget`): the whole run within a wall-clock budget sized so
    # that both trainers fit the first start (training.budget's arithmetic; docs/first-start.md).
    # Not the default until its quality is measured on both machine kinds.
    "budget": dict(minutes=budget.SENTIMENT_BUDGET_MINUTES),
    # Seconds on one core: for tests and `make models PROFILE=tiny`; learns little. It reads
    # words with GloVe rows like the default; the teacher has tests of its own.
    "tiny": dict(
        extra_words=500, teacher_epochs=0.0, augment_copies=0,  # no teacher, no copies
        hidden_dim=16, num_layers=1, dropout=0.1, embed_dropout=0.0, word_dropout=0.0,
        epochs=2, lr=5e-3, max_train=3000, batch_size=64,
    ),
}
# fmt: on


MODEL = cli.field_defaults(ClassifierConfig)  # the model's shape: declared in models/classifier.py


@dataclass
class TrainOptions(cli.RunOptions):
    """Everything one training run depends on; saved into the artifact's config."""

    source: str = "sst2_glue_phrases"
    out: str = artifact_folder("sentiment")
    seed: int = 13
    tokenizer: str = "words"  # words (PTB, GloVe-ready) or a sentencepiece type
    vocab_size: int = 16000  # sentencepiece only
    pretrained: str = "glove"  # glove or none (words only)
    extra_words: int = 20000  # most frequent GloVe words added to the training words
    embed_dim: int = MODEL["embed_dim"]
    embed_lr: float = 0.3  # embedding learning rate as a share of lr (pretrained rows move less)
    hidden_dim: int = MODEL["hidden_dim"]
    num_layers: int = MODEL["num_layers"]
    bidirectional: bool = MODEL["bidirectional"]
    cell: str = MODEL["cell"]
    pooling: str = MODEL["pooling"]
    dropout: float = MODEL["dropout"]
    embed_dropout: float = MODEL["embed_dropout"]
    word_dropout: float = 0.1  # share of training tokens replaced by the (zero) pad embedding
    teacher_source: str = "sst2"  # the sentences the teacher is fine-tuned on
    teacher_epochs: float = 2.0  # 0 trains without a teacher
    teacher_lr: float = 1e-4
    teacher_cache: str | None = None  # a folder keeping teacher logits between runs
    teacher_phrase_share: float = 1.0  # share of the phrases the teacher labels (rest: gold)
    augment_copies: int = 6  # perturbed copies of each training sentence, teacher-labelled
    teacher_vectors: int = 50  # columns of the teacher's word vectors added to GloVe's (0: none)
    distill_weight: float = 0.8  # loss share imitating the teacher (docs/experiments)
    epochs: int = 6  # affordable: batches of one length are cheap (benchmarks.student_step)
    batch_size: int = 64
    batching: str = "equal"  # equal: one length per batch (unpacked, fast); buckets: packed
    lr: float = 2e-3
    schedule: str = "cosine"
    warmup: int = 0
    weight_decay: float = 0.0  # AdamW's decay, on every weight but the embedding's
    clip_norm: float = 1.0
    max_train: int | None = None  # use only the first N training rows (tests, quick checks)
    minutes: float | None = None  # a wall-clock budget for the whole run; None: fixed recipe
    plan: str | None = None  # a metrics.json whose budget plan to repeat exactly (no measuring)


def check_options(options: TrainOptions) -> None:
    """Fail on a misspelt choice before minutes of data loading and tokenizer training."""
    choices = {
        "cell": (options.cell, tuple(CELLS)),
        "pooling": (options.pooling, POOLINGS),
        "schedule": (options.schedule, SHAPES),
        "tokenizer": (options.tokenizer, TOKENIZERS),
        "pretrained": (options.pretrained, ("glove", "none")),
        "precision": (options.precision, PRECISIONS),
        "batching": (options.batching, BATCHINGS),
    }
    for name, (value, allowed) in choices.items():
        if value not in allowed:
            raise ValueError(f"{name} must be one of {sorted(allowed)}, not {value!r}")
    if not 0 <= options.teacher_phrase_share <= 1:
        raise ValueError("teacher phrase share must be within [0, 1]")
    if options.minutes is not None and options.minutes <= 0:
        raise ValueError("minutes must be positive (or left out: the fixed recipe)")
    if options.pretrained == "glove" and options.tokenizer != "words":
        raise ValueError("pretrained glove vectors need --tokenizer words")
    if options.teacher_epochs > 0 and options.teacher_vectors > 0 and options.pretrained != "glove":
        raise ValueError(
            "--teacher-vectors widens the GloVe rows: needs --pretrained glove (and words), "
            "or --teacher-vectors 0"
        )
