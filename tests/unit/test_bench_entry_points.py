"""Every benchmark entry point starts: `--help` of each `python -m benchmarks.<name>`, and a
tiny real run of those that need no server (a random tiny model, a few steps): a renamed
import or a broken flag shows here, not on the day someone runs `make bench`."""

from __future__ import annotations

import importlib
import shutil
import sys
from dataclasses import asdict
from pathlib import Path

import pytest
import torch

from models.artifact import save_artifact
from models.language_model import LMConfig, RecurrentLM
from training.data import load_text
from training.train_lm import build_tokenizer

from .tiny_sentiment import SENTENCES, tiny_sentiment_artifact, write_tsv

ROOT = Path(__file__).resolve().parents[2]
SAMPLE_RUN = ROOT / "tests" / "data" / "bench" / "20261202-040004"
ENTRY_POINTS = sorted(
    path.stem
    for path in (ROOT / "benchmarks").glob("*.py")
    if 'if __name__ == "__main__":' in path.read_text()
)
NO_FLAGS = {"plot"}  # `python -m benchmarks.plot RUN_FOLDER`: a positional argument only


@pytest.fixture(autouse=True)
def torch_threads():
    """Entry points set torch's thread count for their process; give the suite its own back."""
    threads = torch.get_num_threads()
    yield
    torch.set_num_threads(threads)


def run(name: str, monkeypatch: pytest.MonkeyPatch, *args: str) -> None:
    """`python -m benchmarks.<name> args`, in this process (no second torch import)."""
    monkeypatch.setattr(sys, "argv", [f"benchmarks.{name}", *args])
    module = importlib.import_module(f"benchmarks.{name}")
    if name == "plot":
        print(module.plot(Path(args[0])))
    else:
        module.main()


def test_every_entry_point_is_found():
    assert {"run", "decode", "classifier_int8", "student_step"} <= set(ENTRY_POINTS)


@pytest.mark.parametrize("name", sorted(set(ENTRY_POINTS) - NO_FLAGS))
def test_help_runs(name, monkeypatch, capsys):
    with pytest.raises(SystemExit) as done:
        run(name, monkeypatch, "--help")
    assert done.value.code == 0
    assert "usage:" in capsys.readouterr().out


@pytest.fixture(scope="module")
def tiny_lm(tmp_path_factory) -> Path:
    """An LM artifact with random weights over the characters of Tiny Shakespeare."""
    folder = tmp_path_factory.mktemp("lm")
    tokenizer = build_tokenizer(load_text("tinyshakespeare")[:20_000], 0, folder / "char")
    config = LMConfig(tokenizer.vocab_size, embed_dim=8, hidden_dim=16, num_layers=2)
    torch.manual_seed(0)
    return save_artifact(
        folder / "artifact",
        kind="lm",
        model_config=asdict(config),
        state_dict=RecurrentLM(config).state_dict(),
        tokenizer_file=tokenizer.model_file,
    )


def test_decode_tables_from_a_tiny_run(tiny_lm, monkeypatch, capsys):
    flags = ["--threads", "1", "--tokens", "2", "--rounds", "1", "--repeats", "2"]
    run("decode", monkeypatch, "--artifact", str(tiny_lm), *flags)
    out = capsys.readouterr().out
    assert "### One decode step" in out and "### Generation" in out
    assert "engine int8 vs textbook loop" in out


def test_sampling_head_from_a_tiny_run(tiny_lm, monkeypatch, capsys):
    run("sampling_head", monkeypatch, "--artifact", str(tiny_lm), "--tokens", "200")
    assert "64 rows: full sort" in capsys.readouterr().out


def test_classifier_int8_from_a_tiny_run(tmp_path, monkeypatch, capsys):
    artifact = tiny_sentiment_artifact(tmp_path)
    rows = [(text, index % 2) for index, text in enumerate(SENTENCES)]
    for split in ("train", "dev"):
        write_tsv(tmp_path / "data" / f"{split}.tsv", rows)
    flags = ["--artifact", str(artifact), "--data", str(tmp_path / "data"), "--batch", "2"]
    run("classifier_int8", monkeypatch, *flags, "--seconds", "0.05", "--rounds", "1")
    out = capsys.readouterr().out
    assert f"{len(SENTENCES)} dev sentences" in out and "dev accuracy int8" in out


def test_student_step_from_a_tiny_run(monkeypatch, capsys):
    sizes = ["--vocab", "50", "--embed", "8", "--hidden", "8", "--batch", "2"]
    run("student_step", monkeypatch, *sizes, "--lengths", "3", "--steps", "2", "--rounds", "1")
    assert "ms/step" in capsys.readouterr().out


def test_plot_draws_a_stored_run(tmp_path, monkeypatch):
    folder = shutil.copytree(SAMPLE_RUN, tmp_path / SAMPLE_RUN.name)
    run("plot", monkeypatch, str(folder))
    assert (folder / "bench.png").read_bytes().startswith(b"\x89PNG")
