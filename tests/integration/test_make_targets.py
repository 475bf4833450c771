"""The commands the README gives: `make models`, `make serve`, `make status`, `make stop`, run
for real on tiny models (archived from the test session's artifacts, served on free ports
from a run folder of their own, so a developer's own server is left alone)."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import pytest

from playground import control as playground_control
from serving.client import Client
from serving.lifecycle import alive, server_pid, stop
from serving.server_config import free_ports

pytestmark = pytest.mark.integration

ROOT = Path(__file__).resolve().parents[2]


def make(target: str, settings: dict[str, str]) -> subprocess.CompletedProcess[str]:
    args = ["make", "--no-print-directory", "-C", str(ROOT), target]
    args += [f"{key}={value}" for key, value in settings.items()]
    return subprocess.run(args, capture_output=True, text=True, timeout=600)


@pytest.mark.skipif(shutil.which("make") is None, reason="needs GNU make")
def test_models_serve_status_stop(tiny_model_store, tmp_path):
    artifacts = tiny_model_store.parent  # the tiny trainers' folders: sentiment/, lm/
    inference, management, metrics, playground = free_ports(4)
    settings = {
        "ARTIFACTS": str(artifacts),
        "MODEL_STORE": str(tmp_path / "store"),
        "RUN_DIR": str(tmp_path / "run"),
        "PORT": str(inference),
        "MANAGEMENT_PORT": str(management),
        "METRICS_PORT": str(metrics),
        "PLAYGROUND_PORT": str(playground),
    }
    try:
        models = make("models", settings)
        assert models.returncode == 0, models.stderr
        assert {p.name for p in (tmp_path / "store").glob("*.mar")} == {"lm.mar", "sentiment.mar"}
        assert "dev accuracy" in models.stdout, models.stdout  # training.summary's report

        served = make("serve", settings)
        assert served.returncode == 0, served.stdout + served.stderr
        assert make("status", settings).stdout.strip().startswith("running")
        client = Client.from_run_dir(str(tmp_path / "run"))
        assert client.connection.inference_url.endswith(f":{inference}")
        assert client.classify("a gripping , funny movie")["label"] in ("positive", "negative")
        assert f"127.0.0.1:{playground}/" in served.stdout, "serve prints the playground's URL"
        page = make("playground", settings)
        assert page.returncode == 0 and f"127.0.0.1:{playground}/?token=" in page.stdout
        page_pid = playground_control.read_state(tmp_path / "run").pid

        stopped = make("stop", settings)
        assert stopped.returncode == 0 and "stopped" in stopped.stdout
        assert playground_control.read_state(tmp_path / "run") is None
        assert not alive(page_pid), "make stop stops the playground too"
        status = make("status", settings)
        assert status.returncode != 0 and "not running" in status.stdout
        assert server_pid(tmp_path / "run") is None
    finally:
        playground_control.stop(tmp_path / "run")
        stop(tmp_path / "run")
