"""Stateful sessions: a conversation's recurrent state kept between requests.

An LSTM's whole memory of what it has read is its (h, c), a few KB whatever the length of
the history, so a follow-up request can read only its new text instead of resending (and
re-reading) everything: O(new text), not O(history). A transformer server would need a KV
cache that grows with the history for the same.

The store is bounded: at most ``capacity`` sessions (the least recently used idle one is
evicted first) and each expires ``ttl_seconds`` after its last request. Sessions live in the
memory of the process that serves them and are lost with it. Errors say which case a client
is in: an id never issued (or ended), one that expired or was evicted (resend the whole text),
one that another request is using right now.
"""

from __future__ import annotations

import secrets
import time
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass

from models.decode_loop import Carry

NEW_SESSION = "new"  # what a request names as its session to open one
ID_BYTES = 12  # 16 URL-safe characters
FORGOTTEN_MEMORY = 4  # ids of evicted or expired sessions remembered, x capacity


class SessionError(Exception):
    """``kind`` is "unknown", "expired" or "busy"."""

    def __init__(self, kind: str, session_id: str, message: str) -> None:
        super().__init__(message)
        self.kind = kind
        self.session_id = session_id


@dataclass
class _Session:
    carry: Carry | None
    used: float
    busy: bool


class SessionStore:
    def __init__(
        self, capacity: int, ttl_seconds: float, clock: Callable[[], float] = time.monotonic
    ) -> None:
        if capacity < 1 or ttl_seconds <= 0:
            raise ValueError("need capacity >= 1 and ttl_seconds > 0")
        self.capacity = capacity
        self.ttl = ttl_seconds
        self.clock = clock
        self._sessions: OrderedDict[str, _Session] = OrderedDict()  # least recently used first
        self._forgotten: OrderedDict[str, str] = OrderedDict()  # id -> "evicted" / "expired"
        self.evictions = 0
        self.evictions_reported = 0
        self.expirations = 0

    def __len__(self) -> int:
        return len(self._sessions)

    @property
    def nbytes(self) -> int:
        """Bytes of recurrent state held (tensor payloads only)."""
        return sum(s.carry.nbytes for s in self._sessions.values() if s.carry is not None)

    def join(self, session_id: str | None) -> tuple[str | None, Carry | None]:
        """A request's session (`NEW_SESSION` opens one; None: it has none) and the state it
        continues from; a `SessionError` says why it cannot have it."""
        if session_id is None:
            return None, None
        if session_id == NEW_SESSION:
            return self.open(), None
        return session_id, self.take(session_id)

    def leave(self, session_id: str | None, carry: Carry | None, end: bool = False) -> None:
        """A request left: its session keeps ``carry`` (or ends, with ``end``); without one
        (the request failed or was abandoned) it keeps its old state (`release`)."""
        if session_id is None:
            return
        if carry is None:
            self.release(session_id)
        elif end:
            self.end(session_id)
        else:
            self.put(session_id, carry)

    def new_evictions(self) -> int:
        """Sessions evicted since the last time this was asked (a counter's increment)."""
        evicted = self.evictions - self.evictions_reported
        self.evictions_reported = self.evictions
        return evicted

    def open(self) -> str:
        """A new session, busy with the request that opened it."""
        self._expire()
        session_id = secrets.token_urlsafe(ID_BYTES)
        self._sessions[session_id] = _Session(None, self.clock(), busy=True)
        self._evict()
        return session_id

    def take(self, session_id: str) -> Carry | None:
        """The session's state for a request that continues it (the session is busy until
        `put` or `release`)."""
        self._expire()
        session = self._sessions.get(session_id)
        if session is None:
            why = self._forgotten.get(session_id)
            if why is None:
                raise SessionError("unknown", session_id, "no such session (or it was ended)")
            raise SessionError(
                "expired", session_id, f"the session was {why}; send the whole text again"
            )
        if session.busy:
            raise SessionError("busy", session_id, "another request is using this session")
        session.busy, session.used = True, self.clock()
        self._sessions.move_to_end(session_id)
        return session.carry

    def put(self, session_id: str, carry: Carry) -> None:
        """A request on the session finished: keep its state for the next one."""
        session = self._sessions.get(session_id)
        if session is not None:
            session.carry, session.busy, session.used = carry, False, self.clock()
            self._sessions.move_to_end(session_id)
            self._evict()

    def release(self, session_id: str) -> None:
        """A request on the session failed or was abandoned: the state stays as it was (a
        session opened by that request had none and is ended)."""
        session = self._sessions.get(session_id)
        if session is None:
            return
        if session.carry is None:
            del self._sessions[session_id]
        else:
            session.busy, session.used = False, self.clock()
            self._sessions.move_to_end(session_id)

    def end(self, session_id: str) -> None:
        self._sessions.pop(session_id, None)

    def _expire(self) -> None:
        """Every use moves a session to the end, so the stale ones are at the front."""
        deadline = self.clock() - self.ttl
        stale = []
        for session_id, session in self._sessions.items():
            if session.used >= deadline:
                break
            if not session.busy:
                stale.append(session_id)
        for session_id in stale:
            self._forget(session_id, "expired")
            self.expirations += 1

    def _evict(self) -> None:
        """Idle sessions, least recently used first, until the store is within capacity."""
        idle = (k for k, s in list(self._sessions.items()) if not s.busy)
        while len(self._sessions) > self.capacity:
            victim = next(idle, None)
            if victim is None:
                return  # every session is in use; they shrink back as requests end
            self._forget(victim, "evicted")
            self.evictions += 1

    def _forget(self, session_id: str, why: str) -> None:
        del self._sessions[session_id]
        self._forgotten[session_id] = why
        while len(self._forgotten) > FORGOTTEN_MEMORY * self.capacity:
            self._forgotten.popitem(last=False)
