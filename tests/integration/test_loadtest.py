"""`python -m loadtest.run` against a real TorchServe: no failed request, a report and a plot.

Short runs (seconds) with short generations; no timing is asserted, only what a user of the
command sees: its exit status, the folder it writes, and which servers it leaves running.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from loadtest import report
from serving.lifecycle import server_pid
from tests.integration.conftest import ROOT, default_ports_taken, free_server_ports, port_flags

pytestmark = pytest.mark.integration

ENDPOINTS = {
    "classify": ["POST /predictions/sentiment"],
    "mixed": [
        "POST /predictions/lm",
        "POST /predictions/sentiment",
        "STREAM lm first chunk",
        "STREAM lm whole stream",
    ],
    "conversation": [
        "POST /predictions/lm [session opens]",
        "POST /predictions/lm [session continues]",
    ],
}


def load_run(out: Path, run_dir: Path, scenario: str, duration: str, *extra: str):
    env = {**os.environ, "LOADTEST_MAX_NEW_TOKENS": "4,16", "LOADTEST_MAX_WAIT": "0.2"}
    command = [sys.executable, "-m", "loadtest.run", "--run-dir", str(run_dir)]
    command += ["--users", "4", "--spawn-rate", "4", "--duration", duration]
    command += ["--scenario", scenario, "--out", str(out), *extra]
    return subprocess.run(
        command, cwd=ROOT, env=env, capture_output=True, text=True, timeout=300, check=False
    )


def check_run_folder(out: Path, scenario: str) -> str:
    """Every endpoint of the scenario answered and none failed; the report and plot exist."""
    rows = report.read_endpoint_stats(report.stats_file(out))
    stats = {f"{row.kind} {row.name}".strip(): row for row in rows}
    for endpoint in ENDPOINTS[scenario]:
        assert stats[endpoint].requests > 0, endpoint
    assert stats[report.AGGREGATED].failures == 0
    assert (out / report.PLOT).read_bytes()[:4] == b"\x89PNG"
    assert (out / report.HTML).stat().st_size > 0
    return (out / report.REPORT).read_text()


def test_load_run_against_the_running_server_leaves_it_running(server, tmp_path):
    scenario = "mixed"  # the shared server always serves both models (conftest)
    out = tmp_path / "run"
    result = load_run(out, server.run_dir, scenario, "8s")
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    assert f"report: {out / report.REPORT}" in result.stdout
    text = check_run_folder(out, scenario)
    assert "server already running" in text
    for model in ("sentiment", "lm"):
        assert f"| {model} |" in text  # a server-side row per model under load
    assert server_pid(server.run_dir) is not None


def test_conversations_continue_their_sessions_without_a_failure(server, tmp_path):
    out = tmp_path / "run"
    result = load_run(out, server.run_dir, "conversation", "8s")
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    check_run_folder(out, "conversation")


def test_load_run_starts_a_server_when_none_runs_and_stops_it(tiny_model_store, tmp_path):
    run_dir, out = tmp_path / "server", tmp_path / "run"
    ports = port_flags(free_server_ports())
    with default_ports_taken():  # as a developer's `make serve` holds them
        result = load_run(
            out, run_dir, "classify", "4s", "--model-store", str(tiny_model_store), *ports
        )
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    assert "server started by this run" in check_run_folder(out, "classify")
    assert server_pid(run_dir) is None
