"""Faults under load against a real TorchServe (docs/faults.md): bodies as curl sends them, a
failed request never answers 2xx, a stream whose worker dies ends, a load run always ends,
and a short chaos run.

The kill tests share one server of their own (the shared one must not see killed workers or
scaled ones); each leaves it serving with every worker READY.
"""

from __future__ import annotations

import http.client
import json
import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path
from urllib.parse import urlsplit

import pytest
import requests

from loadtest import report
from loadtest.chaos import helper_pids, worker_pids
from serving.client import STREAM_IDLE_S, ClientError, generate_stream
from serving.healthcheck import check
from serving.lifecycle import alive
from serving.polling import poll_until

from .conftest import ROOT, freeze, launch, thaw
from .test_resilience import wait_until_replaced

pytestmark = pytest.mark.integration

LONG = {"prompt": "ROMEO:", "max_new_tokens": 1000, "temperature": 1.0}
CURL_FORM = "application/x-www-form-urlencoded"  # what `curl -d` sends unless told otherwise


@pytest.fixture(scope="module")
def faulty(tiny_model_store: Path, tmp_path_factory: pytest.TempPathFactory):
    yield from launch(tiny_model_store, tmp_path_factory.mktemp("faults"))


def curl_post(server, path: str, body: bytes, content_type: str | None) -> tuple[int, dict]:
    """The request `curl -d BODY [-H 'Content-Type: ...'] URL` sends, header for header."""
    address = urlsplit(server.connection.inference_url)
    conn = http.client.HTTPConnection(address.hostname, address.port, timeout=60)
    conn.putrequest("POST", path, skip_accept_encoding=True)
    conn.putheader("User-Agent", "curl/7.88.1")
    conn.putheader("Accept", "*/*")
    for name, value in server.connection.inference_headers().items():
        conn.putheader(name, value)
    if content_type is not None:
        conn.putheader("Content-Type", content_type)
    conn.putheader("Content-Length", str(len(body)))
    conn.endheaders(body)
    reply = conn.getresponse()
    payload = json.loads(reply.read())
    conn.close()
    return reply.status, payload


def test_bodies_as_curl_sends_them(server):
    # A JSON body typed text/plain, or with no type, is read as JSON.
    status, answer = curl_post(server, "/predictions/sentiment", b'{"text": "fine"}', "text/plain")
    assert status == 200 and answer["label"] in ("positive", "negative")
    status, answer = curl_post(
        server, "/predictions/lm", b'{"prompt": "A", "max_new_tokens": 3}', ""
    )
    assert status == 200 and answer["generated_tokens"] == 3
    # Plain text on the sentiment route, typed as text or not typed.
    for content_type in ("text/plain", None):
        status, answer = curl_post(server, "/predictions/sentiment", b"a fine film", content_type)
        assert status == 200 and "label" in answer, answer
    # Form fields, as `curl -d 'text=a fine film'` sends them.
    status, answer = curl_post(server, "/predictions/sentiment", b"text=a fine film", CURL_FORM)
    assert status == 200 and "label" in answer, answer
    # JSON or text typed as a form: TorchServe's form decoder has dropped it before our handler
    # runs; the 400 names the type received and what to send.
    for path, body in [
        ("/predictions/lm", b'{"prompt": "ROMEO:"}'),
        ("/predictions/sentiment", b"a great movie"),
        ("/predictions/sentiment", b'{"text": "a = b & c"}'),
    ]:
        status, answer = curl_post(server, path, body, CURL_FORM)
        assert status == 400 and answer["field"] == "body", answer
        assert f"Content-Type: {CURL_FORM}" in answer["error"]
        assert "send a JSON object with Content-Type: application/json" in answer["error"]
    status, answer = curl_post(
        server, "/predictions/lm/1.0/v1/completions", b'{"prompt": "A"}', CURL_FORM
    )
    assert status == 400 and "Content-Type: application/json" in answer["error"]["message"]
    status, answer = curl_post(server, "/predictions/sentiment", b"", CURL_FORM)
    assert status == 400 and "is empty" in answer["error"]


class Outcomes:
    """What plain, streamed and OpenAI-streamed clients saw, and when their answer ended."""

    def __init__(self, server) -> None:
        self.server = server
        self.results: dict[str, dict] = {}
        self.started = threading.Event()
        self.first_chunks = 0
        self.lock = threading.Lock()

    def _chunk(self) -> None:
        with self.lock:
            self.first_chunks += 1

    def plain(self, name: str, seed: int) -> None:
        reply = self.server.post("lm", json={**LONG, "seed": seed}, timeout=90)
        self.results[name] = {"status": reply.status_code, "body": reply.json(), "end": time.time()}

    def stream(self, name: str, seed: int) -> None:
        lines, error = [], None
        try:
            for index, line in enumerate(
                generate_stream(self.server.connection, {**LONG, "seed": seed}, timeout=90)
            ):
                lines.append(line)
                if index == 0:
                    self._chunk()
        except ClientError as exc:
            error = exc
        except requests.RequestException as exc:
            error = exc
        self.results[name] = {"lines": lines, "error": error, "end": time.time()}

    def openai(self, name: str, seed: int) -> None:
        url = f"{self.server.connection.inference_url}/predictions/lm/1.0/v1/completions"
        body = {"prompt": "ROMEO:", "max_tokens": 1000, "seed": seed, "stream": True}
        events, error = [], None
        try:
            headers = self.server.connection.inference_headers()
            with requests.post(url, json=body, headers=headers, stream=True, timeout=90) as reply:
                for line in reply.iter_lines():
                    if line.startswith(b"data: "):
                        events.append(line[6:].decode())
                        if len(events) == 1:
                            self._chunk()
        except requests.RequestException as exc:
            error = exc
        self.results[name] = {"events": events, "error": error, "end": time.time()}

    def run_and_kill(self, count: int, victim: int) -> float:
        threads = [
            threading.Thread(target=getattr(self, kind), args=(f"{kind}{i}", i))
            for i in range(count)
            for kind in ("plain", "stream", "openai")
        ]
        for thread in threads:
            thread.start()
        poll_until(
            lambda: self.first_chunks,
            60,
            "not every stream sent a first chunk",
            until=lambda chunks: chunks == 2 * count,
            interval=0.01,
        )
        killed = time.time()
        os.kill(victim, signal.SIGKILL)
        for thread in threads:
            thread.join(timeout=120)
        return killed


def test_a_dead_helper_fails_its_requests_visibly_and_the_rest_finish(faulty):
    """Killed mid-request: its plain requests get a 500 status (never a 200 carrying an
    error), its streams a final error line (ours: finish_reason "error"; OpenAI's: an error
    event, then [DONE]); the worker's own rows finish normally."""
    helpers = helper_pids(faulty.connection)
    assert len(helpers) == 1, "the LM worker runs one helper process (decode_processes: 2)"
    outcomes = Outcomes(faulty)
    outcomes.run_and_kill(6, helpers[0])
    results = outcomes.results
    plain = [r for name, r in results.items() if name.startswith("plain")]
    for r in plain:
        assert (r["status"], "error" in r["body"]) in ((200, False), (500, True)), r
    streams = [r for name, r in results.items() if name.startswith("stream")]
    for r in streams:
        if r["error"] is None:
            assert r["lines"][-1]["finish_reason"] == "length"
        else:
            assert isinstance(r["error"], ClientError) and "error line" in str(r["error"])
    openai = [r for name, r in results.items() if name.startswith("openai")]
    for r in openai:
        assert r["error"] is None and r["events"][-1] == "[DONE]", r
        last = json.loads(r["events"][-2])
        assert "error" in last or last["choices"][0]["finish_reason"] == "length", last
    failed = (
        sum(r["status"] == 500 for r in plain)
        + sum(r["error"] is not None for r in streams)
        + sum("error" in json.loads(r["events"][-2]) for r in openai)
    )
    assert 0 < failed < 18, "the helper's rows failed, the worker's own rows did not"
    assert faulty.post("lm", json={"prompt": "A", "max_new_tokens": 2}).status_code == 200
    poll_until(
        lambda: helper_pids(faulty.connection),
        60,
        "no new helper replaced the dead one",
        until=lambda now: len(now) == 1 and helpers[0] not in now,
        interval=0.5,
    )


def test_streams_of_a_killed_worker_end_promptly(faulty):
    """TorchServe closes a started stream whose worker died (the client sees the connection
    end; no error line can come from a dead worker); the measured time is printed. The dead
    worker's helper decode process exits too."""
    outcomes = Outcomes(faulty)
    victims = worker_pids(faulty.connection, "lm")
    orphans = helper_pids(faulty.connection)
    assert orphans, "the LM worker runs a helper process (decode_processes: 2)"
    killed = outcomes.run_and_kill(4, victims[0])
    wait_until_replaced(faulty, "lm", victims)
    # Its helper reads the end of its pipe and exits: no decode process outlives its worker.
    poll_until(
        lambda: [pid for pid in orphans if alive(pid)],
        30,
        "the killed worker's helper lives on",
        until=lambda living: not living,
    )
    waits = []
    for name, r in outcomes.results.items():
        waits.append(r["end"] - killed)
        if name.startswith("plain"):
            assert r["status"] >= 500, r  # 507 (or 500): "Worker died."
        else:
            assert r["error"] is not None, f"{name} cannot have finished: {r}"
    print(f"clients learnt of the worker's death after at most {max(waits):.1f} s")
    # The promise: far from TorchServe's 120 s; at worst the client's idle-read timeout.
    assert max(waits) < STREAM_IDLE_S + 5


def test_health_check_fails_while_ping_says_healthy_without_workers(faulty):
    """TorchServe's /ping stays Healthy when a model has no worker left; ours must not.
    (The sentiment workers come back afterwards: the other tests here share this server.)"""
    connection = faulty.connection
    assert check(faulty.run_dir)[0] is True
    workers = len(worker_pids(connection, "sentiment"))
    try:
        scale(connection, "sentiment", 0)
        ping = requests.get(
            f"{connection.inference_url}/ping", headers=connection.inference_headers(), timeout=10
        )
        assert ping.status_code == 200 and ping.json()["status"] == "Healthy"
        healthy, reason = check(faulty.run_dir)
        assert healthy is False and "sentiment 0/0 READY" in reason, reason
    finally:
        scale(connection, "sentiment", workers)
    poll_until(lambda: check(faulty.run_dir), 60, "not healthy again", until=lambda c: c[0])


def scale(connection, model: str, workers: int) -> None:
    """Set ``model``'s workers to exactly ``workers`` and wait until that is so."""
    scaled = requests.put(
        f"{connection.management_url}/models/{model}"
        f"?min_worker={workers}&max_worker={workers}&synchronous=true",
        headers=connection.management_headers(),
        timeout=120,
    )
    assert scaled.status_code == 200, scaled.text


def load_run(
    server, out: Path, duration: str, *extra: str
) -> tuple[subprocess.CompletedProcess, float]:
    env = {**os.environ, "LOADTEST_MAX_NEW_TOKENS": "4,16", "LOADTEST_MAX_WAIT": "0.2"}
    command = [sys.executable, "-m", "loadtest.run", "--run-dir", str(server.run_dir)]
    command += ["--users", "6", "--spawn-rate", "6", "--duration", duration, "--scenario", "mixed"]
    command += ["--out", str(out), *extra]
    started = time.monotonic()
    result = subprocess.run(
        command, cwd=ROOT, env=env, capture_output=True, text=True, timeout=300, check=False
    )
    return result, time.monotonic() - started


def test_a_load_run_ends_on_time_when_the_lm_hangs_and_counts_what_it_cut(faulty, tmp_path):
    """The LM worker and its helper are frozen mid-run: its requests would wait for
    TorchServe's 120 s timeout; the run still ends at its duration plus the stop timeout
    (10 s) and Locust's start and files, and its report counts the requests it cut."""
    out = tmp_path / "run"
    pids = worker_pids(faulty.connection, "lm") + helper_pids(faulty.connection)
    timer = threading.Timer(6.0, freeze, args=(pids,))
    timer.start()
    try:
        result, seconds = load_run(faulty, out, "12s")
    finally:
        timer.join()
        thaw(pids)
    assert result.returncode in (0, 1), result.stdout[-2000:] + result.stderr[-2000:]
    info = report.RunInfo.load(out)
    assert info.load_seconds < 12 + 10 + 5, info  # Locust: run time + stop timeout + a little
    assert seconds < 12 + 10 + 45, seconds  # the whole command, server scrapes included
    cut = report.read_cut(out)
    assert cut and sum(cut.values()) > 0, cut  # the frozen LM's requests
    assert "## Cut at the end" in (out / report.REPORT).read_text()


def test_a_short_chaos_run_fails_only_requests_in_flight_and_ends_healthy(faulty, tmp_path):
    out = tmp_path / "chaos"
    command = [sys.executable, "-m", "loadtest.chaos", "--run-dir", str(faulty.run_dir)]
    command += ["--users", "8", "--duration", "24s", "--interval", "6", "--out", str(out)]
    command += ["--recovery-bound", "60"]
    result = subprocess.run(
        command, cwd=ROOT, capture_output=True, text=True, timeout=400, check=False
    )
    chaos = json.loads((out / "chaos.json").read_text())
    print((out / "chaos.md").read_text())
    assert chaos["requests"] > 0
    assert chaos["not_in_flight"] == 0, chaos["failures_by_name"]
    assert set(chaos["failures"]) <= {"5xx status", "final error line", "cut connection"}, chaos
    for kill in chaos["kills"]:
        assert kill["answered_after_s"] is not None and kill["answered_after_s"] < 60, kill
    assert chaos["load_seconds"] <= chaos["load_bound_s"], chaos
    assert all(chaos["healthy"].values()), chaos["healthy"]
    assert result.returncode == 0 and chaos["passed"], result.stdout[-3000:]
