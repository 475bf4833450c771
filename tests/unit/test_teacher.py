"""The teacher: the packaged encoder loads offline with the pinned weights, fine-tunes, and
labels a transfer set that is cached by content."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import pytest
import torch

from training.sentiment_inputs import make_reader, teacher_transfer_set, with_teacher_vectors
from training.teacher import fine_tune, teacher_logits
from training.train_sentiment import TrainOptions, check_options

SENTENCES = [
    "a gripping , funny movie",
    "dull and lifeless",
    "does n't work at all",
    "a warm , lovely story",
    "boring -lrb- and long -rrb-",
    "a triumph",
]
LABELS = [1, 0, 0, 1, 0, 1]


def teacher_options(**changes) -> TrainOptions:
    """A quick teacher (half an epoch) over a small GloVe vocabulary, with ``changes``."""
    return replace(TrainOptions(), extra_words=100, teacher_epochs=0.5, progress=False, **changes)


def test_teacher_learns_a_few_sentences() -> None:
    teacher = fine_tune(SENTENCES * 4, LABELS * 4, epochs=3, lr=1e-4, batch_size=8, progress=False)
    logits = teacher_logits(teacher, SENTENCES, progress=False)
    assert logits.shape == (len(SENTENCES), 2) and logits.dtype == torch.float32
    assert (logits.argmax(1) == torch.tensor(LABELS)).float().mean() >= 5 / 6


def test_transfer_set_labels_phrases_and_copies_and_is_cached(tmp_path: Path) -> None:
    options = teacher_options(augment_copies=2, teacher_cache=str(tmp_path / "cache"))
    reader = make_reader(options, SENTENCES, tmp_path)
    phrases = [*SENTENCES, "funny", "lifeless"]
    first = teacher_transfer_set(options, reader, phrases, SENTENCES, LABELS, SENTENCES)
    assert first.facts["augmented_rows"] == len(first.extra_rows) >= len(SENTENCES)
    assert first.logits.shape == (len(phrases) + len(first.extra_rows), 2)
    assert len(list((tmp_path / "cache").glob("*.pt"))) == 2  # the teacher and its labels
    again = teacher_transfer_set(options, reader, phrases, SENTENCES, LABELS, SENTENCES)
    assert torch.equal(again.logits, first.logits)
    assert again.extra_rows == first.extra_rows


def test_teacher_vectors_widen_the_glove_rows(tmp_path: Path) -> None:
    options = teacher_options(augment_copies=0, teacher_vectors=8)
    reader = make_reader(options, SENTENCES, tmp_path)
    transfer = teacher_transfer_set(options, reader, SENTENCES, SENTENCES, LABELS, SENTENCES)
    assert transfer.word_vectors.shape == (reader.tokenizer.vocab_size, 8)
    wide = with_teacher_vectors(reader, transfer.word_vectors)
    assert wide.embeddings.shape == (reader.tokenizer.vocab_size, 50 + 8)
    assert torch.equal(wide.embeddings[:, :50], reader.embeddings)  # GloVe's columns untouched
    assert not wide.embeddings[reader.tokenizer.pad_id].any()  # padding stays a zero row
    spread = wide.embeddings[2:, 50:].std() / reader.embeddings[2:].std()
    assert 0.5 < spread < 2.0  # the new columns at GloVe's scale


def test_teacher_vectors_without_glove_rows_fail_before_any_training() -> None:
    """Both refusals come from check_options, not after minutes of fine-tuning the teacher."""
    for changes in ({"tokenizer": "unigram", "pretrained": "none"}, {"pretrained": "none"}):
        with pytest.raises(ValueError, match="--teacher-vectors"):
            check_options(replace(TrainOptions(), **changes))
    check_options(replace(TrainOptions(), pretrained="none", teacher_vectors=0))
    check_options(replace(TrainOptions(), pretrained="none", teacher_epochs=0))
