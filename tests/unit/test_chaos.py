"""The chaos run's bookkeeping: what kind a failed request was, and whether a kill explains it."""

from __future__ import annotations

import pytest

from loadtest.chaos import END_CUT, NEVER_ANSWERED, Kill, in_flight, kind_of, status_of
from loadtest.run import seconds


@pytest.mark.parametrize(
    "error, kind",
    [
        ("URL http://127.0.0.1:8080/predictions/lm: code=507", "5xx status"),
        ("HTTP 503: server: is stopping", "5xx status"),
        ("HTTP 500: the stream ended with an error line: request: failed", "final error line"),
        ("(\"Connection broken: ConnectionResetError(104, 'reset by peer')\")", "cut connection"),
        ("URL http://127.0.0.1:8080/predictions/lm: 0, original=timed out", "timeout"),
        ("200 without 'label': '{\"error\": \"x\"}'", "2xx carrying an error"),
        ("URL http://127.0.0.1:8080/predictions/lm: code=400", "4xx status"),
        (END_CUT, NEVER_ANSWERED),
    ],
)
def test_failure_kinds(error, kind):
    assert kind_of(error) == kind
    if kind.endswith("status"):
        assert status_of(error) in error
    elif kind == "final error line":
        assert status_of(error) == "200, then an error line"
    else:
        assert status_of(error) == "none"


def test_a_failure_is_explained_only_by_a_kill_of_its_own_model_while_it_ran():
    kills = [Kill("sentiment worker", 1, at=100.0, answered_after_s=0.5)]
    sentiment = {"name": "POST /predictions/sentiment"}
    assert in_flight({**sentiment, "start": 99.0, "end": 100.2}, kills)
    assert in_flight({**sentiment, "start": 100.9, "end": 101.0}, kills)  # met the dead worker
    assert not in_flight({**sentiment, "start": 98.0, "end": 99.9}, kills)  # ended before
    assert not in_flight({**sentiment, "start": 103.0, "end": 104.0}, kills)  # long after
    assert not in_flight({"name": "POST /predictions/lm", "start": 99.0, "end": 101.0}, kills)


def test_durations_in_locusts_syntax():
    assert [seconds(d) for d in ("90", "60s", "5m", "1h30m", "2m10s")] == [90, 60, 300, 5400, 130]
    with pytest.raises(ValueError):
        seconds("soon")
