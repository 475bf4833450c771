"""One way to wait for something another process does: ask again until it is so, or fail.

A server's state changes in other processes (TorchServe's frontend, its workers), which tell
no one when it is done; the only way to wait for it is to look again. Every such wait has a
bound and ends in an error naming what did not happen, never silently with whatever was
last seen: a caller that could go on without it would not have waited.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import TypeVar

T = TypeVar("T")

INTERVAL_S = 0.1  # between looks: a fraction of any wait worth a bound, little CPU


def poll_until(
    probe: Callable[[], T],
    timeout: float,
    message: str | Callable[[], str],
    *,
    until: Callable[[T], bool] = bool,
    interval: float = INTERVAL_S,
) -> T:
    """The first value of ``probe()`` that ``until`` accepts (by default: a truthy one),
    looking every ``interval`` seconds; TimeoutError naming ``message`` (a callable: what it
    returns then, e.g. a log's tail) and the last value seen when none did within ``timeout``
    seconds. The probe runs at least once, and its last
    look is at the bound, so a slow machine's last look still counts."""
    deadline = time.monotonic() + timeout
    while True:
        value = probe()
        if until(value):
            return value
        if time.monotonic() >= deadline:
            what = message() if callable(message) else message
            raise TimeoutError(f"{what} (within {timeout:g} s; last seen: {value!r})")
        time.sleep(min(interval, max(0.0, deadline - time.monotonic())))
