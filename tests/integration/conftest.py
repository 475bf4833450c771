"""Fixtures that start a real TorchServe on free loopback ports with tiny archives.

The tiny models are trained by the same commands as the real ones (`--profile tiny`), packed
by the same archive builder and served with the same configuration files, so the tests
exercise the whole path a user's request takes; only the model sizes differ.
"""

from __future__ import annotations

import fcntl
import os
import signal
import socket
import subprocess
import sys
import tempfile
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass, fields
from pathlib import Path

import pytest
import requests

from handlers import drain
from loadtest.chaos import worker_pids
from loadtest.metrics import ACTIVE_ROWS, REQUESTS, canonical, parse_counters, scrape
from models.classifier_predictor import ClassifierPredictor
from models.generation import Generator
from serving.connection import Connection
from serving.lifecycle import DRAIN_DIR, STARTUP_LOG, start, stop
from serving.polling import poll_until
from serving.server_config import PORT_ROLES, ServerConfig, free_ports
from training.archive import build_archive, packed_quantize, unpack_archive

ROOT = Path(__file__).resolve().parents[2]
TRAINERS = {"sentiment": "training.train_sentiment", "lm": "training.train_lm"}


def train_tiny(base: Path) -> dict[str, Path]:
    """Both tiny models, trained side by side on one torch thread each (two threads each
    would oversubscribe two cores: torch's threads then spin-wait on each other)."""
    tiny = ["--profile", "tiny", "--threads", "1"]
    runs = {
        model: subprocess.Popen(
            [sys.executable, "-m", trainer, *tiny, "--out", str(base / model)],
            cwd=ROOT,
            stdout=subprocess.DEVNULL,
        )
        for model, trainer in TRAINERS.items()
    }
    try:
        for model, run in runs.items():
            assert run.wait(timeout=600) == 0, f"the tiny {model} trainer failed"
    finally:
        for run in runs.values():
            if run.poll() is None:
                run.kill()
    return {model: base / model for model in runs}


def build_tiny_store(base: Path) -> Path:
    store = base / "model_store"
    for model, artifact in train_tiny(base).items():
        build_archive(model, artifact, store)
    return store


@pytest.fixture(scope="session")
def tiny_model_store(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A model store with sentiment.mar and lm.mar built from tiny models: once per run, also
    under xdist (the first worker to need it builds it under a lock; the other waits)."""
    if "PYTEST_XDIST_WORKER" not in os.environ:
        return build_tiny_store(tmp_path_factory.mktemp("tiny-models"))
    run = tmp_path_factory.getbasetemp().parent  # this run's folder, shared by its workers
    shared = run / "tiny-models"
    with open(run / "tiny-models.lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)  # released when the file closes, or its worker dies
        if not shared.is_dir():
            scratch = Path(tempfile.mkdtemp(prefix="tiny-models-", dir=run))
            build_tiny_store(scratch)
            scratch.rename(shared)  # complete or absent: a failed build leaves no half store
    return shared / "model_store"


def archived_generator(archive: Path, into: Path) -> Generator:
    """The LM of ``archive`` run in-process with the settings packed beside it (int8 or not):
    the reference a served answer must equal."""
    return Generator.from_artifact(unpack_archive(archive, into), quantize=packed_quantize(archive))


def archived_predictor(archive: Path, into: Path) -> ClassifierPredictor:
    """The classifier of ``archive`` run in-process with the settings packed beside it: the
    one-by-one reference a served answer must equal."""
    folder = unpack_archive(archive, into)
    return ClassifierPredictor.from_artifact(folder, quantize=packed_quantize(archive))


@dataclass
class RunningServer:
    connection: Connection
    run_dir: Path
    config: ServerConfig

    def post(self, model: str, key: str | None = "inference", **kwargs) -> requests.Response:
        """POST to /predictions/<model> with the inference key (or another / none)."""
        headers = kwargs.pop("headers", {})
        if key == "inference":
            headers.update(self.connection.inference_headers())
        elif key is not None:
            headers["Authorization"] = f"Bearer {key}"
        kwargs.setdefault("timeout", 60)
        url = f"{self.connection.inference_url}/predictions/{model}"
        return requests.post(url, headers=headers, **kwargs)


def launch(store: Path, run_dir: Path, **overrides) -> Iterator[RunningServer]:
    overrides.setdefault("models", tuple(sorted(p.stem for p in store.glob("*.mar"))))
    config = ServerConfig.on_free_ports(model_store=store, run_dir=run_dir, **overrides)
    connection = start(config, timeout=240)
    try:
        yield RunningServer(connection, run_dir, config)
    finally:
        stop(run_dir)


@pytest.fixture(scope="session")
def server(tiny_model_store: Path, tmp_path_factory: pytest.TempPathFactory):
    """One shared server (auth on, the project's serving config) for the whole session."""
    yield from launch(tiny_model_store, tmp_path_factory.mktemp("server"))


def freeze(pids: list[int]) -> None:
    """SIGSTOP: a frozen worker holds its requests, so a stop or a kill certainly meets them."""
    for pid in pids:
        os.kill(pid, signal.SIGSTOP)


def thaw(pids: list[int]) -> None:
    for pid in pids:
        os.kill(pid, signal.SIGCONT)


def holds_drain_lock(run_dir: Path, pid: int) -> bool:
    """Whether worker ``pid`` holds its drain lock. A worker takes it at each call and keeps
    it while its decode loop has rows (handlers/drain.py), so a frozen worker that holds it
    had a request running in it when it stopped, which cannot end before it is thawed."""
    return drain.is_held(drain.lock_file(Path(run_dir) / DRAIN_DIR, pid))


@contextmanager
def frozen_while_running(connection: Connection, run_dir: Path) -> Iterator[list[int]]:
    """The LM's workers frozen (SIGSTOP) with a request running in them, as their drain locks
    show: a stream opened before cannot finish until the block ends and they are thawed."""
    pids = worker_pids(connection, "lm")
    assert pids, "the LM has no worker"
    freeze(pids)
    try:
        idle = [pid for pid in pids if not holds_drain_lock(run_dir, pid)]
        assert not idle, f"no request was running in LM worker {idle} when it was frozen"
        yield pids
    finally:
        thaw(pids)


def requests_seen(server: RunningServer, model: str) -> float:
    """TorchServe's count of the requests for ``model`` that reached its frontend."""
    counters = parse_counters(scrape(server.connection.metrics_url))
    return counters.get((canonical(REQUESTS), model), 0.0)


def wait_arrived(server: RunningServer, model: str, baseline: float, count: int) -> None:
    """Until ``count`` requests sent after the count read ``baseline`` reached the frontend
    (they are queued or in a worker's next call: the frontend answers while workers are
    frozen)."""
    poll_until(
        lambda: requests_seen(server, model) - baseline,
        60,
        f"{count} {model} requests did not reach the frontend",
        until=lambda arrived: arrived >= count,
    )


# Every port a server takes, as `serving.server` / `loadtest.run` flags, and their defaults.
PORT_FLAGS = {role: "--" + role.replace("_", "-") for role in PORT_ROLES}
PORT_FLAGS["initial_worker_port"] = "--worker-port"
DEFAULT_PORTS = {f.name: f.default for f in fields(ServerConfig) if f.name in PORT_FLAGS}


def free_server_ports() -> dict[str, int]:
    """A free port for each of a server's roles (ServerConfig's field names)."""
    return dict(zip(PORT_FLAGS, free_ports(len(PORT_FLAGS)), strict=True))


def port_flags(ports: dict[str, int]) -> list[str]:
    """``ports`` as `serving.server` / `loadtest.run` flags."""
    return [str(part) for role, port in ports.items() for part in (PORT_FLAGS[role], port)]


@contextmanager
def default_ports_taken() -> Iterator[None]:
    """Hold every default port (8080-8082, 7070, 7071, 9000) as a developer's `make serve`
    from this checkout does; one that something else already holds is taken just the same."""
    with ExitStack() as stack:
        for port in DEFAULT_PORTS.values():
            holder = stack.enter_context(socket.socket())
            try:
                holder.bind(("127.0.0.1", port))
                holder.listen()
            except OSError:
                pass  # already taken by another process: as good for this test
        for port in DEFAULT_PORTS.values():
            with socket.socket() as probe, pytest.raises(OSError):
                probe.bind(("127.0.0.1", port))
        yield


# A stop string no text of the tiny models can contain (none of their pieces holds a snowman),
# and the longest generation the API allows: a stream that runs until its length is reached.
NEVER = "\u2603"
ENDLESS = {"prompt": "KING:", "max_new_tokens": 1000, "temperature": 1.0, "stop": [NEVER]}


@dataclass
class Call:
    """One handler call of the LM worker, as its own metric line in the server's log says:
    the jobs it answered (TorchServe's request ids) and the rows running after it."""

    ids: list[str]
    rows: int


class CallLog:
    """The LM handler's calls from here on, read back from the worker's log (each call prints
    an ActiveRows gauge tagged with the request ids of its jobs): which requests the server
    really decoded together, whatever the clients saw and when."""

    def __init__(self, run_dir: Path) -> None:
        # TorchServe's console (ts_log.log holds each line twice: two appenders write it).
        self.path = Path(run_dir) / "logs" / STARTUP_LOG
        self.start = self.path.stat().st_size

    def calls(self) -> list[Call]:
        with open(self.path, "rb") as log:
            log.seek(self.start)
            text = log.read().decode(errors="replace")
        calls = []
        for line in text.splitlines():
            metric = line.partition("[METRICS]ActiveRows.Count:")[2]
            if not metric or "ModelName:lm" not in metric:
                continue
            rows, _, tags = metric.partition("|")
            listed = tags.rpartition("#hostname:")[2].split(",")[2:]  # host, time, then ids
            ids = [part.strip() for part in listed if part.strip() and "=" not in part]
            calls.append(Call(ids, int(float(rows))))
        return calls

    def settled(self, requests: int, timeout: float = 30.0) -> list[Call]:
        """The calls, once the log shows ``requests`` jobs and no row running after the last
        call (the frontend writes a worker's lines a little after its answers went out);
        fails after ``timeout``."""

        def complete(calls: list[Call]) -> bool:
            seen = {rid for call in calls for rid in call.ids}
            return len(seen) >= requests and bool(calls) and calls[-1].rows == 0

        message = f"{requests} requests and an idle loop not logged"
        return poll_until(self.calls, timeout, message, until=complete)


def ran_across(calls: list[Call], running: str, other: str) -> bool:
    """Whether the job ``running`` was in the call that handled ``other`` and in a later one:
    it was running, not finishing, when ``other`` was decoded or answered."""
    first = next((n for n, call in enumerate(calls) if other in call.ids), None)
    if first is None or running not in calls[first].ids:
        return False
    return any(running in call.ids for call in calls[first + 1 :])


def lm_gauges(server: RunningServer) -> dict[str, float]:
    """The LM handler's gauges (ActiveRows, ActiveSessions) as the metrics endpoint has them."""
    values = parse_counters(scrape(server.connection.metrics_url), kind="gauge")
    return {name: value for (name, model), value in values.items() if model == "lm"}


def settled_gauges(server, expected: dict[str, float], timeout: float = 15.0) -> dict[str, float]:
    """The gauges once they read ``expected``: the worker reports its metrics through its log
    after answering, so a scrape right after an answer may still show the call before.
    Fails if they do not within ``timeout``."""
    return poll_until(
        lambda: lm_gauges(server),
        timeout,
        f"the LM's gauges never read {expected}",
        until=lambda now: all(now.get(k) == v for k, v in expected.items()),
    )


def idle_lm(server: RunningServer) -> None:
    """Wait until no row runs in the LM's loop: one request lets the worker drop rows whose
    clients went away (it notices at its next call), then the gauge must read 0."""
    reply = server.post("lm", json={"prompt": "idle", "max_new_tokens": 1})
    assert reply.status_code == 200, reply.text
    settled_gauges(server, {ACTIVE_ROWS: 0})
