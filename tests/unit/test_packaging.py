"""pyproject.toml: the console scripts it installs exist, and a group's pins are what the
serving image gets (scripts/pins.py)."""

from __future__ import annotations

import importlib
import subprocess
import sys
import tomllib
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
PROJECT = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
PINS = ROOT / "scripts" / "pins.py"


@pytest.mark.parametrize("name", sorted(PROJECT["scripts"]))
def test_every_console_script_names_a_function(name):
    module, _, attribute = PROJECT["scripts"][name].partition(":")
    assert callable(getattr(importlib.import_module(module), attribute))


def test_pins_prints_each_group_once_and_refuses_an_unknown_one():
    run = [sys.executable, str(PINS)]
    both = subprocess.run([*run, "train", "loadtest"], capture_output=True, text=True, check=True)
    lines = both.stdout.split()
    assert lines.count("matplotlib==3.11.2") == 1  # in both groups, printed once
    assert "locust==2.47.0" in lines and "torchserve==0.12.0" not in lines
    wrong = subprocess.run([*run, "gpu"], capture_output=True, text=True)
    assert wrong.returncode != 0 and "serve" in wrong.stderr


def test_the_torch_pin_is_the_same_in_both_places():
    """requirements-torch.txt is installed first, on its own; pyproject.toml must agree."""
    first = (ROOT / "requirements-torch.txt").read_text().split()
    assert [p for p in first if p.startswith("torch==")] == PROJECT["dependencies"]


def test_cpu_users_get_the_cpu_torch_and_every_installer_is_pinned():
    """Outside these machines pip must find PyTorch's CPU wheel (PyPI's Linux torch pulls the
    CUDA libraries), and `make setup` installs nothing unpinned, pip itself included."""
    lines = (ROOT / "requirements-torch.txt").read_text().splitlines()
    assert "--extra-index-url https://download.pytorch.org/whl/cpu" in lines
    recipe = (ROOT / "Makefile").read_text()
    assert "--upgrade pip" not in recipe and "PIP_PIN := pip==" in recipe
    build = tomllib.loads((ROOT / "pyproject.toml").read_text())["build-system"]["requires"]
    assert all("==" in requirement for requirement in build), build
