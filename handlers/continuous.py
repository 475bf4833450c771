"""The continuous-batching handler: TorchServe's protocol for jobs that span handler calls.

TorchServe's continuous batching (`continuousBatching: true`, ContinuousBatching.java) calls
`handle` again and again with every job that is still running plus any new ones (up to
`batchSize` in all). A new job carries its body; a running job comes back with an empty body
and the same request id. Each call answers every job: for a running job the answer is sent
to the client as one more chunk, and ``context.stopping_criteria[i]`` says whether that job
is finished (True), continues (False), or was answered whole in this very call (None: a
normal, unchunked response, which is the only kind that can carry an error status). So:

- a new job is `admit`ted (a bad one gets its own 4xx at once) or answered at once;
- every running job gets its `progress` in each call: a chunk, its last chunk, a whole
  answer, or nothing at all (a `Reply` with ``silent``: see `withhold`);
- a job that disappears from the calls was dropped by TorchServe because its client went
  away: it is `abandon`ed;
- if the call itself fails (a bug of ours), every job ends with an error (`fail_all`) rather
  than TorchServe's call-wide 503 and a stuck loop.

The drain gate (handlers/drain.py) is held while any job runs, not only during a call, so a
graceful stop waits for running jobs. Subclasses implement `load`, `admit`, `progress`,
`advance`, `abandon` and `fail_all`; `Job` is what they keep per running job.
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass, field
from typing import Any

from handlers.torchserve import Reply, ServedHandler

logger = logging.getLogger(__name__)


@dataclass
class Job:
    """A running request: what its answers need between calls."""

    stream: bool
    session: str | None
    end_session: bool
    replies: Any = None  # how its answers look (handlers/lm/routes.py)
    started: bool = False  # a chunk went out: the response is a stream now
    announced: str | None = None  # the session id, once a streamed line has carried it
    keys: list[Any] = field(default_factory=list)  # its rows in the decode loop, one per choice
    results: dict[int, Any] = field(default_factory=dict)  # finished choices by index
    offsets: dict[int, int] = field(default_factory=dict)  # characters streamed per choice


SILENT = Reply("", more=True, silent=True)


def withhold(context: Any, index: int) -> None:
    """Send job ``index`` of this call no answer. TorchServe 0.12's Python backend answers
    exactly the jobs in ``context.request_ids`` (ts/service.py ``predict`` passes that very
    dict to ``create_predict_response``, which loops over it), and the frontend keeps a job
    it got no answer for and sends it again in the next call (ContinuousBatching.java
    ``sendResponse`` removes only answered jobs; ``getRequest`` re-sends every kept one).

    This is what lets a non-streamed request still fail with a 5xx after many calls: its
    status line goes out only with its one whole answer. The price: TorchServe re-sends its
    body each call (``cachedInBackend`` is only set by a streamed chunk) and cannot notice that
    its client went away, so the row runs to its end."""
    context.request_ids.pop(index, None)


class Decision:
    """A stopping criterion that answers what the handler already decided."""

    def __init__(self, more: bool | None) -> None:
        self.verdict = None if more is None else not more

    def __call__(self, _body: Any) -> bool | None:
        return self.verdict


class ContinuousHandler(ServedHandler):
    """Base of a handler whose jobs run over many calls; ``jobs`` maps request ids to them."""

    jobs: dict[str, Job]

    def admit(self, index: int, rid: str, row: dict[str, Any], draining: bool) -> Reply | None:
        """Take new job ``index``: None once it runs, else its whole answer (or refusal)."""
        raise NotImplementedError

    def advance(self, running: bool) -> None:
        """Do this call's work for the running jobs (``running``: some ran before the call)."""
        raise NotImplementedError

    def progress(self, rid: str) -> Reply:
        """What running job ``rid`` gets in this call; a job that ends leaves ``jobs``."""
        raise NotImplementedError

    def abandon(self, gone: set[str]) -> None:
        """Forget jobs TorchServe stopped sending: their clients went away."""
        raise NotImplementedError

    def fail_all(self, ids: list[str]) -> list[Reply]:
        """After a failed call: an error for each job of the call, and no job left running."""
        raise NotImplementedError

    def busy(self) -> bool:
        """Whether work continues after this call (the drain gate stays held)."""
        return bool(self.jobs)

    def record(self, replies: list[Reply], seconds: float) -> None:
        """The metrics of one call."""

    def handle(self, data: list[dict[str, Any]], context: Any) -> list[Any]:
        self.context = context
        ids = [context.get_request_id(index) for index in range(len(data))]
        try:
            return self.send(self.call(ids, data))
        except Exception:  # a bug of ours must not become a call-wide 503 and a stuck loop
            logger.exception("handler failed; ending every running job")
            replies = self.fail_all(ids)
            self.drain_gate.leave()
            return self.send(replies)

    def call(self, ids: list[str], data: list[dict[str, Any]]) -> list[Reply]:
        """One call's replies: newcomers admitted, every running job advanced."""
        started = time.perf_counter()
        self.abandon(set(self.jobs) - set(ids))
        running = any(rid in self.jobs for rid in ids)
        draining = self.drain_gate.enter()
        replies = [
            None if rid in self.jobs else self.admit(index, rid, row, draining)
            for index, (rid, row) in enumerate(zip(ids, data, strict=True))
        ]
        self.advance(running)
        replies = [
            self.progress(rid) if reply is None else reply
            for rid, reply in zip(ids, replies, strict=True)
        ]
        if not self.busy():
            self.drain_gate.leave()  # nothing runs between calls: a stop may proceed
        self.record(replies, time.perf_counter() - started)
        return replies

    def send(self, replies: list[Reply]) -> list[Any]:
        """`ServedHandler.send`, plus each job's fate: withheld (silent), or whether its
        stream goes on."""
        for index, reply in enumerate(replies):
            if reply.silent:
                withhold(self.context, index)
        bodies = super().send(replies)
        # TorchServe calls criterion(body) per job after this method returns: False keeps a
        # job streaming, True ends its stream, None sends a whole (unchunked) response.
        self.context.stopping_criteria = [Decision(reply.more) for reply in replies]
        return bodies
