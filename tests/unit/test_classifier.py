"""The classifier and its predictor: batching and padding never change an answer."""

from __future__ import annotations

import ast
import random
from pathlib import Path

import pytest
import torch

from models.artifact import save_artifact
from models.classifier import (
    POOLINGS,
    ClassifierConfig,
    RecurrentClassifier,
)
from models.classifier_predictor import ClassifierPredictor
from models.int8_classifier import Int8Classifier
from models.tokenizer import Tokenizer
from training.tokenizer import train_tokenizer

WORDS = ["the", "film", "plot", "is", "good", "bad", "great", "dull", "funny", "and", "but", "not"]


def tiny_model(cell: str = "lstm", pooling: str = "max_last", bidirectional: bool = True):
    torch.manual_seed(0)
    config = ClassifierConfig(
        vocab_size=50,
        embed_dim=8,
        hidden_dim=12,
        num_layers=2,
        bidirectional=bidirectional,
        dropout=0.3,
        cell=cell,
        pooling=pooling,
    )
    return RecurrentClassifier(config).eval()


def mixed_batch(lengths: list[int], pad: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
    generator = torch.Generator().manual_seed(1)
    ids = torch.full((len(lengths), max(lengths)), pad, dtype=torch.int64)
    for i, length in enumerate(lengths):
        ids[i, :length] = torch.randint(1, 50, (length,), generator=generator)
    return ids, torch.tensor(lengths)


@pytest.mark.parametrize("pooling", POOLINGS)
@pytest.mark.parametrize("cell", ["lstm", "gru"])
def test_batched_logits_equal_one_by_one(cell: str, pooling: str) -> None:
    model = tiny_model(cell, pooling)
    ids, lengths = mixed_batch([7, 1, 12, 3, 12, 5])
    with torch.inference_mode():
        batched = model(ids, lengths)
        alone = torch.cat(
            [model(ids[i : i + 1, :n], lengths[i : i + 1]) for i, n in enumerate(lengths)]
        )
    torch.testing.assert_close(batched, alone, atol=1e-5, rtol=0)


@pytest.mark.parametrize("bidirectional", [True, False])
def test_extra_padding_does_not_change_logits(bidirectional: bool) -> None:
    model = tiny_model("lstm", "max_last", bidirectional)
    ids, lengths = mixed_batch([4, 9, 2])
    padded = torch.cat([ids, torch.zeros(3, 6, dtype=torch.int64)], dim=1)
    with torch.inference_mode():
        torch.testing.assert_close(model(ids, lengths), model(padded, lengths), atol=1e-5, rtol=0)


def test_config_rejects_unknown_cell_and_pooling() -> None:
    with pytest.raises(ValueError, match="cell"):
        ClassifierConfig(vocab_size=10, cell="rnn")
    with pytest.raises(ValueError, match="pooling"):
        ClassifierConfig(vocab_size=10, pooling="attention")


@pytest.fixture(scope="module")
def tokenizer_file(tmp_path_factory: pytest.TempPathFactory) -> Path:
    rng = random.Random(0)
    texts = [" ".join(rng.choices(WORDS, k=rng.randint(2, 12))) for _ in range(400)]
    return train_tokenizer(texts, tmp_path_factory.mktemp("tok") / "tok", vocab_size=60)


@pytest.fixture(scope="module")
def predictor(tokenizer_file: Path) -> ClassifierPredictor:
    tokenizer = Tokenizer(tokenizer_file, lowercase=True)
    torch.manual_seed(0)
    config = ClassifierConfig(vocab_size=tokenizer.vocab_size, embed_dim=8, hidden_dim=12)
    return ClassifierPredictor(RecurrentClassifier(config), tokenizer)


TEXTS = [
    "A good film",
    "the plot is dull but the film is funny and not bad at all , not bad",
    "",
    "bad",
    "   ",
    "great film , great plot",
]


def test_tokenizer_round_trip_and_lowercasing(tokenizer_file: Path) -> None:
    tokenizer = Tokenizer(tokenizer_file, lowercase=True)
    text = "the film is not dull"
    assert tokenizer.decode(tokenizer.encode(text)) == text
    assert tokenizer.encode("The FILM") == tokenizer.encode("the film")
    assert tokenizer.encode("") == []


def test_predictions_are_the_softmax_of_the_models_own_logits(
    predictor: ClassifierPredictor, tokenizer_file: Path
) -> None:
    """Each answer from the model's forward on that text alone, its label the likelier class
    (a text with no tokens reads one pad token: models/classifier.py `encode`)."""
    answers = predictor.predict(TEXTS)
    assert len(answers) == len(TEXTS)
    tokenizer = Tokenizer(tokenizer_file, lowercase=True)
    for text, answer in zip(TEXTS, answers, strict=True):
        ids = tokenizer.encode(text) or [predictor.config.pad_id]
        with torch.no_grad():
            logits = predictor.model(torch.tensor([ids]), torch.tensor([len(ids)]))[0].double()
        expected = torch.softmax(logits, dim=0).tolist()
        assert [answer["probabilities"][label] for label in ("negative", "positive")] == (
            pytest.approx(expected, abs=1e-6)
        )
        assert answer["label"] == ("negative", "positive")[expected.index(max(expected))]
        assert set(answer["probabilities"]) == {"negative", "positive"}
        assert sum(answer["probabilities"].values()) == pytest.approx(1.0, abs=1e-6)
        assert answer["score"] == max(answer["probabilities"].values())
        assert answer["score"] == answer["probabilities"][answer["label"]]
    assert predictor.predict([]) == []


def test_batch_answers_equal_one_by_one(predictor: ClassifierPredictor) -> None:
    batched = predictor.predict(TEXTS)
    for text, answer in zip(TEXTS, batched, strict=True):
        alone = predictor.predict([text])[0]
        assert alone["label"] == answer["label"]
        for label, p in alone["probabilities"].items():
            assert answer["probabilities"][label] == pytest.approx(p, abs=1e-5)


def test_empty_text_is_one_pad_token_and_max_tokens_truncates(
    predictor: ClassifierPredictor,
) -> None:
    ids, lengths = predictor.encode(["", "good film"])
    assert lengths[0] == 1 and ids[0, 0] == predictor.tokenizer.pad_id
    # Empty and whitespace-only texts get the same "no evidence" answer.
    assert predictor.predict([""]) == predictor.predict(["   "])

    long_text = " ".join(["dull"] * 50)
    ids, lengths = predictor.encode([long_text], max_tokens=5)
    assert lengths.tolist() == [5] and ids.shape == (1, 5)
    assert predictor.encode([long_text])[1][0] > 5


def test_artifact_round_trip_and_int8(predictor: ClassifierPredictor, tmp_path: Path) -> None:
    from dataclasses import asdict

    save_artifact(
        tmp_path,
        kind="sentiment",
        model_config=asdict(predictor.model.config),
        state_dict=predictor.model.state_dict(),
        tokenizer_file=predictor.tokenizer.model_file,
        lowercase=True,
        labels=["negative", "positive"],
    )
    loaded = ClassifierPredictor.from_artifact(tmp_path)
    assert loaded.labels == ("negative", "positive")
    for a, b in zip(loaded.predict(TEXTS), predictor.predict(TEXTS), strict=True):
        assert a["probabilities"]["positive"] == pytest.approx(b["probabilities"]["positive"])

    quantized = ClassifierPredictor.from_artifact(tmp_path, quantize="int8")
    assert isinstance(quantized.model, Int8Classifier)
    assert len(quantized.predict(TEXTS)) == len(TEXTS)
    with pytest.raises(ValueError, match="int8"):
        ClassifierPredictor.from_artifact(tmp_path, quantize="int4")


def test_any_classifier_artifact_is_served_with_its_own_labels(tmp_path: Path) -> None:
    """A third model's classifier (a GRU of another kind, three labels) loads through the same
    predictor; a language model's artifact is refused by name, not with a TypeError."""
    from dataclasses import asdict

    from tests.unit.tiny_sentiment import SENTENCES

    tokenizer_file = train_tokenizer(SENTENCES, tmp_path / "tok", vocab_size=40)
    config = ClassifierConfig(vocab_size=40, embed_dim=4, hidden_dim=6, cell="gru", num_classes=3)
    labels = ["short", "medium", "long"]
    save_artifact(
        tmp_path / "length",
        kind="length",
        model_config=asdict(config),
        state_dict=RecurrentClassifier(config).state_dict(),
        tokenizer_file=tokenizer_file,
        labels=labels,
    )
    answers = ClassifierPredictor.from_artifact(tmp_path / "length").predict(["a", "a b c d"])
    assert [set(a["probabilities"]) for a in answers] == [set(labels)] * 2
    assert all(a["label"] in labels for a in answers)

    lm = {"vocab_size": 40, "embed_dim": 4, "hidden_dim": 6, "tie_weights": False}
    save_artifact(tmp_path / "lm", "lm", lm, {}, tokenizer_file)
    with pytest.raises(ValueError, match="holds a 'lm' model, not a classifier"):
        ClassifierPredictor.from_artifact(tmp_path / "lm")


def imported_modules(path: Path) -> set[str]:
    tree = ast.parse(path.read_text())
    found = {node.module for node in ast.walk(tree) if isinstance(node, ast.ImportFrom)}
    names = [node.names for node in ast.walk(tree) if isinstance(node, ast.Import)]
    return found | {alias.name for aliases in names for alias in aliases}


def test_the_import_graph_runs_one_way_predictor_twin_model() -> None:
    """No circle: the predictor imports the int8 twin and the model, the twin the model, and
    the model neither."""
    models = Path(__file__).resolve().parents[2] / "models"
    assert imported_modules(models / "classifier.py").isdisjoint(
        {"models.int8_classifier", "models.classifier_predictor"}
    )
    assert "models.classifier_predictor" not in imported_modules(models / "int8_classifier.py")
