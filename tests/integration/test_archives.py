"""What the archives hold: scoring from a .mar alone gives the artifact's numbers."""

from __future__ import annotations

import json
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

from handlers import registry
from training.evaluate_lm import load_lm, score_archive, score_text

ROOT = Path(__file__).resolve().parents[2]
TEXT = "ROMEO:\nBut soft, what light through yonder window breaks?\n"


def test_archives_hold_artifact_code_and_serving_config(tiny_model_store: Path):
    for model in registry.MODELS:
        with zipfile.ZipFile(tiny_model_store / f"{model.name}.mar") as archive:
            names = set(archive.namelist())
        assert {"config.json", "weights.pt", "tokenizer.model", model.config.name} <= names
        assert {"models/__init__.py", "handlers/base.py", "MAR-INF/MANIFEST.json"} <= names
        assert f"handlers/{model.name}/handler.py" in names
        others = {m.name for m in registry.MODELS} - {model.name}
        assert not [n for n in names if n.split("/")[:2] in [["handlers", o] for o in others]]


def test_evaluate_lm_from_the_archive_alone(tiny_model_store: Path, tmp_path: Path):
    with zipfile.ZipFile(tiny_model_store / "lm.mar") as archive:
        archive.extractall(tmp_path / "unpacked")
    expected = score_text(*load_lm(tmp_path / "unpacked"), TEXT)
    assert score_archive(tiny_model_store / "lm.mar", TEXT) == pytest.approx(expected)
    assert expected["chars"] == len(TEXT)

    text_file = tmp_path / "sample.txt"
    text_file.write_text(TEXT)
    printed = subprocess.run(
        [
            sys.executable,
            "-m",
            "training.evaluate_lm",
            "--archive",
            str(tiny_model_store / "lm.mar"),
            "--text",
            str(text_file),
        ],
        cwd=ROOT,
        check=True,
        capture_output=True,
        text=True,
    ).stdout
    result = json.loads(printed)
    assert set(result) >= {"nats_per_char", "tokens", "chars"}
    assert result["nats_per_char"] == pytest.approx(expected["nats_per_char"])
    assert result["tokens"] == expected["tokens"]


def test_evaluate_lm_compares_int8_on_the_validation_text_from_the_command_line(tiny_model_store):
    """The LM card's command (docs/models/lm.md) for the served int8 path's quality, on the
    tiny archive and the first 5,000 characters of the validation split (the whole split took
    two minutes)."""
    command = [sys.executable, "-m", "training.evaluate_lm", "--archive"]
    command += [str(tiny_model_store / "lm.mar"), "--validation", "--compare-int8"]
    printed = subprocess.run(
        [*command, "--chars", "5000"], capture_output=True, text=True, check=True, timeout=300
    )
    compared = json.loads(printed.stdout)
    assert compared["fp32"]["chars"] == compared["int8"]["chars"] == 5_000
    assert abs(compared["nats_per_char_delta"]) < 0.05, compared
    assert compared["top1_agreement"] > 0.9, compared
