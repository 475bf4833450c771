"""The inspect commands on a tiny artifact: the files a user opens exist and say the right thing."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from lesson.inspect_model import main
from models.classifier_predictor import ClassifierPredictor
from tests.unit.tiny_sentiment import tiny_sentiment_artifact, write_tsv

PNG = b"\x89PNG\r\n\x1a\n"


@pytest.fixture(scope="module")
def source(tmp_path_factory: pytest.TempPathFactory) -> Path:
    folder = tmp_path_factory.mktemp("data") / "tiny_sst"
    rows = [("a gripping , funny movie", 1), ("dull and boring", 0), ("not bad at all", 1)]
    write_tsv(folder / "train.tsv", rows)
    write_tsv(folder / "dev.tsv", rows * 3 + [("bad", 0)])
    return folder


@pytest.fixture(scope="module")
def artifact(tmp_path_factory: pytest.TempPathFactory, source: Path) -> Path:
    return tiny_sentiment_artifact(
        tmp_path_factory.mktemp("sentiment"), training={"source": str(source)}
    )


def test_gates_plot_and_json(artifact: Path, tmp_path: Path) -> None:
    text = "a gripping , funny movie"
    png, data = main(
        [
            "gates",
            "--artifact",
            str(artifact),
            "--text",
            text,
            "--layer",
            "1",
            "--out",
            str(tmp_path),
        ]
    )
    assert png.read_bytes()[:8] == PNG
    explanation = json.loads(data.read_text())
    assert explanation["layer"] == 1
    assert "".join(t["piece"] for t in explanation["tokens"]).replace("▁", " ").strip() == text
    # The prediction beside the gates is the artifact's own answer for that text.
    expected = ClassifierPredictor.from_artifact(artifact).predict([text])[0]
    assert explanation["prediction"]["label"] == expected["label"]
    assert explanation["prediction"]["score"] == pytest.approx(expected["score"], abs=1e-6)
    assert len(explanation["tokens"][0]["forward"]["forget"]) == explanation["hidden_size"]


def test_sine_gates_plot(tmp_path: Path) -> None:
    png, data = main(["sine-gates", "--steps", "5", "--out", str(tmp_path)])
    assert png.read_bytes()[:8] == PNG
    trace = json.loads(data.read_text())
    assert len(trace["wave"]) == 20
    for gate in ("forget", "input", "output"):
        assert len(trace[gate]) == 20 and len(trace[gate][0]) == 4
        assert all(0 < v < 1 for row in trace[gate] for v in row)


def test_embedding_norms_table(artifact: Path, tmp_path: Path) -> None:
    table, data = main(
        ["embeddings", "--artifact", str(artifact), "--top", "7", "--out", str(tmp_path)]
    )
    result = json.loads(data.read_text())
    norms = [row["norm"] for row in result["top"]]
    assert len(norms) == 7 and norms == sorted(norms, reverse=True)
    markdown = table.read_text()
    assert all(f"`{row['piece']}`" in markdown for row in result["top"])


def test_confusion_uses_the_artifacts_source(artifact: Path, source: Path, tmp_path: Path):
    table, data, png = main(["confusion", "--artifact", str(artifact), "--out", str(tmp_path)])
    report = json.loads(data.read_text())
    assert report["source"] == str(source)
    matrix = report["confusion_matrix"]
    assert sum(map(sum, matrix)) == 10
    assert [sum(row) for row in matrix] == [4, 6]  # true negatives row, true positives row
    assert report["accuracy"] == pytest.approx((matrix[0][0] + matrix[1][1]) / 10)
    assert "| **negative** |" in table.read_text()
    assert png.read_bytes()[:8] == PNG
