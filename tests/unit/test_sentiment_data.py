"""Sentiment data loading and the training command, on tiny files written here."""

from __future__ import annotations

import json
import random
from pathlib import Path

import pytest

from models.classifier_predictor import ClassifierPredictor
from training.batching import batch_order, equal_length_batches
from training.data import load_sentiment
from training.train_sentiment import parse_options, train

HEADER = "sentence\tlabel\n"


def write_tsv(path: Path, rows: list[tuple[str, int]]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(HEADER + "".join(f"{text}\t{label}\n" for text, label in rows))


def test_quotes_do_not_merge_or_drop_rows(tmp_path: Path) -> None:
    rows = [
        ('the " bad " guys win', 0),
        ('a "', 1),
        ("plain text", 1),
        ('" unbalanced quote spanning', 0),
        ("next row survives ", 1),
    ]
    write_tsv(tmp_path / "set" / "train.tsv", rows)
    write_tsv(tmp_path / "set" / "dev.tsv", rows[:2])
    data = load_sentiment(str(tmp_path / "set"))
    assert data["train"]["sentence"] == [text.strip() for text, _ in rows]
    assert data["train"]["label"] == [label for _, label in rows]
    assert len(data["dev"]) == 2


def test_shared_sst2_dev_has_872_sentences() -> None:
    for source in ("sst2", "sst2_glue_phrases"):
        dev = load_sentiment(source)["dev"]
        assert len(dev) == 872
        assert sorted(set(dev["label"])) == [0, 1]


def test_batch_order_covers_every_row_once() -> None:
    import torch

    lengths = [random.Random(i).randint(1, 30) for i in range(1000)]
    batches = batch_order(lengths, 64, torch.Generator().manual_seed(0))
    assert sorted(i for batch in batches for i in batch) == list(range(1000))
    assert all(len(batch) <= 64 for batch in batches)


def test_equal_length_batches_need_no_padding_where_a_length_has_enough_rows() -> None:
    import torch

    lengths = [random.Random(i).randint(1, 30) for i in range(5000)]
    batches = equal_length_batches(lengths, 64, torch.Generator().manual_seed(0))
    assert sorted(i for batch in batches for i in batch) == list(range(5000))
    mixed = [batch for batch in batches if len({lengths[i] for i in batch}) > 1]
    # Only the remainders (under 64 rows of each of the 30 lengths) may share a batch.
    assert sum(len(batch) for batch in mixed) < 30 * 64
    assert sum(len(batch) == 64 for batch in batches) >= 5000 // 64 - 30
    again = equal_length_batches(lengths, 64, torch.Generator().manual_seed(1))
    assert again != batches  # each epoch's generator state gives another order


def test_profile_then_flags_override_defaults() -> None:
    options = parse_options(["--profile", "tiny", "--hidden-dim", "20", "--no-bidirectional"])
    assert options.profile == "tiny" and options.hidden_dim == 20
    assert options.bidirectional is False
    assert options.num_layers == 1  # from the tiny profile


def synthetic_rows(count: int, seed: int) -> list[tuple[str, int]]:
    """Filler words with one telling word: easy for any working classifier."""
    rng = random.Random(seed)
    filler = ["the", "movie", "plot", "was", "a", "and", "film", "it", "of", "story"]
    cues = {1: ["good", "great", "superb", "lovely"], 0: ["bad", "awful", "dull", "boring"]}
    rows = []
    for _ in range(count):
        label = rng.randint(0, 1)
        words = rng.choices(filler, k=rng.randint(2, 8))
        words.insert(rng.randint(0, len(words)), rng.choice(cues[label]))
        rows.append((" ".join(words), label))
    return rows


def train_on_synthetic(tmp_path: Path, rows: int, epochs: int) -> dict:
    """The tiny profile trained on easy synthetic rows into ``tmp_path / "a"``."""
    write_tsv(tmp_path / "easy" / "train.tsv", synthetic_rows(rows, 0))
    write_tsv(tmp_path / "easy" / "dev.tsv", synthetic_rows(100, 1))
    options = parse_options(
        ["--profile", "tiny", "--source", str(tmp_path / "easy"), "--out", str(tmp_path / "a")]
    )
    options.epochs, options.progress, options.threads = epochs, False, 1
    return train(options)


def test_tiny_training_learns_and_writes_a_loadable_artifact(tmp_path: Path) -> None:
    metrics = train_on_synthetic(tmp_path, 800, epochs=6)

    assert metrics["dev_accuracy"] > 0.9
    assert sum(map(sum, metrics["confusion_matrix"])) == 100
    assert json.loads((tmp_path / "a" / "metrics.json").read_text()) == metrics
    config = json.loads((tmp_path / "a" / "config.json").read_text())
    assert config["labels"] == ["negative", "positive"] and config["lowercase"] is True

    predictor = ClassifierPredictor.from_artifact(tmp_path / "a")
    good, bad = predictor.predict(["The plot was SUPERB", "a dull story"])
    assert (good["label"], bad["label"]) == ("positive", "negative")


@pytest.mark.parametrize(
    "argv", [["--cell", "rnn"], ["--pooling", "attention"], ["--schedule", "step"]]
)
def test_bad_settings_fail_before_any_data_is_read(argv: list[str], tmp_path: Path) -> None:
    missing = str(tmp_path / "no-such-folder")  # would fail differently if it were read
    with pytest.raises(ValueError, match=argv[0].strip("-").replace("-", " ")):
        train(parse_options(["--profile", "tiny", "--source", missing, *argv]))
