"""TorchServe 0.12 accepts the config.properties that deploy/kserve/layout.py writes.

No cluster here, so this runs what KServe's TorchServe runtime runs in the pod
(`torchserve --start --model-store <mount>/model-store --ts-config <mount>/config/...`) on the
laid-out folder, with only the ports and the mount path moved to this machine's free ones, and
then makes the call KServe's wrapper makes: POST /predictions/<model> with the client's body and
no key.
"""

from __future__ import annotations

import subprocess
import sys
import time
from pathlib import Path

import pytest
import requests
import yaml

from deploy.kserve.layout import CONFIG_DIR, SNAPSHOT_SETTINGS, STORE_DIR, lay_out, set_properties
from handlers import registry
from serving.connection import Connection
from serving.lifecycle import _environment, stop
from serving.server_config import free_ports

pytestmark = pytest.mark.integration

ROOT = Path(__file__).resolve().parents[2]


def on_this_machine(config: Path, store: Path) -> dict[str, int]:
    """Move the pod's fixed ports and mount path to free loopback ones; nothing else changes."""
    http, metrics, grpc_inference, grpc_management, workers = free_ports(5)
    config.write_text(
        set_properties(
            config.read_text(),
            {
                "inference_address": f"http://127.0.0.1:{http}",
                "management_address": f"http://127.0.0.1:{http}",
                "metrics_address": f"http://127.0.0.1:{metrics}",
                "grpc_inference_port": str(grpc_inference),
                "grpc_management_port": str(grpc_management),
                "initial_worker_port": str(workers),
                "model_store": str(store),
            },
        )
    )
    return {"http": http, "metrics": metrics}


def wait_for_workers(connection: Connection, models: list[str], timeout: float = 240) -> dict:
    deadline = time.monotonic() + timeout
    described: dict = {}
    while time.monotonic() < deadline:
        time.sleep(1)
        try:
            described = {m: connection.model_status(m)[0] for m in models}
        except requests.RequestException:
            continue
        if all(
            d["workers"] and all(w["status"] == "READY" for w in d["workers"])
            for d in described.values()
        ):
            return described
    pytest.fail(f"workers not READY: {described}")


def test_torchserve_serves_the_kserve_layout_without_keys(tiny_model_store, tmp_path):
    models = sorted(p.stem for p in tiny_model_store.glob("*.mar"))
    storage = lay_out(tiny_model_store, tmp_path / "storage", models)
    config, store = storage / CONFIG_DIR / "config.properties", storage / STORE_DIR
    ports = on_this_machine(config, store)
    run_dir = tmp_path / "run"
    run_dir.mkdir()
    torchserve = Path(sys.executable).parent / "torchserve"
    subprocess.run(
        [str(torchserve), "--start", f"--model-store={store}", f"--ts-config={config}"],
        cwd=run_dir,
        env=_environment(run_dir),
        check=True,
        stdout=subprocess.DEVNULL,
        timeout=120,
    )
    try:
        url = f"http://127.0.0.1:{ports['http']}"
        described = wait_for_workers(
            Connection(url, url, f"http://127.0.0.1:{ports['metrics']}"), models
        )
        for model in models:
            expected = yaml.safe_load(registry.get(model).config.read_text())
            assert {k: described[model][k] for k in SNAPSHOT_SETTINGS} == {
                k: expected[k] for k in SNAPSHOT_SETTINGS
            }
        answer = requests.post(f"{url}/predictions/sentiment", json={"text": "fine"}, timeout=60)
        assert answer.status_code == 200, answer.text
        assert answer.json()["label"] in ("positive", "negative")
    finally:
        stop(run_dir)
