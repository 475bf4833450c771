"""Commands that cannot work say why in one line, at once (issue #16)."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest

from serving.server_config import ROOT


def run(*command: str, **env: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", *command],
        cwd=ROOT,
        env={**os.environ, **env},
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


@pytest.mark.parametrize(
    ("command", "env", "expected"),
    [
        (
            ("training.train_lm", "--profile", "tiny", "--out", "/tmp/never"),
            {"DATA_DIR": "/nowhere"},
            "error: no folder 'tinyshakespeare' (holding *.txt files) in DATA_DIR=/nowhere",
        ),
        (
            ("training.evaluate_lm", "--archive", "missing.mar", "--validation"),
            {},
            "error: missing.mar does not exist",
        ),
        (
            ("serving.client", "--run-dir", "/nowhere", "classify", "x"),
            {},
            "error: no server state in /nowhere",
        ),
    ],
    ids=["data-dir", "archive", "client"],
)
def test_one_line_instead_of_a_traceback(command, env, expected):
    result = run(*command, **env)
    assert result.returncode != 0
    assert expected in result.stderr, result.stderr[-2000:]
    assert "Traceback" not in result.stderr
