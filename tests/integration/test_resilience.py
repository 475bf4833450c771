"""Overload, worker faults and stopping under load: every request gets an answer, none hangs.

Each test runs its own server (the shared one must not see killed workers or a stop).
"""

from __future__ import annotations

import os
import signal
import threading
import time
from collections import Counter
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest
import requests

from serving.server import PID_FILE, alive, server_pid, stop

from .conftest import launch

pytestmark = pytest.mark.integration

LONG_GENERATION = {"prompt": "ROMEO:", "max_new_tokens": 400, "temperature": 1.0, "seed": 7}


@pytest.fixture
def own_server(tiny_model_store: Path, tmp_path: Path, request: pytest.FixtureRequest):
    overrides = getattr(request, "param", {})
    yield from launch(tiny_model_store, tmp_path / "server", **overrides)


def outcome(send) -> str:
    """'200', '503', ... for an HTTP answer; 'connection' when the server closed on us."""
    try:
        return str(send().status_code)
    except requests.ConnectionError:
        return "connection"
    except requests.Timeout:
        return "timeout"


def fire(count: int, send, workers: int = 64) -> Counter:
    with ThreadPoolExecutor(max_workers=workers) as pool:
        return Counter(pool.map(lambda _: outcome(send), range(count)))


@pytest.mark.parametrize("own_server", [{"job_queue_size": 2}], indirect=True)
def test_overload_gets_prompt_503_and_the_server_recovers(own_server):
    results = fire(96, lambda: own_server.post("lm", json=LONG_GENERATION, timeout=90))
    assert sum(results.values()) == 96, "every request sent must get an answer"
    assert results["timeout"] == 0 and results["connection"] == 0, results
    assert results["503"] > 0, f"a queue of 2 should have overflowed: {results}"
    assert results["200"] > 0, results
    assert set(results) <= {"200", "503"}, results
    assert own_server.post("lm", json={"prompt": "ROMEO:", "max_new_tokens": 5}).status_code == 200


def worker_pids(server, model: str) -> list[int]:
    return [w["pid"] for w in server.connection.model_status(model)[0]["workers"] if w.get("pid")]


def wait_until_replaced(server, model: str, victims: list[int], timeout: float = 120) -> None:
    """Until every worker of ``model`` is a new process and READY. The status API still says
    READY for a moment after a kill, so readiness alone would not mean "replaced"."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        workers = server.connection.model_status(model)[0]["workers"]
        if workers and all(w["status"] == "READY" and w.get("pid") not in victims for w in workers):
            return
        time.sleep(0.5)
    raise AssertionError(f"{model} workers not replaced and READY after {timeout}s")


def test_killed_worker_fails_only_in_flight_requests_and_is_replaced(own_server):
    victims = worker_pids(own_server, "lm")
    assert victims
    restarted = threading.Event()

    def keep_sending() -> tuple[Counter, Counter]:
        """Requests back to back until the worker is back: the tiny model answers in
        milliseconds, so only steady traffic guarantees a batch is in flight at the kill."""
        before, after = Counter(), Counter()
        while not restarted.is_set():
            result = outcome(lambda: own_server.post("lm", json=LONG_GENERATION, timeout=90))
            (after if restarted.is_set() else before)[result] += 1
        for _ in range(3):
            after[outcome(lambda: own_server.post("lm", json=LONG_GENERATION, timeout=90))] += 1
        return before, after

    with ThreadPoolExecutor(max_workers=8) as pool:
        futures = [pool.submit(keep_sending) for _ in range(8)]
        time.sleep(2.0)  # traffic flowing
        for pid in victims:
            os.kill(pid, signal.SIGKILL)
        wait_until_replaced(own_server, "lm", victims)
        restarted.set()
        during = sum((f.result()[0] for f in futures), Counter())
        after = sum((f.result()[1] for f in futures), Counter())
    assert during["timeout"] == 0 and during["connection"] == 0, during
    assert any(code.startswith("5") for code in during), f"in-flight requests: {during}"
    assert during["200"] > 0, during
    assert set(after) == {"200"} and after["200"] >= 24, f"after the restart: {after}"
    assert own_server.post("sentiment", json={"text": "unaffected"}).status_code == 200


def test_stop_under_load_answers_in_flight_requests_and_leaves_nothing(own_server):
    run_dir = own_server.run_dir
    pid = server_pid(run_dir)
    assert pid is not None

    def send():
        return own_server.post("sentiment", json={"text": "steady traffic"}, timeout=60)

    with ThreadPoolExecutor(max_workers=8) as pool:
        futures = [pool.submit(outcome, send) for _ in range(200)]
        time.sleep(0.5)
        assert stop(run_dir)
        results = Counter(f.result() for f in futures)
    assert sum(results.values()) == 200
    assert results["timeout"] == 0, results
    assert results["200"] > 0, results
    assert server_pid(run_dir) is None
    assert not (run_dir / "tmp" / PID_FILE).exists()
    assert not alive(pid), "the server process outlived `stop`"
