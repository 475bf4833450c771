"""What the Makefile's targets run, read from `make -n` (nothing is run): every target that
talks to a running server finds it through RUN_DIR, so a user who started one with
`make serve RUN_DIR=…` reaches that server, not a fresh one on other ports."""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]


def dry_run(target: str, **variables: Path) -> list[str]:
    """The commands ``make target`` would run, one per line, continuation lines joined."""
    settings = [f"{name}={value}" for name, value in variables.items()]
    dry = subprocess.run(
        ["make", "-s", "-n", target, *settings],
        cwd=ROOT,
        capture_output=True,
        text=True,
        check=True,
    )
    return dry.stdout.replace("\\\n", " ").splitlines()


@pytest.mark.parametrize("target", ["loadtest", "chaos", "stop", "status"])
def test_the_target_passes_run_dir_to_its_command(target, tmp_path):
    run_dir = tmp_path / "my-server"
    commands = [line for line in dry_run(target, RUN_DIR=run_dir) if " -m " in line]
    assert commands
    assert all(f"--run-dir {run_dir}" in line for line in commands), commands
