"""The session store: bounded by count and age, clear about why an id no longer works."""

from __future__ import annotations

import pytest
import torch

from models.decode_loop import Carry
from models.sessions import SessionError, SessionStore


class Clock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


def carry(value: float) -> Carry:
    return Carry((torch.full((2, 1, 4), value), torch.zeros(2, 1, 4)), token=int(value))


def kind_of(store: SessionStore, session_id: str) -> str:
    with pytest.raises(SessionError) as error:
        store.take(session_id)
    return error.value.kind


def test_a_session_keeps_its_state_between_requests_and_is_busy_meanwhile():
    store = SessionStore(capacity=4, ttl_seconds=60)
    session = store.open()
    assert kind_of(store, session) == "busy"
    store.put(session, carry(1.0))
    state = store.take(session)
    assert state.token == 1 and kind_of(store, session) == "busy"
    store.release(session)  # a failed follow-up leaves the state as it was
    assert store.take(session).token == 1
    assert store.nbytes == 2 * 2 * 4 * 4


def test_unknown_ended_expired_and_evicted_ids_are_told_apart():
    clock = Clock()
    store = SessionStore(capacity=2, ttl_seconds=10, clock=clock)
    assert kind_of(store, "never-issued") == "unknown"
    ended = store.open()
    store.put(ended, carry(1.0))
    store.end(ended)
    assert kind_of(store, ended) == "unknown"
    old = store.open()
    store.put(old, carry(2.0))
    clock.now = 11
    assert kind_of(store, old) == "expired" and store.expirations == 1
    first, second, third = store.open(), store.open(), store.open()
    for session in (first, second, third):
        store.put(session, carry(3.0))
    assert len(store) == 2 and store.evictions == 1
    assert kind_of(store, first) == "expired"  # evicted: the client must resend its text
    assert store.take(third).token == 3


def test_busy_sessions_are_never_evicted_or_expired():
    clock = Clock()
    store = SessionStore(capacity=1, ttl_seconds=5, clock=clock)
    running = store.open()
    other = store.open()  # over capacity, but the only idle candidate is none
    assert len(store) == 2
    clock.now = 100
    store.put(other, carry(1.0))  # other is now idle and the older one is still busy
    assert len(store) == 1 and kind_of(store, running) == "busy"
    assert kind_of(store, other) == "expired"


def test_a_session_whose_first_request_failed_is_gone():
    store = SessionStore(capacity=2, ttl_seconds=60)
    session = store.open()
    store.release(session)
    assert kind_of(store, session) == "unknown" and len(store) == 0


def test_the_least_recently_used_session_is_evicted_not_the_oldest():
    """Three sessions in a store of two: the first one opened was used again since, so the
    second (unused the longest) is the one evicted; first-in-first-out would drop the first."""
    store = SessionStore(capacity=2, ttl_seconds=60)
    first, second = store.open(), store.open()
    store.put(first, carry(1.0))
    store.put(second, carry(2.0))
    store.put(first, store.take(first))  # a follow-up on the first: now the most recent
    third = store.open()
    store.put(third, carry(3.0))
    assert store.evictions == 1 and len(store) == 2
    assert kind_of(store, second) == "expired"  # evicted: told to resend its text
    assert store.take(first).token == 1 and store.take(third).token == 3
