"""Continuous batching and sessions through a real TorchServe: rows join a running loop,
leave when their clients go away, and sessions continue from the state the server kept."""

from __future__ import annotations

import json
import random
from concurrent.futures import ThreadPoolExecutor

import psutil
import pytest
import requests
import yaml

from handlers.lm.handler import METRIC_AHEAD_MS as AHEAD_MS
from loadtest.metrics import (
    ACTIVE_ROWS,
    ACTIVE_SESSIONS,
    SESSION_EVICTIONS,
    parse_counters,
    scrape,
)
from serving.polling import poll_until
from tests.text_pieces import printable_piece
from training.archive import model_config_path

from .conftest import (
    ENDLESS,
    Call,
    CallLog,
    frozen_while_running,
    idle_lm,
    ran_across,
    requests_seen,
    settled_gauges,
    wait_arrived,
)

pytestmark = pytest.mark.integration

SEEDED = {"prompt": "ROMEO:", "max_new_tokens": 40, "temperature": 1.0, "top_p": 0.9, "seed": 99}


def generate(server, **payload) -> dict:
    reply = server.post("lm", json=payload)
    assert reply.status_code == 200, reply.text
    return reply.json()


def open_stream(server, **payload):
    """A streaming request that has produced its first chunk (so it is inside the loop)."""
    reply = server.post("lm", json={**payload, "stream": True}, stream=True)
    assert reply.status_code == 200, reply.text
    lines = reply.iter_lines()
    first = json.loads(next(line for line in lines if line))
    return reply, lines, first


def worker_rss_mb(server) -> float:
    """Resident memory of the LM's worker process."""
    pid = server.connection.model_status("lm")[0]["workers"][0]["pid"]
    return psutil.Process(int(pid)).memory_info().rss / 2**20


def quiet_log(server) -> CallLog:
    """The LM's call log from a moment when no row runs (earlier tests' rows have left)."""
    idle_lm(server)
    return CallLog(server.run_dir)


def long_stream_id(calls: list[Call]) -> str:
    """The request id of the stream a test opened first on a quiet server: alone in its call."""
    assert calls and len(calls[0].ids) == 1, calls[:1]
    return calls[0].ids[0]


def sent_beside_the_stream(server, count: int, payload: dict) -> list[requests.Response]:
    """The replies to ``count`` LM requests sent while the worker is frozen with the stream
    opened before running in it: they reach the frontend before that stream can go on, so it
    is still running when they join (the call log shows it afterwards)."""
    baseline = requests_seen(server, "lm")
    with ThreadPoolExecutor(max_workers=count) as pool:
        with frozen_while_running(server.connection, server.run_dir):
            sent = [pool.submit(server.post, "lm", json=payload) for _ in range(count)]
            wait_arrived(server, "lm", baseline, count)
        return [future.result() for future in sent]


def test_a_request_joining_a_running_loop_gets_the_answer_it_gets_alone(server):
    alone = generate(server, **SEEDED)
    log = quiet_log(server)
    reply, lines, _ = open_stream(server, **ENDLESS)
    try:
        joined = sent_beside_the_stream(server, 6, SEEDED)
        rest = [json.loads(line) for line in lines if line]
    finally:
        reply.close()
    assert [answer.status_code for answer in joined] == [200] * 6, joined[0].text
    assert all(answer.json() == alone for answer in joined)
    assert rest[-1]["generated_tokens"] == ENDLESS["max_new_tokens"]
    calls = log.settled(requests=7)
    stream = long_stream_id(calls)
    others = {rid for call in calls for rid in call.ids} - {stream}
    assert len(others) == 6, calls
    late = [rid for rid in others if not ran_across(calls, stream, rid)]
    assert not late, f"the long stream was not running while {late} were decoded"


def test_a_session_continues_exactly_like_one_request_with_the_whole_text(server):
    """Greedy, character-level (the tiny model): the whole text is cut where the turns are."""
    turn = {"max_new_tokens": 20, "temperature": 0}
    first = generate(server, prompt="ROMEO:", session="new", **turn)
    session = first["session"]
    second = generate(server, prompt="\nJULIET:", session=session, **turn)
    whole = generate(server, prompt="ROMEO:" + first["text"] + "\nJULIET:", **turn)
    assert second == {**whole, "session": session}
    seeded = {"prompt": " and", "max_new_tokens": 15, "temperature": 1.0, "seed": 8}
    history = "ROMEO:" + first["text"] + "\nJULIET:" + second["text"] + " and"
    third = generate(server, session=session, end_session=True, **seeded)
    assert third["text"] == generate(server, **{**seeded, "prompt": history})["text"]
    gone = server.post("lm", json={"prompt": "x", "session": session})
    assert gone.status_code == 404 and gone.json()["field"] == "session", gone.text


def test_a_session_has_read_the_stop_string_its_answer_ends_before(server):
    """docs/api.md: the answer's text ends before a stop string, but the session's history
    holds it; a greedy follow-up equals one request with the whole text, stop included."""
    turn = {"max_new_tokens": 40, "temperature": 0}
    free = generate(server, prompt="ROMEO:", **turn)["text"]
    stop = printable_piece(free, len(free) // 2, 2)
    first = generate(server, prompt="ROMEO:", stop=[stop], session="new", **turn)
    assert first["finish_reason"] == "stop" and first["text"] == free[: free.index(stop)]
    session = first["session"]
    second = generate(server, prompt="\nJULIET:", session=session, end_session=True, **turn)
    whole = generate(server, prompt="ROMEO:" + first["text"] + stop + "\nJULIET:", **turn)
    assert second == {**whole, "session": session}


def test_session_errors_name_the_field_and_the_case(server):
    unknown = server.post("lm", json={"prompt": "x", "session": "no-such-session"})
    assert unknown.status_code == 404 and unknown.json()["field"] == "session"
    assert "no such session" in unknown.json()["error"]
    ending_nothing = server.post("lm", json={"prompt": "x", "end_session": True})
    assert ending_nothing.status_code == 400 and ending_nothing.json()["field"] == "end_session"
    log = quiet_log(server)
    reply, lines, first = open_stream(server, **ENDLESS, session="new")
    try:
        assert first["session"], "the first streamed chunk carries the session id"
        (busy,) = sent_beside_the_stream(server, 1, {"prompt": "x", "session": first["session"]})
        assert busy.status_code == 409 and busy.json()["field"] == "session", busy.text
        assert [json.loads(line) for line in lines if line][-1]["finish_reason"] == "length"
    finally:
        reply.close()
    calls = log.settled(requests=2)
    stream = long_stream_id(calls)
    (refused,) = {rid for call in calls for rid in call.ids} - {stream}
    assert ran_across(calls, stream, refused), "the session's stream had ended before the 409"


def test_streams_that_disconnect_leave_no_rows_or_sessions_behind(server):
    """1,000 requests, a third of them streams whose clients hang up after the first chunk
    (half of those in a new session): afterwards nothing is left in the loop or the store."""
    generate(server, prompt="first", max_new_tokens=40)  # earlier tests' hung-up rows go
    baseline = settled_gauges(server, {ACTIVE_ROWS: 0}).get(ACTIVE_SESSIONS, 0)
    memory_before = worker_rss_mb(server)
    rng = random.Random(0)

    def one(index: int) -> str:
        payload = {"prompt": "To be", "max_new_tokens": rng.choice([5, 30, 200]), "seed": index}
        if index % 3:
            return str(server.post("lm", json=payload).status_code)
        extra = {"session": "new"} if index % 2 else {}
        reply, _, _ = open_stream(server, **{**payload, "max_new_tokens": 1000}, **extra)
        reply.close()
        return "hung up"

    with ThreadPoolExecutor(max_workers=24) as pool:
        outcomes = list(pool.map(one, range(1000)))
    assert outcomes.count("200") == 666 and outcomes.count("hung up") == 334
    # The frontend notices a closed connection when it next answers that job and leaves it
    # out of the following call; a last request makes sure that call happens.
    generate(server, prompt="last", max_new_tokens=40)
    now = settled_gauges(server, {ACTIVE_ROWS: 0, ACTIVE_SESSIONS: baseline})
    assert now[ACTIVE_ROWS] == 0 and now[ACTIVE_SESSIONS] == baseline, now
    grown = worker_rss_mb(server) - memory_before
    print(f"worker memory after 1,000 requests: {grown:+.1f} MB")
    assert grown < 64, f"the worker grew by {grown:.0f} MB"


def lm_counters(server) -> dict[str, float]:
    values = parse_counters(scrape(server.connection.metrics_url))
    return {name: value for (name, model), value in values.items() if model == "lm"}


def counter_above(server, name: str, floor: float, timeout: float = 15.0) -> float:
    """The LM counter ``name`` once it exceeds ``floor`` (its lines trail the answers);
    fails after ``timeout``."""
    return poll_until(
        lambda: lm_counters(server).get(name, 0.0),
        timeout,
        f"{name} of the LM stayed at or below {floor}",
        until=lambda value: value > floor,
    )


def test_an_evicted_session_gets_410_over_http_and_the_metrics_move(server):
    """One session more than the store holds: the least recently used is evicted, its id
    answers 410 naming the field and saying to resend the text, and SessionEvictions counts
    it; a generation across several handler calls moves DecodeAheadMs (the step-ahead)."""
    capacity = yaml.safe_load(model_config_path("lm").read_text())["handler"]["sessions"]
    capacity = int(capacity["capacity"])
    before = lm_counters(server)
    turn = {"prompt": "x", "max_new_tokens": 1, "session": "new"}
    first = generate(server, **turn)["session"]
    with ThreadPoolExecutor(max_workers=16) as pool:
        opened = list(pool.map(lambda _: generate(server, **turn)["session"], range(capacity)))
    assert len(set(opened)) == capacity and first not in opened
    gone = server.post("lm", json={"prompt": "x", "session": first})
    assert gone.status_code == 410 and gone.json()["field"] == "session", gone.text
    assert "send the whole text again" in gone.json()["error"]
    counter_above(server, SESSION_EVICTIONS, before.get(SESSION_EVICTIONS, 0.0))
    generate(server, prompt="ROMEO:", max_new_tokens=200, seed=1)
    counter_above(server, AHEAD_MS, before.get(AHEAD_MS, 0.0))
