"""The model cards' generated sections, written by `python -m training.model_card` from tiny
models trained by the real trainers: figures from the artifact's own metrics.json, samples
decoded from the archive exactly as the server decodes them, and a card that
`python -m docsgen --check` can render again from what the command kept."""

from __future__ import annotations

import html
import json
import re
import shutil
import subprocess
import sys
from pathlib import Path

from models.requests import GenerationRequest
from tests.integration.conftest import ROOT, archived_generator
from training import experiments, model_card


def write_card(model: str, store: Path, cards: Path, *extra: str) -> str:
    shutil.copyfile(ROOT / "docs" / "models" / f"{model}.md", cards / f"{model}.md")
    artifact = store.parent / model
    command = [sys.executable, "-m", "training.model_card", model, "--artifact", str(artifact)]
    command += ["--page", str(cards / f"{model}.md"), *extra]
    subprocess.run(command, cwd=ROOT, check=True, capture_output=True)
    return (cards / f"{model}.md").read_text()


def test_the_lm_card_shows_its_artifacts_loss_and_samples_of_the_served_archive(
    tiny_model_store, tmp_path
):
    archive = tiny_model_store / "lm.mar"
    page = write_card("lm", tiny_model_store, tmp_path, "--samples", "--archive", str(archive))
    metrics = json.loads((tiny_model_store.parent / "lm" / "metrics.json").read_text())
    assert f"| {metrics['val_nats_per_char']:.4f} |" in page
    assert f"| training steps | {metrics['steps']:,} |" in page
    # The tiny LM reads characters: one token per character of the (ASCII) validation text.
    unit = "characters" if metrics["chars_per_token"] == 1 else "unigram pieces"
    assert f"| vocabulary (sentencepiece {unit}) | {metrics['vocab_size']:,} |" in page
    assert "No default model's figures" not in page and "No samples" not in page
    # The reference: the archive decoded as the server decodes it; control characters, which a
    # page cannot hold as they are, shown as \xNN.
    generator = archived_generator(archive, tmp_path / "unpacked")
    for temperature in model_card.SAMPLE_TEMPERATURES:
        (expected,) = generator.generate(
            [
                GenerationRequest(
                    prompt="ROMEO:",
                    max_new_tokens=120,
                    temperature=temperature,
                    seed=model_card.SAMPLE_SEED,
                )
            ]
        )
        shown = re.sub(
            r"[\x00-\x08\x0b-\x1f\x7f-\x9f]", lambda m: f"\\x{ord(m[0]):02x}", expected.text
        )
        assert f"<pre>{html.escape('ROMEO:' + shown)}</pre>" in page
    # What the command kept renders the same card again: the docs check's round trip.
    source = model_card.load_source("lm", tmp_path)
    assert model_card.render("lm", page, source) == page
    # Seeded samples: writing the card again changes nothing.
    again = write_card("lm", tiny_model_store, tmp_path, "--samples", "--archive", str(archive))
    assert again == page


def test_the_sentiment_card_shows_its_artifacts_accuracy_and_confusion(tiny_model_store, tmp_path):
    page = write_card("sentiment", tiny_model_store, tmp_path)
    metrics = json.loads((tiny_model_store.parent / "sentiment" / "metrics.json").read_text())
    assert f"| {metrics['dev_accuracy']:.1%} |" in page
    (tn, fp), (fn, tp) = metrics["confusion_matrix"]
    assert f"negative {tn} / {fp}, positive {fn} / {tp}" in page
    assert f"({metrics['dev_rows']} sentences)" in page
    assert (
        model_card.render("sentiment", page, model_card.load_source("sentiment", tmp_path)) == page
    )


def test_a_recipes_runs_are_recorded_on_its_experiments_page(tiny_model_store, tmp_path):
    """`python -m training.experiments` reads what the trainer wrote; recording a name again
    replaces its row; the page renders again from what the command kept."""
    shutil.copyfile(ROOT / "docs" / "experiments" / "lm.md", tmp_path / "lm.md")
    run = tiny_model_store.parent / "lm"
    command = [sys.executable, "-m", "training.experiments", "lm", "lm-tiny", str(run)]
    command += ["--note", "the tiny profile", "--pages", str(tmp_path)]
    for _ in range(2):
        subprocess.run(command, cwd=ROOT, check=True, capture_output=True)
    page = (tmp_path / "lm.md").read_text()
    metrics = json.loads((run / "metrics.json").read_text())
    seed = json.loads((run / "config.json").read_text())["training"]["seed"]
    (row,) = [line for line in page.splitlines() if line.startswith("| `lm-tiny` |")]
    cells = [cell.strip() for cell in row.strip("|").split("|")]
    assert cells[3:] == [
        str(seed),
        f"{metrics['train_minutes']:.1f}",
        f"{metrics['val_nats_per_char']:.4f}",
        "the tiny profile",
    ]
    recipes = experiments.load_recipes("lm", tmp_path)
    assert experiments.render("lm", page, recipes) == page
