"""Every make target that talks to a running server finds it through RUN_DIR: a user who
started one with `make serve RUN_DIR=…` reaches that server, not a fresh one on other ports."""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]


@pytest.mark.parametrize("target", ["loadtest", "chaos", "stop", "status"])
def test_the_target_passes_run_dir_to_its_command(target, tmp_path):
    run_dir = tmp_path / "my-server"
    dry = subprocess.run(
        ["make", "-s", "-n", target, f"RUN_DIR={run_dir}"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        check=True,
    )
    commands = [line for line in dry.stdout.splitlines() if " -m " in line]
    assert commands, dry.stdout
    assert all(f"--run-dir {run_dir}" in line for line in commands), dry.stdout
