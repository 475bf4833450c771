"""The commands the README gives: `make models`, `make serve`, `make status`, `make stop`, run
for real on tiny models (archived from the test session's artifacts, served on free ports
from a run folder of their own, so a developer's own server is left alone)."""

from __future__ import annotations

import re
import shutil
import subprocess
from pathlib import Path

import pytest

from models.classifier_predictor import ClassifierPredictor
from playground import control as playground_control
from serving.client import Client
from serving.lifecycle import alive, server_pid, stop
from serving.server_config import free_ports
from tests.integration.conftest import default_ports_taken, free_server_ports
from training.archive import packed_quantize, unpack_archive

pytestmark = pytest.mark.integration

ROOT = Path(__file__).resolve().parents[2]
MAKE_PORTS = {  # the Makefile's variable for each port
    "inference_port": "PORT",
    "management_port": "MANAGEMENT_PORT",
    "metrics_port": "METRICS_PORT",
    "grpc_inference_port": "GRPC_INFERENCE_PORT",
    "grpc_management_port": "GRPC_MANAGEMENT_PORT",
    "initial_worker_port": "WORKER_PORT",
}


def make(target: str, settings: dict[str, str]) -> subprocess.CompletedProcess[str]:
    args = ["make", "--no-print-directory", "-C", str(ROOT), target]
    args += [f"{key}={value}" for key, value in settings.items()]
    return subprocess.run(args, capture_output=True, text=True, timeout=600)


@pytest.mark.skipif(shutil.which("make") is None, reason="needs GNU make")
def test_models_serve_status_stop(tiny_model_store, tmp_path):
    artifacts = tiny_model_store.parent  # the tiny trainers' folders: sentiment/, lm/
    ports = free_server_ports()
    (playground,) = free_ports(1)
    settings = {
        "ARTIFACTS": str(artifacts),
        "MODEL_STORE": str(tmp_path / "store"),
        "RUN_DIR": str(tmp_path / "run"),
        **{MAKE_PORTS[role]: port for role, port in ports.items()},
        "PLAYGROUND_PORT": str(playground),
    }
    inference = ports["inference_port"]
    # A developer's `make serve` from this checkout holds the default ports meanwhile.
    with default_ports_taken():
        check_models_serve_status_stop(settings, tmp_path, inference)
    rendered = (tmp_path / "run" / "config.properties").read_text()
    for role, port in ports.items():  # "grpc_inference_port=N", "inference_address=...:N"
        assert re.search(rf"[=:]{port}$", rendered, re.MULTILINE), role


def check_models_serve_status_stop(settings: dict[str, str], tmp_path, inference: int) -> None:
    playground = settings["PLAYGROUND_PORT"]
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
        text = "a gripping , funny movie"
        store = tmp_path / "store" / "sentiment.mar"
        local = ClassifierPredictor.from_artifact(
            unpack_archive(store, tmp_path / "unpacked"), quantize=packed_quantize(store)
        )
        assert client.classify(text)["label"] == local.predict([text])[0]["label"]
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
        check_models_redoes_only_what_is_missing(settings, tmp_path / "store")
    finally:
        playground_control.stop(tmp_path / "run")
        stop(tmp_path / "run")


def check_models_redoes_only_what_is_missing(settings: dict[str, str], store: Path) -> None:
    """With lm.mar gone, `make models` packs it again from the trained artifact: nothing is
    retrained and the sentiment archive is left as it was."""
    artifacts = Path(settings["ARTIFACTS"])
    kept = [store / "sentiment.mar", *artifacts.glob("*/weights.pt")]
    times = {path: path.stat().st_mtime_ns for path in kept}
    (store / "lm.mar").unlink()
    again = make("models", settings)
    assert again.returncode == 0, again.stderr
    assert (store / "lm.mar").is_file()
    assert {path: path.stat().st_mtime_ns for path in kept} == times
