"""Overload, worker faults and stopping under load: every request gets an answer, none hangs.

Each test runs its own server (the shared one must not see killed workers, a stop or a tiny
queue).
"""

from __future__ import annotations

import json
import os
import signal
import threading
import time
from collections import Counter
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest
import requests

from handlers import drain
from loadtest.chaos import worker_pids
from serving.healthcheck import check
from serving.lifecycle import DRAIN_DIR, PID_FILE, alive, server_pid, stop
from serving.polling import poll_until

from .conftest import (
    ENDLESS,
    freeze,
    frozen_while_running,
    holds_drain_lock,
    launch,
    requests_seen,
    wait_arrived,
)

pytestmark = pytest.mark.integration

LONG_GENERATION = {"prompt": "ROMEO:", "max_new_tokens": 400, "temperature": 1.0, "seed": 7}
IN_FLIGHT = 80  # the frozen worker takes some (at most batchSize 64); the rest wait in the queue


@pytest.fixture
def own_server(tiny_model_store: Path, tmp_path: Path, request: pytest.FixtureRequest):
    overrides = getattr(request, "param", {})
    yield from launch(tiny_model_store, tmp_path / "server", **overrides)


def failure(error: requests.RequestException) -> str:
    """'timeout'; 'refused' when nothing listened; 'connection' when the server cut us off."""
    if isinstance(error, requests.Timeout):
        return "timeout"
    return "refused" if "refused" in str(error).lower() else "connection"


WORKER_DIED = "worker died"


def outcome(send) -> str:
    """'200', '503', ... for an HTTP answer, WORKER_DIED for TorchServe's "Worker died." error
    (507 when the frontend has already read the killed process's exit status, else 500: a race
    inside TorchServe's WorkerThread), else what `failure` says."""
    try:
        response = send()
    except requests.RequestException as error:
        return failure(error)
    if response.status_code in (500, 507) and "Worker died." in response.text:
        return WORKER_DIED
    return str(response.status_code)


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


def wait_until_replaced(server, model: str, victims: list[int], timeout: float = 120) -> None:
    """Until every worker of ``model`` is a new process and READY. The status API still says
    READY for a moment after a kill, so readiness alone would not mean "replaced"."""

    def replaced(workers: list[dict]) -> bool:
        return bool(workers) and all(
            w["status"] == "READY" and w.get("pid") not in victims for w in workers
        )

    poll_until(
        lambda: server.connection.model_status(model)[0]["workers"],
        timeout,
        f"{model} workers not replaced and READY",
        until=replaced,
        interval=0.5,
    )


def wait_until_inside_worker(server, model: str, baseline: float, count: int) -> None:
    """Until ``count`` requests sent after ``baseline`` have reached the frontend and some of
    them have left its queue for a worker: what a fixed sleep would only hope for."""
    wait_arrived(server, model, baseline, count)
    poll_until(
        lambda: server.connection.model_status(model)[0]["jobQueueStatus"]["pendingRequests"],
        60,
        f"none of {count} queued {model} requests reached a worker",
        until=lambda pending: pending < count,
    )


def test_killed_worker_fails_only_in_flight_requests_and_is_replaced(own_server):
    """Requests a dying worker holds get an error answer; the rest are served by its successor.

    The workers are frozen (SIGSTOP) before the requests go out, so the first batches are
    certainly inside a worker when it is killed: a running tiny model answers in milliseconds,
    and a kill timed against live traffic can land between batches and prove nothing.
    """
    victims = worker_pids(own_server.connection, "lm")
    assert victims
    baseline = requests_seen(own_server, "lm")
    freeze(victims)

    def send() -> str:
        return outcome(lambda: own_server.post("lm", json=LONG_GENERATION, timeout=90))

    with ThreadPoolExecutor(max_workers=IN_FLIGHT) as pool:
        futures = [pool.submit(send) for _ in range(IN_FLIGHT)]
        wait_until_inside_worker(own_server, "lm", baseline, IN_FLIGHT)
        for pid in victims:
            os.kill(pid, signal.SIGKILL)
        wait_until_replaced(own_server, "lm", victims)
        during = Counter(f.result() for f in futures)
    assert sum(during.values()) == IN_FLIGHT, "every request sent must get an answer"
    assert during["timeout"] == 0 and during["connection"] == 0, during
    assert during[WORKER_DIED] > 0, f"the killed worker's requests are told so: {during}"
    assert during["200"] > 0, f"queued requests are for the new worker: {during}"
    assert set(during) <= {"200", WORKER_DIED}, during
    after = fire(24, lambda: own_server.post("lm", json=LONG_GENERATION, timeout=90), workers=8)
    assert after == Counter({"200": 24}), f"after the restart: {after}"
    assert own_server.post("sentiment", json={"text": "unaffected"}).status_code == 200


def test_stop_finishes_a_running_stream_and_refuses_new_work(own_server):
    """The stream's worker is frozen mid-generation (its drain lock shows the stream inside
    it), so the stop certainly begins while the request runs: the stop must wait for it,
    answer new requests 503 meanwhile, and let the stream end normally."""
    run_dir = own_server.run_dir
    pid = server_pid(run_dir)
    reply = own_server.post("lm", json={**ENDLESS, "seed": 7, "stream": True}, stream=True)
    lines = reply.iter_lines()
    first = json.loads(next(line for line in lines if line))
    stopper = threading.Thread(target=stop, args=(run_dir,))
    with frozen_while_running(own_server.connection, run_dir):
        stopper.start()
        poll_until(
            lambda: drain.is_draining(run_dir / DRAIN_DIR), 30, "no drain began after the stop"
        )
        refused = own_server.post("sentiment", json={"text": "too late"}, timeout=30)
        assert refused.status_code == 503, refused.text
        assert refused.json()["field"] == "server" and "stopping" in refused.json()["error"]
        assert check(run_dir)[0] is False, "the health check must fail while draining"
        stopper.join(timeout=1.0)
        assert stopper.is_alive(), "stop must wait for the running stream"
    rest = [json.loads(line) for line in lines if line]
    stopper.join(timeout=90)
    assert not stopper.is_alive()
    assert reply.status_code == 200
    assert rest[-1]["finish_reason"] == "length" and rest[-1]["generated_tokens"] == 1000
    assert (first["text"] + "".join(chunk["text"] for chunk in rest)).strip()
    assert not alive(pid), "the server process outlived `stop`"
    assert not (run_dir / "tmp" / PID_FILE).exists()


def test_a_stop_does_not_wait_for_a_stream_whose_client_hung_up(own_server, capsys):
    """TorchServe drops a stream whose client went away at its next chunk and then, holding no
    job for the LM, never calls its handler again: the handler still counts the row as
    running and keeps its drain lock. The stop must see that nobody awaits it, not wait out
    its drain timeout ("requests still running") for it."""
    run_dir = own_server.run_dir
    (worker,) = worker_pids(own_server.connection, "lm")
    reply = own_server.post("lm", json={**ENDLESS, "seed": 7, "stream": True}, stream=True)
    next(line for line in reply.iter_lines() if line)
    reply.close()  # the client hangs up after the first chunk
    # No call can end the row now, so the lock stays held (a finished stream would free it).
    time.sleep(2.0)
    assert holds_drain_lock(run_dir, worker), "the stream ended before its client hung up"
    assert stop(run_dir)
    # The drain ended before its timeout: nothing was "still running" to be cut.
    assert "still running" not in capsys.readouterr().err
    assert server_pid(run_dir) is None


def test_stop_under_steady_load_loses_no_request(own_server):
    """Clients send back to back until the server says it is stopping (503) or refuses the
    connection, as a load balancer would take it out of rotation: every request sent before
    that gets its full answer, none is cut off or left hanging."""
    run_dir = own_server.run_dir
    pid = server_pid(run_dir)
    assert pid is not None
    stopping_bodies: list[dict] = []
    serving = threading.Event()  # set by the first answer: the load is on

    def client(model: str, body: dict) -> Counter:
        results = Counter()
        while True:
            try:
                reply = own_server.post(model, json=body, timeout=60)
            except requests.RequestException as error:
                results[failure(error)] += 1
                return results
            results[str(reply.status_code)] += 1
            if reply.status_code == 200:
                serving.set()
            else:
                stopping_bodies.append(reply.json())
                return results

    with ThreadPoolExecutor(max_workers=8) as pool:
        futures = [pool.submit(client, "sentiment", {"text": "steady traffic"}) for _ in range(6)]
        futures += [pool.submit(client, "lm", LONG_GENERATION) for _ in range(2)]
        assert serving.wait(60), "no request was answered before the stop"
        assert stop(run_dir)
        results = sum((f.result() for f in futures), Counter())
    assert set(results) <= {"200", "503", "refused"}, results
    assert results["200"] > 0, results
    assert all(body["field"] == "server" for body in stopping_bodies), stopping_bodies
    assert server_pid(run_dir) is None
    assert not (run_dir / "tmp" / PID_FILE).exists()
    assert not alive(pid), "the server process outlived `stop`"
