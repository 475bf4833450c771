"""serving.polling: a wait returns what it waited for, or fails naming it; never silently."""

from __future__ import annotations

import itertools

import pytest

from serving.polling import poll_until


def test_returns_the_first_accepted_value_without_waiting_longer():
    looks = itertools.count()
    assert poll_until(lambda: next(looks), 5, "never", until=lambda n: n >= 3, interval=0) == 3
    assert next(looks) == 4, "no look after the accepted one"


def test_by_default_waits_for_a_truthy_value_and_returns_it():
    values = iter([None, [], {"rows": 0}])
    assert poll_until(lambda: next(values), 5, "never", interval=0) == {"rows": 0}


def test_fails_after_the_bound_naming_what_and_the_last_value():
    looks = itertools.count()
    with pytest.raises(TimeoutError, match=r"rows never reached 0 \(within 0.2 s; last seen: \d+"):
        poll_until(lambda: next(looks), 0.2, "rows never reached 0", until=lambda n: n < 0)
    assert next(looks) >= 2, "looked again until the bound"


def test_looks_once_even_with_no_time_left():
    assert poll_until(lambda: "done", 0, "never") == "done"
    with pytest.raises(TimeoutError, match="not yet"):
        poll_until(lambda: False, 0, "not yet")


def test_a_callable_message_is_read_when_the_wait_fails():
    log = ["starting"]
    with pytest.raises(TimeoutError, match="never ready: starting, failed"):
        poll_until(lambda: log.append("failed"), 0, lambda: "never ready: " + ", ".join(log))
