"""The sentiment trainer on a wall-clock budget, end to end on tiny data: it measures, plans,
says what it chose, keeps within its budget (plus a generous bound for a busy machine), and a
run given the same plan (``--plan``) trains the same model."""

from __future__ import annotations

import json
import time
from pathlib import Path

import pytest
import torch

from tests.unit.test_sentiment_data import synthetic_rows
from tests.unit.tiny_sentiment import write_tsv
from training import throughput
from training.budget import Plan, load_plan
from training.sentiment_inputs import labelled_phrase_rows
from training.train_sentiment import parse_options, train

SLACK_SECONDS = 90  # start-up and a busy shared machine: the promise is the budget, roughly


def synthetic_source(tmp_path: Path, rows: int) -> str:
    write_tsv(tmp_path / "easy" / "train.tsv", synthetic_rows(rows, 0))
    write_tsv(tmp_path / "easy" / "dev.tsv", synthetic_rows(100, 1))
    return str(tmp_path / "easy")


def timed_train(argv: list[str]) -> tuple[dict, float]:
    options = parse_options(argv)
    options.progress, options.threads = False, 1
    started = time.perf_counter()
    metrics = train(options)
    return metrics, time.perf_counter() - started


def test_a_budget_run_plans_keeps_to_time_and_a_replayed_plan_trains_the_same_model(
    tmp_path: Path, capsys
) -> None:
    source = synthetic_source(tmp_path, 800)
    minutes = 0.25  # a budget that binds (fewer epochs than the recipe's 100), 15 s
    common = ["--profile", "tiny", "--source", source]
    first, seconds = timed_train(
        [*common, "--epochs", "100", "--minutes", str(minutes), "--out", str(tmp_path / "a")]
    )
    assert seconds <= minutes * 60 + SLACK_SECONDS
    planned = first["budget"]
    assert planned["minutes"] == minutes and planned["recipe"]["epochs"] == 100
    assert 1 <= planned["plan"]["epochs"] <= 100
    assert planned["throughput"]["student_words_per_s"] > 0
    captured = capsys.readouterr()
    printed = captured.out + captured.err
    for line in planned["decisions"]:
        assert f"budget: {line}" in printed
    trained = len(first["history"])
    assert trained == first.get("stopped_after_epoch", planned["plan"]["epochs"])

    saved = tmp_path / "a" / "metrics.json"
    assert load_plan(json.loads(saved.read_text())) == Plan(**planned["plan"])
    again, _ = timed_train([*common, "--plan", str(saved), "--out", str(tmp_path / "b")])
    assert again["budget"]["from"] == str(saved) and "throughput" not in again["budget"]
    assert len(again["history"]) == planned["plan"]["epochs"]  # a replay is never cut short
    for one, two in zip(first["history"], again["history"], strict=False):
        assert (one["train_loss"], one["dev_accuracy"]) == (two["train_loss"], two["dev_accuracy"])


def test_a_budget_run_with_the_teacher_labels_what_its_plan_says(
    tmp_path: Path, monkeypatch
) -> None:
    # The probes' samples shrunk (a real MiniLM teacher times them): what is tested is that
    # the plan is made from measured rates and followed, not how well the rates are measured.
    monkeypatch.setattr(throughput, "TEACHER_STEPS", 2)
    monkeypatch.setattr(throughput, "LABEL_ROWS", 32)
    rows = 150
    source = synthetic_source(tmp_path, rows)
    minutes = 1.5
    metrics, seconds = timed_train(
        [
            "--profile",
            "tiny",
            "--source",
            source,
            "--teacher-source",
            source,
            "--extra-words",
            "100",
            "--teacher-epochs",
            "1",
            "--augment-copies",
            "2",
            "--teacher-vectors",
            "8",
            "--teacher-phrase-share",
            "0.5",
            "--minutes",
            str(minutes),
            "--out",
            str(tmp_path / "t"),
        ]
    )
    assert seconds <= minutes * 60 + SLACK_SECONDS
    planned = metrics["budget"]
    plan = Plan(**planned["plan"])
    assert planned["throughput"]["teacher_steps_per_s"] > 0
    assert planned["throughput"]["label_words_per_s"] > 0
    assert plan.phrase_share <= 0.5 and plan.copies <= 2
    if plan.teacher_epochs > 0:  # what ran is what was planned
        assert metrics["teacher_labelled_phrases"] == round(rows * plan.phrase_share)
        assert metrics["augmented_rows"] <= plan.copies * rows
        assert (metrics["augmented_rows"] > 0) == (plan.copies > 0)
    assert len(metrics["history"]) == metrics.get("stopped_after_epoch", plan.epochs)


def test_labelled_phrases_are_a_seeded_sample_in_row_order() -> None:
    assert labelled_phrase_rows(10, 1.0, 13) == list(range(10))
    half = labelled_phrase_rows(1000, 0.5, 13)
    assert len(half) == 500 == len(set(half)) and half == sorted(half)
    assert half == labelled_phrase_rows(1000, 0.5, 13) != labelled_phrase_rows(1000, 0.5, 14)
    assert labelled_phrase_rows(1000, 0.0, 13) == []
    assert torch.tensor(half).max() < 1000


@pytest.mark.parametrize(
    ("argv", "named"),
    [(["--minutes", "0"], "minutes"), (["--teacher-phrase-share", "1.5"], "phrase share")],
)
def test_bad_budget_settings_fail_before_any_data_is_read(
    argv: list[str], named: str, tmp_path: Path
) -> None:
    missing = str(tmp_path / "no-such-folder")  # would fail differently if it were read
    with pytest.raises(ValueError, match=named):
        train(parse_options(["--profile", "tiny", "--source", missing, *argv]))
