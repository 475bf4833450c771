"""The LSTM vs GRU study: a tiny run writes its table, CSV, JSON and plot with finite errors."""

from __future__ import annotations

import csv
import json
import math
from pathlib import Path

import torch

from lesson.study import SineRegressor, main, sine_windows


def test_tiny_study_writes_table_and_plot(tmp_path: Path) -> None:
    main(["--tiny", "--no-progress", "--out", str(tmp_path), "--lengths", "4", "8"])
    table = (tmp_path / "results.md").read_text()
    for text in ("| 4 |", "| 8 |", "LSTM", "GRU", "last-value"):
        assert text in table
    rows = list(csv.DictReader((tmp_path / "results.csv").open()))
    assert {(r["cell"], r["seq_len"]) for r in rows} == {
        (cell, length) for cell in ("lstm", "gru") for length in ("4", "8")
    }
    assert all(math.isfinite(float(r["test_mse"])) for r in rows)
    summary = json.loads((tmp_path / "results.json").read_text())["summary"]
    assert [row["seq_len"] for row in summary] == [4, 8]
    assert (tmp_path / "mse_vs_length.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_gru_has_three_quarters_of_the_lstm_recurrent_weights() -> None:
    lstm, gru = SineRegressor("lstm", 16).rnn, SineRegressor("gru", 16).rnn
    count = lambda module: sum(p.numel() for p in module.parameters())  # noqa: E731
    assert count(gru) * 4 == count(lstm) * 3


def test_windows_are_reproducible_and_target_is_the_next_clean_value() -> None:
    first = sine_windows(5, 12, 0.0, torch.Generator().manual_seed(3))
    again = sine_windows(5, 12, 0.0, torch.Generator().manual_seed(3))
    torch.testing.assert_close(first, again)
    inputs, targets = first
    assert inputs.shape == (5, 12, 1) and targets.shape == (5,)
    # Noise-free sine: x(t+1) = 2 cos(w) x(t) - x(t-1); recover cos(w) from the window.
    x = inputs[..., 0]
    two_cos = (x[:, 2] + x[:, 0]) / x[:, 1]
    torch.testing.assert_close(targets, two_cos * x[:, -1] - x[:, -2], atol=1e-4, rtol=0)
