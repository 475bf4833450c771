"""`make eval`'s harness on the tiny LM: lm-evaluation-harness's local-completions through a
real TorchServe (its remote tokenizer answered by our routes, nothing downloaded) agrees with
`training.evaluate_lm`'s scorer on the same documents."""

from __future__ import annotations

import importlib.util
from pathlib import Path

import pytest

from evaluation.harness import AGREEMENT, evaluate, report
from training.data import load_text, split_text

pytestmark = [
    pytest.mark.integration,
    pytest.mark.skipif(
        importlib.util.find_spec("lm_eval") is None,
        reason="lm-eval is not installed: `make setup` installs it (pip install --no-deps "
        "lm-eval==0.4.13 plus the eval group)",
    ),
]


def test_the_harness_through_the_server_agrees_with_the_in_process_scorer(
    server, tiny_model_store: Path, tmp_path: Path
):
    text = split_text(load_text("tinyshakespeare"))[1]
    figures = evaluate(
        server.connection.inference_url,
        server.connection.inference_key,
        tiny_model_store / "lm.mar",
        text,
        tmp_path,
        count=2,
        questions=4,
    )
    print(report(figures))
    assert figures["documents"] == 2 and figures["chars"] > 2000
    assert abs(figures["difference"]) < AGREEMENT and figures["agree"]
    assert 0 <= figures["next_line_accuracy"] <= 1
    assert (tmp_path / "eval.json").exists()
