"""A decode loop that runs in its own thread, so decoding goes on while the server talks.

Run synchronously, a continuous-batching server alternates: decode ``tokens_per_call`` steps,
hand the chunks to the frontend, wait for the next call. The cores idle during each round
trip, a row that finishes early in a call holds its slot until the call ends, and the client's
next request waits for the call after that: at 64 streams of Locust's mix the loop held ~47
rows on average, not 64 (`make bench`, "mean rows per handler call").

Here a thread owns the `DecodeLoop` and steps it whenever it has rows; the server's thread
only hands it newcomers and departures (applied between steps) and `collect`s what the steps
produced. `collect` returns once a call is worth answering: after ``most`` steps, or sooner
(but never before ``least`` steps of this call) when a row has finished, so that its client
hears at once and its slot is refilled at the next call. The thread runs at most
``lookahead`` steps past the last collect: a slow frontend cannot make it decode far ahead
of what was sent (and of clients that have already gone away).

Answers do not depend on any of this timing: rows are decoded row-wise with their own seeded
generators (models/decode_loop.py), so only how text is cut into chunks varies.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Hashable, Iterable
from dataclasses import dataclass
from typing import TYPE_CHECKING

from models.decode_loop import INTERNAL_ERROR, Carry, DecodeLoop, Newcomer, Update
from models.requests import GenerationRequest

if TYPE_CHECKING:
    from models.generation import Generator

logger = logging.getLogger(__name__)

WAIT_SECONDS = 1.0  # how often a waiting `collect` checks that the thread is still alive


@dataclass
class _Message:
    key: Hashable | None = None
    newcomer: Newcomer | None = None  # a row that joins
    gone: frozenset[Hashable] = frozenset()  # rows that leave


class DecodeThread:
    """A `DecodeLoop` stepped by a thread of its own; rows keyed by the caller's ids."""

    def __init__(self, generator: Generator, lookahead: int) -> None:
        self.generator = generator
        self.lookahead = lookahead
        self.loop = DecodeLoop(generator)  # touched only by the thread (and `newcomer`)
        self._cond = threading.Condition()
        self._inbox: list[_Message] = []
        self._updates: dict[Hashable, Update] = {}
        self._steps = 0  # steps run, all told
        self._since_collect = 0  # steps since the last collect
        self._ended = 0  # rows that finished or failed since the last collect
        self._rows = 0  # rows in the loop after the last step
        self._working = False  # the thread has taken messages it has not yet answered
        self._closed = False
        self._thread = threading.Thread(target=self._run, name="decode", daemon=True)
        self._thread.start()

    def add(
        self,
        key: Hashable,
        request: GenerationRequest,
        carry: Carry | None = None,
        keep: bool = False,
    ) -> int:
        """Like `DecodeLoop.add` (errors in the request raise here); the row joins between
        steps. Returns the prompt's length in tokens."""
        newcomer = self.loop.newcomer(request, carry, keep)
        self._post(_Message(key=key, newcomer=newcomer))
        return newcomer.prompt_tokens

    def drop(self, keys: Iterable[Hashable]) -> None:
        """Rows whose clients went away leave between steps; what they produced is discarded."""
        gone = frozenset(keys)
        if gone:
            self._post(_Message(gone=gone))

    def collect(self, most: int, least: int) -> dict[Hashable, Update]:
        """Wait until a call is worth answering (see the module docstring), then take every
        row's update since the last collect. Returns at once when no row is left."""
        with self._cond:
            start = self._steps

            def ready() -> bool:
                if self._closed:
                    return True
                if self._inbox or self._working:
                    return False  # what was posted before this collect is answered in it
                if not self._rows or self._since_collect >= self.lookahead:
                    return True  # nothing runs, or the thread waits for this collect
                if self._steps - start < least:
                    return False
                return self._since_collect >= most or self._ended > 0

            while not self._cond.wait_for(ready, timeout=WAIT_SECONDS):
                if not self.alive:
                    raise RuntimeError("the decode thread has died")
            updates, self._updates = self._updates, {}
            self._since_collect = self._ended = 0
            self._cond.notify_all()  # the thread may be waiting on its lookahead
        return updates

    @property
    def alive(self) -> bool:
        return self._thread.is_alive()

    def close(self) -> None:
        with self._cond:
            self._closed = True
            self._cond.notify_all()
        self._thread.join()

    def _post(self, message: _Message) -> None:
        with self._cond:
            self._inbox.append(message)
            self._cond.notify_all()

    def _has_work(self) -> bool:
        runnable = bool(self.loop) and self._since_collect < self.lookahead
        return self._closed or bool(self._inbox) or runnable

    def _run(self) -> None:
        while True:
            with self._cond:
                self._cond.wait_for(self._has_work)
                if self._closed:
                    return
                inbox, self._inbox = self._inbox, []
                stepping = self._since_collect < self.lookahead
                self._working = True
            updates = self._apply(inbox)
            stepped = stepping and bool(self.loop)
            if stepped:
                updates.update(self._step())
            with self._cond:
                for key, update in updates.items():
                    self._merge(key, update)
                self._rows = len(self.loop)
                self._working = False
                if stepped:
                    self._steps += 1
                    self._since_collect += 1
                self._cond.notify_all()

    def _apply(self, inbox: list[_Message]) -> dict[Hashable, Update]:
        """Joins and departures, in the order the server sent them; a row that cannot join
        gets an error update instead of stopping the thread."""
        failed: dict[Hashable, Update] = {}
        for message in inbox:
            if message.newcomer is None:
                self.loop.drop(message.gone)
                with self._cond:
                    for key in message.gone:
                        self._updates.pop(key, None)
                continue
            try:
                self.loop.join(message.key, message.newcomer)
            except Exception:
                logger.exception("row %r could not join", message.key)
                failed[message.key] = Update(error=INTERNAL_ERROR)
        return failed

    def _step(self) -> dict[Hashable, Update]:
        try:
            return self.loop.step_once()
        except Exception:  # the loop itself broke (not one row): end every row, go on
            logger.exception("decode step failed; ending its %d rows", len(self.loop))
            keys = list(self.loop.rows)
            self.loop = DecodeLoop(self.generator)
            return {key: Update(error=INTERNAL_ERROR) for key in keys}

    def _merge(self, key: Hashable, update: Update) -> None:
        """Fold one step's update into what the row has waiting (call with the lock held)."""
        waiting = self._updates.setdefault(key, Update())
        waiting.text += update.text
        if update.result is not None or update.error is not None:
            waiting.result, waiting.carry = update.result, update.carry
            waiting.error = update.error
            self._ended += 1
