"""Every served model is one registry line plus its folder, and each consumer follows the
registry instead of a list of its own."""

from __future__ import annotations

import ast
import importlib.util
import json
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from handlers import registry
from handlers.schema import Endpoint

ROOT = Path(__file__).resolve().parents[2]
MODELS = registry.MODELS


@pytest.mark.parametrize("model", MODELS, ids=lambda m: m.name)
def test_each_model_folder_holds_handler_fields_config_and_readme(model):
    for path in (model.handler, model.config, model.folder / "README.md"):
        assert path.is_file(), f"{model.name}: {path.relative_to(ROOT)} is missing"
    assert {"batchSize", "maxBatchDelay", "minWorkers"} <= set(
        yaml.safe_load(model.config.read_text())
    )
    classes = [n for n in ast.parse(model.handler.read_text()).body if isinstance(n, ast.ClassDef)]
    assert len(classes) == 1, "TorchServe needs exactly one class in a handler module"
    endpoints = model.endpoints()
    assert endpoints and all(isinstance(e, Endpoint) for e in endpoints)
    assert [e.path for e in endpoints].count("") == 1, "one endpoint is the model's own route"


@pytest.mark.parametrize("model", MODELS, ids=lambda m: m.name)
def test_each_trainer_and_load_user_exists(model):
    assert importlib.util.find_spec(model.trainer) is not None, model.trainer
    locustfile = ast.parse((ROOT / "loadtest" / "locustfile.py").read_text())
    users = {n.name for n in locustfile.body if isinstance(n, ast.ClassDef)}
    assert set(model.load_users) <= users


def test_consumers_follow_the_registry():
    from loadtest.run import MODEL_OF, SCENARIOS
    from serving.server_config import DEFAULT_MODELS
    from training.archive import model_config_path

    assert registry.names() == DEFAULT_MODELS
    assert all(model_config_path(m.name) == m.config for m in MODELS)
    assert {user for users in SCENARIOS.values() for user in users} <= set(MODEL_OF)
    make = subprocess.run(
        ["make", "-s", "-n", "-p", "models"], cwd=ROOT, capture_output=True, text=True, check=False
    )
    assert f"MODELS := {' '.join(registry.names())}" in make.stdout


def test_the_cli_prints_names_and_trainers_with_the_system_interpreter():
    """The Makefile runs it before the virtualenv exists: no third-party import allowed."""
    run = [sys.executable, "-S", "-m", "handlers.registry"]
    names = subprocess.run([*run, "names"], cwd=ROOT, capture_output=True, text=True, check=True)
    assert names.stdout.split() == list(registry.names())
    for model in MODELS:
        trainer = subprocess.run(
            [*run, "trainer", model.name], cwd=ROOT, capture_output=True, text=True, check=True
        )
        assert trainer.stdout.strip() == model.trainer
    unknown = subprocess.run([*run, "trainer", "nope"], cwd=ROOT, capture_output=True, text=True)
    assert unknown.returncode != 0 and "sentiment" in unknown.stderr


@pytest.mark.parametrize("model", MODELS, ids=lambda m: m.name)
def test_each_example_is_a_valid_request_of_the_model(model):
    """The generic load user and `python -m serving.client predict <model>` send these."""
    from handlers.schema import validate

    (own,) = [endpoint for endpoint in model.endpoints() if endpoint.path == ""]
    assert model.examples and model.answer_key
    for example in model.examples:
        validate(example, own.fields)  # raises RequestError naming the field


def test_a_model_without_users_of_its_own_gets_a_generic_user_scenario_and_layout():
    model = registry.ServedModel("topic_v2", "handlers.topic_v2.train", examples=({"text": "x"},))
    assert model.users == ("TopicV2User",)
    assert model.load_scenarios == {"topic_v2": ("TopicV2User",)}
    assert model.mixed_users == ("TopicV2User",)
    assert model.layout_scenario == "topic_v2"
    assert model.layout.throughput == "requests"


def test_the_load_test_scenarios_come_from_the_entries():
    from loadtest.run import SCENARIOS

    sentiment, lm = registry.get("sentiment"), registry.get("lm")
    assert SCENARIOS["classify"] == ("ClassifyUser",)
    assert SCENARIOS["generation"] == ("GenerateUser", "StreamUser")
    assert SCENARIOS["mixed"] == ("ClassifyUser", "GenerateUser", "StreamUser")
    assert set(SCENARIOS) == {"mixed", *sentiment.load_scenarios, *lm.load_scenarios}
    names = [name for model in MODELS for name in model.load_scenarios]
    assert len(names) == len(set(names)) and "mixed" not in names, "one model per scenario name"
    assert sentiment.layout_scenario == "classify" and lm.layout_scenario == "generation"


@pytest.mark.parametrize("model", MODELS, ids=lambda m: m.name)
def test_the_layout_search_starts_from_the_served_config(model):
    """Its candidates are model-config.yaml's settings with one change each; a change names
    only settings the candidates have (a typo would silently try nothing new)."""
    from benchmarks.layout import candidates

    config = yaml.safe_load(model.config.read_text())
    tried = candidates(model, config)
    served = tried[list(model.layout.changes).index({})]
    assert served["workers"] == config["minWorkers"]
    assert served["batchSize"] == config["batchSize"]
    assert served["maxBatchDelay"] == config["maxBatchDelay"]
    for option in model.layout.options:
        assert served[option] == config["handler"][option]
    for change in model.layout.changes:
        assert set(change) <= set(served), change
    assert len({tuple(c.items()) for c in tried}) == len(tried), "each candidate differs"


def test_the_training_summary_speaks_each_entrys_words():
    from training.summary import describe

    sentiment = {"dev_accuracy": 0.8601, "teacher_dev_accuracy": 0.9, "seconds": 1446.0}
    assert describe("sentiment", sentiment) == (
        "sentiment: dev accuracy 86.0% (its teacher: 90.0%), trained in 24.1 min"
    )
    del sentiment["teacher_dev_accuracy"]
    assert describe("sentiment", sentiment) == "sentiment: dev accuracy 86.0%, trained in 24.1 min"
    lm = {"val_nats_per_char": 1.51361, "train_minutes": 61.37, "steps": 3682}
    assert describe("lm", lm) == "lm: validation 1.5136 nats/char, trained in 61.4 min (3682 steps)"
    assert describe("gone", {"seconds": 90}) == "gone: trained in 1.5 min"
    assert describe("gone", {}) == "gone: no figures in its metrics.json"


def test_a_run_folder_of_any_name_is_summarised_as_the_kind_its_artifact_holds(
    tmp_path, capsys
) -> None:
    """docs/first-start.md's seeds live in runs/first-start/sentiment-13 and the like."""
    from training.summary import main

    for name, accuracy in (("sentiment-13", 0.8234), ("sentiment-14", 0.836)):
        (tmp_path / name).mkdir()
        (tmp_path / name / "config.json").write_text(json.dumps({"kind": "sentiment"}))
        metrics = {"dev_accuracy": accuracy, "seconds": 213.0}
        (tmp_path / name / "metrics.json").write_text(json.dumps(metrics))
    main(str(tmp_path))
    assert capsys.readouterr().out.splitlines() == [
        "sentiment-13: dev accuracy 82.3%, trained in 3.5 min",
        "sentiment-14: dev accuracy 83.6%, trained in 3.5 min",
    ]
