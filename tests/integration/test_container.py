"""The container's entrypoint and health check, run as plain processes (no Docker here).

serving/entrypoint.py is what the image runs as its foreground process; these tests start it
the same way (environment variables only) on free loopback ports with the tiny archives, and
check what `docker run` / `docker stop` / the HEALTHCHECK would see.
"""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
import requests

from handlers import drain
from serving.connection import KEY_FILE, Connection
from serving.entrypoint import EXIT_SERVER_DIED, EXIT_START_FAILED, PORTS, PREFIX
from serving.lifecycle import DRAIN_DIR, PID_FILE, server_pid, stop
from serving.polling import poll_until
from serving.server_config import free_ports

from .conftest import ENDLESS, archived_predictor, frozen_while_running

pytestmark = pytest.mark.integration

ROOT = Path(__file__).resolve().parents[2]
START_TIMEOUT = 240  # generous, only so that a broken start fails instead of hanging CI
# The last line the entrypoint prints once the server is up: keys on, or keys off.
ANNOUNCED = ("keys (inference, management) in", "token authorization is OFF")


def entrypoint_env(store: Path, run_dir: Path, **extra: str) -> dict[str, str]:
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    ports = free_ports(len(PORTS))
    env.update({PREFIX + name: str(port) for name, port in zip(PORTS, ports, strict=True)})
    env.update(
        {
            PREFIX + "HOST": "127.0.0.1",  # the image binds 0.0.0.0; tests stay on loopback
            PREFIX + "MODEL_STORE": str(store),
            PREFIX + "RUN_DIR": str(run_dir),
            PREFIX + "START_TIMEOUT": str(START_TIMEOUT),
        }
    )
    env.update({PREFIX + key: value for key, value in extra.items()})
    return env


def healthcheck(env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "serving.healthcheck"],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )


class Entrypoint:
    """serving/entrypoint.py running in the background, its output in a log file."""

    def __init__(self, env: dict[str, str], log: Path) -> None:
        self.env = env
        self.log = log
        self.run_dir = Path(env[PREFIX + "RUN_DIR"])
        self.process: subprocess.Popen | None = None

    def start(self) -> Entrypoint:
        with open(self.log, "wb") as out:
            self.process = subprocess.Popen(
                [sys.executable, "-m", "serving.entrypoint"],
                cwd=ROOT,
                env=self.env,
                stdout=out,
                stderr=subprocess.STDOUT,
            )
        return self

    def output(self) -> str:
        return self.log.read_text()

    def port(self, name: str) -> int:
        return int(self.env[PREFIX + name])

    def running(self) -> None:
        assert self.process.poll() is None, f"entrypoint exited early:\n{self.output()}"

    def wait_healthy(self) -> subprocess.CompletedProcess[str]:
        def check() -> subprocess.CompletedProcess[str]:
            self.running()
            return healthcheck(self.env)

        passed = poll_until(
            check,
            START_TIMEOUT,
            lambda: f"never healthy:\n{self.output()}",
            until=lambda c: c.returncode == 0,
            interval=1.0,  # each check is a Python process of its own
        )
        # The health check can pass a moment before the entrypoint's own start-up returns;
        # its announcement marks the switch from starting to watching.
        self.wait_for_output(ANNOUNCED)
        return passed

    def wait_for_output(self, texts: tuple[str, ...], timeout: float = 60) -> None:
        def printed() -> bool:
            self.running()
            return any(text in self.output() for text in texts)

        poll_until(printed, timeout, lambda: f"{texts} never printed:\n{self.output()}")

    def finish(self, timeout: float = 120) -> int:
        return self.process.wait(timeout=timeout)

    def clean_up(self) -> None:
        """After a failed test: no entrypoint and no server may outlive it."""
        if self.process is not None and self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout=90)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(timeout=30)
        stop(self.run_dir)


@pytest.fixture
def launch(tiny_model_store: Path, tmp_path: Path) -> Iterator:
    started: list[Entrypoint] = []

    def _launch(start: bool = True, **extra: str) -> Entrypoint:
        name = f"run{len(started)}"
        env = entrypoint_env(tiny_model_store, tmp_path / name, **extra)
        entry = Entrypoint(env, tmp_path / f"{name}.log")
        started.append(entry)
        return entry.start() if start else entry

    yield _launch
    for entry in started:
        entry.clean_up()


def assert_nothing_listens(port: int) -> None:
    with pytest.raises(ConnectionRefusedError):
        socket.create_connection(("127.0.0.1", port), timeout=5).close()


def test_serves_with_keys_and_stops_cleanly_on_sigterm(launch, tiny_model_store, tmp_path):
    entry = launch(start=False)
    before = healthcheck(entry.env)
    assert before.returncode == 1 and before.stdout.startswith("unhealthy"), before.stdout

    check = entry.start().wait_healthy()
    assert "sentiment" in check.stdout and "READY" in check.stdout
    key_file = entry.run_dir / KEY_FILE
    assert str(key_file.resolve()) in entry.output(), "the log must say where the keys are"
    keys = Connection.from_run_dir(entry.run_dir)
    assert keys.inference_key and keys.inference_key not in entry.output(), "no keys in logs"

    url = f"http://127.0.0.1:{entry.port('INFERENCE_PORT')}/predictions/sentiment"
    text = "a gripping , funny movie"
    answer = requests.post(url, json={"text": text}, headers=keys.inference_headers(), timeout=60)
    assert answer.status_code == 200, answer.text
    archive = archived_predictor(tiny_model_store / "sentiment.mar", tmp_path / "unpacked")
    expected = archive.predict([text])[0]
    assert answer.json()["label"] == expected["label"], "the archive's own answer, served"
    for label, probability in expected["probabilities"].items():
        assert answer.json()["probabilities"][label] == pytest.approx(probability, abs=1e-5)
    refused = requests.post(url, json={"text": "no key"}, timeout=60)
    assert refused.status_code == 400
    assert refused.json()["type"] == "InvalidKeyException"

    entry.process.send_signal(signal.SIGTERM)
    assert entry.finish() == 0, entry.output()
    assert not (entry.run_dir / "tmp" / PID_FILE).exists()
    assert server_pid(entry.run_dir) is None
    for name in ("INFERENCE_PORT", "MANAGEMENT_PORT", "METRICS_PORT"):
        assert_nothing_listens(entry.port(name))
    after = healthcheck(entry.env)
    assert after.returncode == 1 and after.stdout.startswith("unhealthy")


def test_the_image_host_keeps_grpc_on_loopback_and_exits_non_zero_when_the_server_dies(launch):
    """HOST=0.0.0.0, the image's: the HTTP APIs answer on every address, gRPC only on
    loopback (serving/config.properties says why). 127.0.0.2 is this machine too, but not
    the address 127.0.0.1 binds, so no outside network is needed to tell them apart."""
    entry = launch(MODELS="sentiment", HOST="0.0.0.0")
    entry.wait_healthy()
    keys = Connection.from_run_dir(entry.run_dir)
    other = "127.0.0.2"
    url = f"http://{other}:{entry.port('INFERENCE_PORT')}/predictions/sentiment"
    answer = requests.post(url, json={"text": "fine"}, headers=keys.inference_headers(), timeout=60)
    assert answer.status_code == 200, answer.text
    for name in ("GRPC_INFERENCE_PORT", "GRPC_MANAGEMENT_PORT"):
        socket.create_connection(("127.0.0.1", entry.port(name)), timeout=5).close()
        with pytest.raises(ConnectionRefusedError):
            socket.create_connection((other, entry.port(name)), timeout=5).close()
    os.kill(server_pid(entry.run_dir), signal.SIGKILL)
    assert entry.finish() == EXIT_SERVER_DIED, entry.output()
    assert "exited on its own" in entry.output()
    assert healthcheck(entry.env).returncode == 1


def test_sigterm_during_start_up_leaves_nothing_running(launch):
    entry = launch()
    entry.wait_for_output(("starting TorchServe",), timeout=START_TIMEOUT)
    entry.process.send_signal(signal.SIGTERM)
    assert entry.finish() == 0, entry.output()
    assert server_pid(entry.run_dir) is None
    assert not (entry.run_dir / "tmp" / PID_FILE).exists()
    assert_nothing_listens(entry.port("INFERENCE_PORT"))


def test_refuses_to_start_without_its_archives_or_with_unclear_auth(launch):
    missing = launch(MODELS="sentiment,no_such_model")
    assert missing.finish() == EXIT_START_FAILED
    assert "no_such_model" in missing.output()

    unclear = launch(AUTH="of")  # a typo must not turn keys off
    assert unclear.finish() == EXIT_START_FAILED
    assert "AUTH" in unclear.output()


def test_sigterm_lets_a_running_stream_finish(launch):
    """The container's stop (SIGTERM) drains: the stream's worker is frozen mid-generation
    (its drain lock shows the stream inside it), so the stop certainly begins while the stream
    runs; the entrypoint must wait, and the stream end whole."""
    entry = launch(MODELS="lm")
    entry.wait_healthy()
    keys = Connection.from_run_dir(entry.run_dir)
    url = f"http://127.0.0.1:{entry.port('INFERENCE_PORT')}/predictions/lm"
    body = {**ENDLESS, "stream": True, "seed": 3}
    with requests.post(
        url, json=body, headers=keys.inference_headers(), stream=True, timeout=120
    ) as stream:
        lines = stream.iter_lines()
        first = next(lines)
        with frozen_while_running(keys, entry.run_dir):
            entry.process.send_signal(signal.SIGTERM)
            poll_until(
                lambda: drain.is_draining(entry.run_dir / DRAIN_DIR),
                30,
                lambda: f"no drain began after SIGTERM:\n{entry.output()}",
            )
            with pytest.raises(subprocess.TimeoutExpired):
                entry.process.wait(timeout=1.0)  # the entrypoint must wait for the stream
        rest = list(lines)
    chunks = [json.loads(line) for line in [first, *rest] if line]
    assert chunks[-1]["finish_reason"] == "length", chunks[-1]
    assert chunks[-1]["generated_tokens"] == 1000
    assert entry.finish() == 0, entry.output()
    assert server_pid(entry.run_dir) is None
