"""TorchServe handler for the language model: continuous batching, streaming and sessions.

The module TorchServe loads (it may define one class). `LMHandler` joins four units, each
in its own file:

- handlers/continuous.py: TorchServe's continuous-batching protocol (jobs that span calls,
  chunks, whole answers, withheld jobs, stopping criteria), on the common base
  handlers/torchserve.py;
- handlers/lm/routes.py: which API a job speaks (ours or OpenAI's), its request read, and
  how its answers look;
- models/sessions.py: a request's session, opened or continued when it joins and stored,
  ended or released when it leaves;
- handlers/lm/engine.py: the decode loops (this worker's and a helper process's) and the
  thread that steps them between calls.

Per call: a new request is validated (a bad one gets its own 4xx at once) and joins the
engine; the running rows advance ``tokens_per_call`` tokens (which amortise the Java<->Python
round trip); a streaming row sends its new text as one line per call that produced some (the
first line carries the session id); a call that has nothing for a job sends it nothing, so a
non-streaming row sends only its whole answer, and a failure before a job's first chunk still
gets its own 5xx status; a stream that fails later ends with a last line saying so.

One worker serves the model: TorchServe 0.12 holds the model's queue lock while an idle
worker waits for its first job (Model.pollInferJob), so with two continuous-batching workers
a busy one stalls until the next request arrives. Sessions therefore always find their worker.
"""

from __future__ import annotations

import logging
from typing import Any

import torch

from handlers.continuous import ContinuousHandler, Job
from handlers.lm import routes
from handlers.lm.api import session_refused
from handlers.lm.engine import Engine
from handlers.schema import RequestError
from handlers.torchserve import INTERNAL, STOPPING, Reply
from models.decode_loop import Turn, Update
from models.sessions import SessionError, SessionStore

logger = logging.getLogger(__name__)

METRIC_GENERATED_TOKENS = "GeneratedTokens"
METRIC_ACTIVE_ROWS = "ActiveRows"
METRIC_ACTIVE_SESSIONS = "ActiveSessions"
METRIC_SESSION_EVICTIONS = "SessionEvictions"
METRIC_AHEAD_MS = "DecodeAheadMs"  # stepping between calls: not in HandlerBatchLatencyMs


class LMHandler(ContinuousHandler):
    """Generation requests (ours and OpenAI's) as jobs of the engine's decode loops."""

    def load(self, model_dir: str, device: torch.device, options: dict[str, Any]) -> None:
        self.engine = Engine(model_dir, device, options)
        limits = options["sessions"]
        self.sessions = SessionStore(int(limits["capacity"]), float(limits["ttl_seconds"]))
        self.jobs: dict[str, Job] = {}
        self.updates: dict[Any, Update] = {}  # this call's, by row key

    def call(self, ids: list[str], data: list[dict[str, Any]]) -> list[Reply]:
        seconds = self.engine.collect()  # from here on, no step runs beside this call
        if seconds is not None:  # counted here, on the handler's thread (metrics are not shared)
            self.add_counter(METRIC_AHEAD_MS, round(seconds * 1000.0, 3), unit="ms")
        self.call_tokens = self.call_failures = 0
        replies = super().call(ids, data)
        self.engine.start_ahead()
        return replies

    def admit(self, index: int, rid: str, row: dict[str, Any], draining: bool) -> Reply | None:
        route = self.context.get_request_header(index, "url_path") or ""
        tokenizer = self.engine.tokenizer
        try:
            request = routes.read(route, self.context, index, row, tokenizer, self.model_name)
            if isinstance(request, Reply):  # answered at once, beside the decode loop
                return request
            if draining:
                raise STOPPING
            session, carry = self.sessions.join(request.session)
        except SessionError as error:
            return routes.refusals(route).refused(session_refused(error))
        except RequestError as error:
            return routes.refusals(route).refused(error)
        # Choice 0 is keyed by the request id, further ones (OpenAI's n, prompt lists) by
        # (request id, index); only single-choice requests have sessions.
        keys = [rid if index == 0 else (rid, index) for index in range(len(request.choices))]
        turn = Turn(carry, keep=session is not None)  # a session keeps the state it ends in
        try:
            prompt_tokens = self.engine.join(keys, request.choices, turn)
        except Exception:
            logger.exception("request %s could not join the loop", rid)
            self.sessions.leave(session, None, end=False)
            self.call_failures += 1
            return routes.refusals(route).refused(INTERNAL)
        replies = routes.replies(route, rid, self.model_name, request, prompt_tokens)
        self.jobs[rid] = Job(request.stream, session, request.end_session, replies, keys=keys)
        return None

    def advance(self, running: bool) -> None:
        self.updates = self.engine.updates(running)

    def progress(self, rid: str) -> Reply:
        job = self.jobs[rid]
        parts = [self.updates.get(key) or Update() for key in job.keys]
        error = next((part.error for part in parts if part.error is not None), None)
        if error is not None:  # one failed choice fails the request: its others leave too
            self.engine.drop(job.keys)
            self.call_failures += 1
            self._release(rid)
            return job.replies.failed(job, RequestError("request", error, 500))
        for index, part in enumerate(parts):
            if part.result is not None:
                job.results[index] = part.result
                self.call_tokens += part.result.generated_tokens
        if len(job.results) == len(job.keys):
            self.sessions.leave(job.session, parts[0].carry, job.end_session)
            del self.jobs[rid]  # after the store: if it fails, the job is failed as it should be
            return job.replies.finished(job, parts)
        reply = job.replies.running(job, parts)
        job.started = job.started or not reply.silent
        return reply

    def _release(self, rid: str) -> None:
        """Forget a job whose request did not complete: its session keeps its old state."""
        job = self.jobs.pop(rid)
        self.sessions.leave(job.session, None, end=False)

    def abandon(self, gone: set[str]) -> None:
        if not gone:
            return
        for rid in gone:
            self.engine.drop(self.jobs[rid].keys)
            self._release(rid)
        logger.info("dropped %d rows whose clients went away", len(gone))

    def fail_all(self, ids: list[str]) -> list[Reply]:
        replies = []
        for rid in ids:
            job = self.jobs.get(rid)
            replies.append(
                job.replies.failed(job, INTERNAL) if job else routes.NATIVE.refused(INTERNAL)
            )
        for rid in list(self.jobs):
            self._release(rid)
        self.engine.reset()
        return replies

    def busy(self) -> bool:
        return self.engine.rows > 0

    def record(self, replies: list[Reply], seconds: float) -> None:
        bad = sum(400 <= reply.status < 500 for reply in replies)
        self.record_call(len(replies), bad, self.call_failures, seconds)
        if self.call_tokens:
            self.add_counter(METRIC_GENERATED_TOKENS, self.call_tokens)
        self.set_gauge(METRIC_ACTIVE_ROWS, self.engine.rows)
        self.set_gauge(METRIC_ACTIVE_SESSIONS, len(self.sessions))
        evicted = self.sessions.new_evictions()
        if evicted:
            self.add_counter(METRIC_SESSION_EVICTIONS, evicted)
