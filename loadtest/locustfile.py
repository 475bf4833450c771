"""Locust users for rnn-serve: sentiment requests, generation, and streamed generation, and a
generic user for each model whose registry entry names no users of its own.

    make loadtest USERS=32 DURATION=60s SCENARIO=mixed        # the usual way (loadtest/run.py)
    .venv/bin/locust -f loadtest/locustfile.py --headless -u 8 -r 4 -t 30s \
        --host http://127.0.0.1:8080 ClassifyUser StreamUser    # by hand, any classes

Keys come from the run folder of the server under test (``LOADTEST_RUN_DIR``, default
runs/server), exactly as the client reads them. Requests are drawn from real data so the
server sees realistic lengths: SST-2 dev sentences and Tiny Shakespeare validation passages
(never the training text), with a small built-in list if the data folder is missing.

Environment (all optional):
    LOADTEST_RUN_DIR          server run folder holding key_file.json / server.json
    LOADTEST_WEIGHTS          relative user counts, default
                              "classify=3,generate=1,stream=1,converse=1" and 1 for each
                              generic user, by its model's name (a kind counts only when its
                              class is run: loadtest/run.py's scenarios)
    LOADTEST_MAX_WAIT         think time of a user between requests, uniform 0..this (s), 1.0
    LOADTEST_MAX_NEW_TOKENS   lengths generation requests pick from, default "16,64,128"
    LOADTEST_FAILURE_LOG      a file to append one JSON line per failed request to (chaos runs)
    LOADTEST_TIMEOUT          seconds a request may take, default 130 (streams: per read, 30)
"""

from __future__ import annotations

import csv
import functools
import json
import os
import random
import time
from collections import Counter
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import replace
from typing import Any

from gevent import GreenletExit
from locust import FastHttpUser, User, between, events, task
from locust.env import Environment
from locust.stats import PERCENTILES_TO_REPORT, StatsCSV

from handlers import registry
from loadtest.payloads import conversation_turns, generation_payload, prompts, sentences
from loadtest.report import CUT, FINAL_FAILURES, FINAL_STATS, FIRST_CHUNK
from serving.client import STREAM_IDLE_S, ClientError, generate_stream
from serving.connection import Connection
from serving.server_config import DEFAULT_RUN_DIR

GENERIC = [model for model in registry.MODELS if not model.load_users]
WEIGHTS = {"classify": 3, "generate": 1, "stream": 1, "converse": 1}
WEIGHTS.update({model.name: 1 for model in GENERIC})
# Longer than TorchServe's 120 s response timeout: the server decides (a chaos run shortens it).
TIMEOUT_S = float(os.environ.get("LOADTEST_TIMEOUT", "130"))
# Requests still running when the run's stop timeout ran out, by entry name: Locust kills
# their users, so they appear in no statistics; the report counts them from this.
cut: Counter[str] = Counter()


@contextmanager
def counted_if_cut(name: str) -> Iterator[None]:
    started = time.time()
    try:
        yield
    except GreenletExit:  # Locust stopping a user whose request still runs at the end
        cut[name] += 1
        append_to_failure_log(name, started, "cut at the end of the run")
        raise


def env_weights() -> dict[str, int]:
    """``LOADTEST_WEIGHTS="classify=3,generate=1,stream=1"``; unnamed kinds keep defaults."""
    weights = dict(WEIGHTS)
    for item in filter(None, os.environ.get("LOADTEST_WEIGHTS", "").split(",")):
        kind, _, value = item.partition("=")
        if kind.strip() not in weights:
            raise ValueError(f"LOADTEST_WEIGHTS: unknown kind {kind!r}, expected {list(WEIGHTS)}")
        weights[kind.strip()] = int(value)
    return weights


@functools.cache
def connection() -> Connection:
    return Connection.from_run_dir(os.environ.get("LOADTEST_RUN_DIR", str(DEFAULT_RUN_DIR)))


class ServiceUser(FastHttpUser):
    """Shared set-up: bearer key of the server under test, think time, long timeouts."""

    abstract = True
    wait_time = between(0.0, float(os.environ.get("LOADTEST_MAX_WAIT", "1.0")))
    network_timeout = TIMEOUT_S
    connection_timeout = 10.0

    def on_start(self) -> None:
        self.headers = connection().inference_headers()
        self.rng = random.Random()

    def post_json(self, model: str, payload: dict[str, Any], expect: str) -> None:
        """POST and count a 200 whose JSON lacks ``expect`` (or, with ``expect`` empty, that
        is no JSON) as a failure too."""
        with (
            counted_if_cut(f"POST /predictions/{model}"),
            self.client.post(
                f"/predictions/{model}",
                json=payload,
                headers=self.headers,
                name=f"/predictions/{model}",
                catch_response=True,
            ) as reply,
        ):
            if reply.status_code == 200:
                try:
                    # From the bytes: TorchServe names no charset, and a guessed one (Shift-JIS
                    # was seen, which reads a backslash as a yen sign) breaks valid JSON.
                    body = json.loads(reply.content)
                except ValueError:
                    body = None
                if body is None or (expect and (not isinstance(body, dict) or expect not in body)):
                    reply.failure(f"200 without {expect or 'JSON'!r}: {reply.text[:200]!r}")


class ClassifyUser(ServiceUser):
    """One SST-2 dev sentence per request."""

    weight = env_weights()["classify"]

    @task
    def classify(self) -> None:
        self.post_json("sentiment", {"text": self.rng.choice(sentences())}, expect="label")


class ExampleUser(ServiceUser):
    """A model's generic user: its registry entry's example requests, one at random each time.
    `make_example_users` makes one subclass per model that names no users of its own."""

    abstract = True
    model: registry.ServedModel

    @task
    def predict(self) -> None:
        payload = self.rng.choice(self.model.examples)
        self.post_json(self.model.name, payload, expect=self.model.answer_key)


def make_example_users() -> dict[str, type[ExampleUser]]:
    """`<Name>User` for each generic model, weighted by ``LOADTEST_WEIGHTS``' ``<name>=N``."""
    weights = env_weights()
    return {
        registry.generic_user(model.name): type(
            registry.generic_user(model.name),
            (ExampleUser,),
            {"model": model, "weight": weights[model.name], "__module__": __name__},
        )
        for model in GENERIC
    }


globals().update(make_example_users())  # Locust finds user classes among the module's names


class GenerateUser(ServiceUser):
    """Whole answers: mixed temperatures, top-k/top-p, lengths, seeds and stop strings."""

    weight = env_weights()["generate"]

    @task
    def generate(self) -> None:
        self.post_json("lm", {**generation_payload(self.rng), "stream": False}, "finish_reason")


class ConversationUser(ServiceUser):
    """Multi-turn: opens a session, continues it with short new lines (the server reads only
    those), and ends it on the last turn."""

    weight = env_weights()["converse"]

    @task
    def converse(self) -> None:
        turns = conversation_turns(self.rng)
        session = "new"
        for number, payload in enumerate(turns):
            last = number == len(turns) - 1
            body = {**payload, "session": session, "end_session": last and session != "new"}
            name = (
                "/predictions/lm [session opens]"
                if session == "new"
                else ("/predictions/lm [session continues]")
            )
            with (
                counted_if_cut(f"POST {name}"),
                self.client.post(
                    "/predictions/lm",
                    json=body,
                    headers=self.headers,
                    name=name,
                    catch_response=True,
                ) as reply,
            ):
                answer = json.loads(reply.content) if reply.status_code == 200 else {}
                if reply.status_code == 200 and "session" not in answer:
                    reply.failure(f"200 without 'session': {reply.text[:200]!r}")
                    return
            if reply.status_code != 200:
                return
            session = answer["session"]


class StreamUser(User):
    """Streamed generation, timed twice: to the first chunk, and to the end of the stream."""

    weight = env_weights()["stream"]
    wait_time = ServiceUser.wait_time

    def on_start(self) -> None:
        # The project's own client does the NDJSON splitting; only its address is ours.
        self.connection = replace(connection(), inference_url=self.host.rstrip("/"))
        self.rng = random.Random()

    def fire(self, name: str, started: float, start_time: float, error: Exception | None):
        self.environment.events.request.fire(
            request_type="STREAM",
            name=name,
            response_time=(time.perf_counter() - started) * 1000.0,
            response_length=0,
            exception=error,
            context={},
            start_time=start_time,
        )

    @task
    def stream(self) -> None:
        start_time, started = time.time(), time.perf_counter()
        first_seen, last, error = False, None, None
        payload = generation_payload(self.rng)
        try:
            # The read timeout is STREAM_IDLE_S: TorchServe can leave a stream open with nothing
            # more to say when its worker dies (docs/faults.md), and a run must still end.
            with counted_if_cut("STREAM lm whole stream"):
                for chunk in generate_stream(self.connection, payload, STREAM_IDLE_S):
                    if not first_seen:
                        first_seen = True
                        self.fire(FIRST_CHUNK, started, start_time, None)
                    last = chunk
            if not isinstance(last, dict) or "finish_reason" not in last:
                error = RuntimeError(f"stream ended without finish_reason: {last!r}")
        except ClientError as exc:  # not HTTP 200, or a last line that reports an error
            error = RuntimeError(str(exc))
        except Exception as exc:
            error = exc
        if not first_seen:
            self.fire(FIRST_CHUNK, started, start_time, error or RuntimeError("no chunk"))
        self.fire("lm whole stream", started, start_time, error)


@events.init.add_listener
def load_request_data(**_: Any) -> None:
    """Read the sentences and prompts before any user starts: loading them takes seconds of CPU
    and would otherwise stall gevent's loop, and with it the timers of requests in flight,
    right when the first users run."""
    sentences()
    prompts()


@events.request.add_listener
def log_failure(name: str, request_type: str, exception: Any = None, **kwargs: Any) -> None:
    """With ``LOADTEST_FAILURE_LOG`` set, one JSON line per failed request: when it started
    and ended, so a chaos run can tell requests in flight at a kill from later ones."""
    if exception is not None:
        started = kwargs.get("start_time") or time.time()
        append_to_failure_log(f"{request_type} {name}", started, str(exception)[:300])


def append_to_failure_log(name: str, started: float, error: str) -> None:
    path = os.environ.get("LOADTEST_FAILURE_LOG")
    if path:
        line = {"name": name, "start": started, "end": time.time(), "error": error}
        with open(path, "a") as handle:
            handle.write(json.dumps(line) + "\n")


@events.quitting.add_listener
def write_final_csv(environment: Environment, **_: Any) -> None:
    """Complete statistics next to Locust's own CSVs (same columns), for the report.

    Locust rewrites its --csv files once a second but not at the end, so they can miss the last
    second's requests and failures; this runs once every user has stopped.
    """
    prefix = getattr(environment.parsed_options, "csv_prefix", None)
    if not prefix:
        return
    with open(prefix + CUT, "w") as handle:
        json.dump(dict(cut), handle)
    writer = StatsCSV(environment, PERCENTILES_TO_REPORT)
    with open(prefix + FINAL_STATS, "w", newline="") as handle:
        writer.requests_csv(csv.writer(handle))
    with open(prefix + FINAL_FAILURES, "w", newline="") as handle:
        writer.failures_csv(csv.writer(handle))
