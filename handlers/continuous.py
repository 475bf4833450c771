"""The pieces of TorchServe's continuous-batching protocol that a handler answers with.

Each handler call answers every job in it; `Reply.more` is what TorchServe's
``context.stopping_criteria`` must say for that job (see handlers/lm/handler.py). Kept out of
the handler module because TorchServe loads a handler module only if it defines one class.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any


@dataclass
class Job:
    stream: bool
    session: str | None
    end_session: bool
    replies: Any = None  # how its answers look (handlers/lm/replies.py)
    started: bool = False  # a chunk went out: the response is a stream now
    announced: str | None = None  # the session id, once a streamed line has carried it
    keys: list[Any] = field(default_factory=list)  # its rows in the decode loop, one per choice
    results: dict[int, Any] = field(default_factory=dict)  # finished choices by index
    engine: Any = None  # the decode loop (in this process or the helper) its rows run in
    offsets: dict[int, int] = field(default_factory=dict)  # characters streamed per choice


@dataclass
class Reply:
    body: Any
    more: bool | None  # True: chunks follow; False: the last chunk; None: a whole response
    status: int = 200
    content_type: str | None = None
    # Nothing to send in this call: the job gets no answer at all, so TorchServe sends it
    # again in the next call and its client has seen no status line yet (see `withhold`).
    silent: bool = False


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
