"""Every served model is one registry line plus its folder, and each consumer follows the
registry instead of a list of its own."""

from __future__ import annotations

import ast
import importlib.util
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
