"""LM training end to end on a tiny profile: lossless tokenizer, artifact, metrics, scoring."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch

from models.decode_step import DecodeStep
from models.generation import GenerationRequest, Generator
from training.data import load_text, split_text
from training.evaluate_lm import compare_int8, load_lm, score_text, step_nll
from training.lm_scoring import evaluate_nll
from training.train_lm import build_tokenizer, encode_losslessly, parse_options, train

ODD_TEXT = "Tab\there,  two spaces,\n\n\nnewlines, caf\u00e9, \u201cquotes\u201d, \U0001f642\n"


@pytest.mark.parametrize("vocab_size", [0, 400])
def test_tokenizer_gives_back_every_character_of_unseen_shakespeare(tmp_path, vocab_size):
    train_text, val_text = split_text(load_text("tinyshakespeare")[:120_000])
    tokenizer = build_tokenizer(train_text, vocab_size, tmp_path / "tok")
    for text in (val_text, ODD_TEXT):
        ids = encode_losslessly(tokenizer, text)
        assert tokenizer.decode(ids) == text
    # Decoding token by token and joining equals decoding at once (the engine streams so).
    ids = tokenizer.encode(val_text[:3000] + ODD_TEXT)
    clean = [i for i in ids if not tokenizer.id_to_piece(i).startswith("<0x")]
    assert "".join(tokenizer.decode([i]) for i in clean) == tokenizer.decode(clean)


@pytest.fixture(scope="module")
def tiny_run(tmp_path_factory) -> tuple[Path, dict]:
    out = tmp_path_factory.mktemp("lm")
    options = parse_options(["--profile", "tiny", "--out", str(out), "--threads", "1"])
    options.progress = False
    return out, train(options)


def test_tiny_training_writes_a_servable_artifact_with_its_metrics(tiny_run):
    out, _ = tiny_run
    assert {"config.json", "weights.pt", "tokenizer.model", "loss_curve.png"} <= {
        p.name for p in out.iterdir()
    }
    saved = json.loads((out / "metrics.json").read_text())
    history = [point["val_nats_per_char"] for point in saved["history"]]
    assert saved["val_nats_per_char"] == min(history)  # the best checkpoint is the one kept
    assert saved["val_nats_per_char"] < 6.0  # learned something: uniform over 300+ is > 5.7
    result = Generator.from_artifact(out).generate([GenerationRequest("ROMEO:", 8, 0.0)])
    assert result[0].generated_tokens == 8


def test_scoring_the_artifact_reproduces_the_training_metric(tiny_run):
    out, metrics = tiny_run
    val_text = split_text(load_text("tinyshakespeare")[:200_000])[1]
    model, tokenizer = load_lm(out)
    scored = score_text(model, tokenizer, val_text)
    assert scored["nats_per_char"] == pytest.approx(metrics["val_nats_per_char"], rel=1e-4)
    assert scored["chars"] == len(val_text)


def test_the_engine_step_scores_like_the_training_model(tiny_run):
    out, _ = tiny_run
    model, tokenizer = load_lm(out)
    ids = torch.tensor(tokenizer.encode(load_text("tinyshakespeare")[:5000]))
    expected = evaluate_nll(model, ids, 8, 64)
    assert step_nll(DecodeStep(model), ids, 8)[0] == pytest.approx(expected, rel=1e-5)
    compared = compare_int8(out, load_text("tinyshakespeare")[:5000])
    assert abs(compared["nats_per_char_delta"]) < 0.05
    assert compared["top1_agreement"] > 0.9


def test_a_budget_spent_before_the_first_step_still_trains_one_and_scores_it(tmp_path):
    """Loading the data on a busy machine can use up a short budget: the run still ends with
    a measured, servable checkpoint instead of failing on an empty history."""
    options = parse_options(["--profile", "tiny", "--out", str(tmp_path), "--threads", "1"])
    options.progress, options.steps, options.minutes = False, None, 1e-9
    metrics = train(options)
    assert metrics["steps"] == 1 and metrics["best_step"] == 1
    assert (tmp_path / "weights.pt").is_file()
