"""The chaos run's bookkeeping: what kind a failed request was, and whether a kill explains it."""

from __future__ import annotations

import pytest

from loadtest.chaos import (
    ANSWER_GRACE_S,
    END_CUT,
    NEVER_ANSWERED,
    Kill,
    cut_note,
    dropped,
    in_flight,
    kind_of,
    status_of,
)
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


def test_a_request_cut_at_the_end_counts_as_dropped_only_after_the_model_had_time_to_answer():
    kills = [Kill("lm worker", 1, at=100.0, answered_after_s=8.0)]  # the LM answers at 108
    lm = {"name": "STREAM lm whole stream"}
    answered_again = 108.0
    # Sent to the dead worker, still unanswered well after the new one answered: dropped.
    assert dropped({**lm, "start": 99.0, "end": answered_again + ANSWER_GRACE_S + 1}, kills)
    assert dropped({**lm, "start": 104.0, "end": answered_again + ANSWER_GRACE_S + 1}, kills)
    helper_then_worker = [Kill("lm helper", 2, at=90.0, answered_after_s=0.1), *kills]
    note = cut_note({**lm, "start": 104.0, "end": 130.0}, helper_then_worker)
    assert "+4.0 s from the kill of the lm worker, cut 22.0 s after" in note, note
    # The run ended soon after the LM answered again: the request merely ran at the end (the
    # CI run that counted two of these sent them 0.4 s after the new worker answered).
    assert not dropped({**lm, "start": 104.0, "end": answered_again + 1.0}, kills)
    assert not dropped({**lm, "start": 108.4, "end": 108.45}, kills)
    # Sent after the model answered again: no kill explains it, however long it ran.
    assert not dropped({**lm, "start": 109.0, "end": 200.0}, kills)
    # Another model's kill explains nothing, nor does one the model never recovered from.
    sentiment = {"name": "POST /predictions/sentiment", "start": 99.0, "end": 200.0}
    assert not dropped(sentiment, kills)
    assert not dropped({**lm, "start": 99.0, "end": 200.0}, [Kill("lm worker", 1, at=100.0)])


def test_durations_in_locusts_syntax():
    assert [seconds(d) for d in ("90", "60s", "5m", "1h30m", "2m10s")] == [90, 60, 300, 5400, 130]
    with pytest.raises(ValueError):
        seconds("soon")
