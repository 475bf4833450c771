"""How a client reaches a running server: its URLs and keys, found from the run folder it was
started from, and what its management API says about the models' workers.

    connection = Connection.from_run_dir("runs/server")
    worker_states(connection, "sentiment")  # ["READY", ...]

The server leaves two files in its run folder for this: the state file (the config it was
started with; serving.lifecycle writes it) and the key file (TorchServe writes it). Everything
that talks to a server (client, load tests, benchmarks, health check) starts here.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import requests

from serving.server_config import DEFAULT_RUN_DIR, ServerError

STATE_FILE = "server.json"
KEY_FILE = "key_file.json"
# Seconds a client waits for a whole reply: TorchServe's own default_response_timeout
# (serving/config.properties), after which the server answers for itself.
REPLY_TIMEOUT_S = 120.0


@dataclass
class Connection:
    """How clients reach a running server: URLs and (when auth is on) the keys."""

    inference_url: str
    management_url: str
    metrics_url: str
    inference_key: str | None = None
    management_key: str | None = None
    grpc_address: str | None = None  # host:port of the gRPC inference API

    def inference_headers(self) -> dict[str, str]:
        return _bearer(self.inference_key)

    def management_headers(self) -> dict[str, str]:
        return _bearer(self.management_key)

    def model_status(self, model: str) -> list[dict[str, Any]]:
        reply = requests.get(
            f"{self.management_url}/models/{model}", headers=self.management_headers(), timeout=5
        )
        reply.raise_for_status()
        return reply.json()

    @classmethod
    def from_run_dir(cls, run_dir: str | Path = DEFAULT_RUN_DIR) -> Connection:
        """Find the server started from ``run_dir`` (what client, tests and load tests use)."""
        run_dir = Path(run_dir)
        state_file = run_dir / STATE_FILE
        if not state_file.exists():
            raise ServerError(f"no server state in {run_dir}: start one with `make serve`")
        state = json.loads(state_file.read_text())
        keys = read_keys(run_dir) if state["auth"] else {}
        host = state["host"]
        return cls(
            inference_url=f"http://{host}:{state['inference_port']}",
            management_url=f"http://{host}:{state['management_port']}",
            metrics_url=f"http://{host}:{state['metrics_port']}",
            inference_key=keys.get("inference"),
            management_key=keys.get("management"),
            # gRPC listens on loopback only, whatever the HTTP host (serving/config.properties)
            grpc_address=f"127.0.0.1:{state['grpc_inference_port']}",
        )


def _bearer(key: str | None) -> dict[str, str]:
    return {"Authorization": f"Bearer {key}"} if key else {}


def read_keys(run_dir: Path) -> dict[str, str]:
    """The keys TorchServe wrote into its working folder: {"inference": ..., "management": ...}."""
    data = json.loads((Path(run_dir) / KEY_FILE).read_text())
    return {kind: entry["key"] for kind, entry in data.items() if isinstance(entry, dict)}


def served_models(run_dir: Path) -> list[str]:
    """The models the server in ``run_dir`` was started with (from its state file)."""
    return json.loads((Path(run_dir) / STATE_FILE).read_text())["models"]


def worker_states(connection: Connection, model: str) -> list[str]:
    """The status ("READY", ...) of each worker of ``model``."""
    described = connection.model_status(model)
    return [worker["status"] for entry in described for worker in entry.get("workers", [])]
