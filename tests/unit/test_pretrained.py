"""The classifier's vocabulary and starting rows from GloVe, and the teacher's transfer set."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from models.text import PAD, UNK
from training.augment import nearest_words, perturbed_copies
from training.distillation import distillation_loss
from training.pretrained import build_vocabulary, embedding_rows, load_glove

GLOVE_WORDS = ["the", ",", "good", "movie", "zebra", "bad"]


def test_vocabulary_holds_training_words_then_the_most_frequent_glove_words() -> None:
    tokenizer = build_vocabulary(["A good movie", "it's good"], GLOVE_WORDS, extra_words=3)
    assert tokenizer.words[:2] == [PAD, UNK]
    assert set(tokenizer.words[2:]) == {"a", "good", "movie", "it", "'s", "the", ","}
    assert tokenizer.encode("the zebra") == [tokenizer.index["the"], 1]


def test_embedding_rows_are_the_glove_vectors_of_known_words_and_zero_for_padding() -> None:
    tokenizer = build_vocabulary(["a good movie"], GLOVE_WORDS, extra_words=0)
    vectors = np.arange(len(GLOVE_WORDS) * 4, dtype=np.float32).reshape(-1, 4)
    rows, facts = embedding_rows(tokenizer, GLOVE_WORDS, vectors, seed=0)
    assert rows.shape == (tokenizer.vocab_size, 4)
    for word in ("good", "movie"):
        expected = torch.from_numpy(vectors[GLOVE_WORDS.index(word)])
        assert torch.equal(rows[tokenizer.index[word]], expected)
    assert not rows[tokenizer.pad_id].any()
    assert facts["glove_coverage"] == pytest.approx(2 / 3)  # "a" is not in this tiny GloVe


def test_the_packaged_glove_vectors_cover_sst2_words() -> None:
    words, vectors = load_glove()
    assert vectors.shape == (400_000, 50)
    position = {w: i for i, w in enumerate(words[:50_000])}
    for word in ("good", "bad", "movie", "n't", "'s", "(", "``"):
        assert word in position
    good, great, awful = (
        torch.tensor(np.asarray(vectors[position[w]])) for w in ("good", "great", "awful")
    )
    cosine = torch.nn.functional.cosine_similarity
    assert cosine(good, great, dim=0) > cosine(good, awful, dim=0)


def test_perturbed_copies_differ_from_their_sentence_and_use_known_words() -> None:
    vectors = torch.eye(6) + 0.1
    neighbours = nearest_words(vectors, [2, 3, 4, 5], k=2)
    assert all(len(v) == 2 and k not in v for k, v in neighbours.items())
    words = [PAD, UNK, "a", "good", "movie", "bad"]
    sentences = [[2, 3, 4], [5, 4, 2, 3, 4, 2]]
    copies = perturbed_copies(sentences, words, neighbours, copies=5, seed=0)
    assert 5 <= len(copies) <= 10
    for copy in copies:
        assert len(copy.ids) == len(copy.text.split())
        assert copy.ids not in sentences
        assert all(0 < i < len(words) for i in copy.ids)


def test_distillation_mixes_gold_and_teacher_targets_row_by_row() -> None:
    logits = torch.tensor([[2.0, 0.0], [0.0, 1.0], [1.0, 1.0]], requires_grad=True)
    gold = torch.tensor([0, -1, 1])
    soft = torch.tensor([[2.0, 0.0], [1.0, 1.0], [float("nan"), float("nan")]])
    loss = distillation_loss(logits, gold, soft, weight=0.5)
    hard = torch.nn.functional.cross_entropy(logits, gold.clamp(min=0), reduction="none")
    expected = (0.5 * hard[0] + 0.0, 0.5, hard[2])  # row 0 matches its teacher exactly
    assert loss.detach().item() == pytest.approx(sum(float(x) for x in expected) / 3)
    loss.backward()
    assert torch.isfinite(logits.grad).all()
