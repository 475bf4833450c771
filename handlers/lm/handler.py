"""TorchServe handler for the language model: continuous batching, streaming and sessions.

TorchServe's continuous batching (`continuousBatching: true`, ContinuousBatching.java) calls
`handle` again and again with every job that is still running plus any new ones (up to
`batchSize` in all). A new job carries its body; a running job comes back with an empty body
and the same request id. Each call answers every job: for a running job the answer is sent
to the client as one more chunk, and ``context.stopping_criteria[i]`` says whether that job
is finished (True), continues (False), or was answered whole in this very call (None: a
normal, unchunked response, which is the only kind that can carry an error status). So:

- a new request is validated (a bad one gets its own 4xx at once) and joins the decode loop;
  ``tokens_per_call`` tokens per call amortise the Java<->Python round trip;
- a streaming row sends its new text as one NDJSON line per call that produced some (the
  first line carries the session id); a call that has nothing for a job sends it nothing
  (handlers/continuous.py `withhold`), so a non-streaming row sends only its whole JSON
  answer, and a failure before a job's first chunk still gets its own 5xx status; a stream
  that fails later ends with a last line saying so (handlers/lm/replies.py);
- a job that disappears from the calls was dropped by TorchServe because its client went
  away: its row leaves the loop (and its session is released);
- the path after ``/predictions/lm/1.0/`` (TorchServe's ``url_path`` header) picks the API:
  none for ours, ``v1/completions`` and ``v1/models`` for OpenAI's (handlers/lm/openai_api.py);
  handlers/lm/replies.py shapes the answers of each.

While TorchServe carries one call's answers to the clients and gathers the next call's jobs
(the Java round trip, when the worker's Python waits on its socket), a thread already decodes
the running rows' next ``tokens_per_call`` tokens (``step_ahead``): the next call answers
from them at once. Rows that joined in that call start decoding in the step after it; an idle
server (no running rows) still decodes a lone request in its own first call. Answers do not
change: each row's tokens depend only on its own request and seed.

One worker serves the model: TorchServe 0.12 holds the model's queue lock while an idle
worker waits for its first job (Model.pollInferJob), so with two continuous-batching workers
a busy one stalls until the next request arrives. Sessions therefore always find their worker.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor
from functools import partial
from typing import Any

import torch

from handlers.base import PHRASES, STOPPING, BatchHandler, read_request
from handlers.continuous import Decision, Job, Reply, withhold
from handlers.lm import openai_api, tokenize_api
from handlers.lm.api import NEW_SESSION, LMRequest, check_vocabulary, parse_generation
from handlers.lm.replies import NativeReplies, OpenAIReplies
from handlers.schema import RequestError
from models.decode_loop import INTERNAL_ERROR, Carry, DecodeLoop, Update
from models.decode_process import DecodeProcess
from models.generation import Generator
from models.sessions import SessionError, SessionStore

logger = logging.getLogger(__name__)

METRIC_GENERATED_TOKENS = "GeneratedTokens"
METRIC_ACTIVE_ROWS = "ActiveRows"
METRIC_ACTIVE_SESSIONS = "ActiveSessions"
METRIC_SESSION_EVICTIONS = "SessionEvictions"
METRIC_AHEAD_MS = "DecodeAheadMs"  # stepping between calls: not in HandlerBatchLatencyMs

TOKENS_PER_CALL = 16  # overridden by the model config's handler.tokens_per_call
SESSION_CAPACITY = 1000
SESSION_TTL_SECONDS = 600.0
SESSION_STATUS = {"unknown": 404, "expired": 410, "busy": 409}
NATIVE = NativeReplies()


class LMHandler(BatchHandler):
    def load(self, model_dir: str, device: torch.device, options: dict[str, Any]) -> None:
        quantize = options.get("quantize") if device.type == "cpu" else None
        self.generator = Generator.from_artifact(model_dir, device=device, quantize=quantize)
        self.loop = DecodeLoop(self.generator)
        # decode_processes 2: a child process decodes half the rows (models/decode_process.py)
        processes = int(options.get("decode_processes", 1))
        if processes not in (1, 2):
            raise ValueError(f"decode_processes must be 1 or 2, not {processes}")
        self.helper_args = (model_dir, quantize, torch.get_num_threads())
        self.helper = DecodeProcess(*self.helper_args) if processes == 2 else None
        self.tokens_per_call = int(options.get("tokens_per_call", TOKENS_PER_CALL))
        limits = options.get("sessions") or {}
        self.sessions = SessionStore(
            int(limits.get("capacity", SESSION_CAPACITY)),
            float(limits.get("ttl_seconds", SESSION_TTL_SECONDS)),
        )
        self.jobs: dict[str, Job] = {}
        self.evictions_reported = 0
        self.step_ahead = bool(options.get("step_ahead", True))
        self.ahead: Future[dict[Any, Update]] | None = None
        self.stepper = ThreadPoolExecutor(max_workers=1, thread_name_prefix="decode-ahead")

    def parse(self, body: Any) -> LMRequest:
        return parse_generation(body)

    def handle(self, data: list[dict[str, Any]], context: Any) -> list[Any]:
        self.context = context
        ids = [context.get_request_id(index) for index in range(len(data))]
        try:
            return self._handle(ids, data)
        except Exception:  # a bug of ours must not become a call-wide 503 and a stuck loop
            logger.exception("handler failed; ending every running row")
            return self._fail_all(ids)

    def _fail_all(self, ids: list[str]) -> list[Any]:
        error = RequestError("request", INTERNAL_ERROR, 500)
        replies = []
        for rid in ids:
            job = self.jobs.get(rid)
            replies.append(job.replies.failed(job, error) if job else NATIVE.refused(error))
        for rid in list(self.jobs):
            self._release(rid)
        self._reset_engines()
        self.drain_gate.leave()
        return self._respond(replies)

    def _handle(self, ids: list[str], data: list[dict[str, Any]]) -> list[Any]:
        started = time.perf_counter()
        ahead = self._collect_ahead()  # from here on, no step runs beside this call
        self._abandon(set(self.jobs) - set(ids))
        running = any(rid in self.jobs for rid in ids)
        self.call_tokens = self.call_failures = 0
        draining = self.drain_gate.enter()
        replies: list[Reply | None] = [
            None if rid in self.jobs else self._admit(index, rid, row, draining)
            for index, (rid, row) in enumerate(zip(ids, data, strict=True))
        ]
        # Running rows were stepped while this call's jobs travelled; without any (an idle
        # server), newcomers are decoded now so that their first call brings them tokens.
        updates = ahead if ahead is not None and running else self._step()
        for index, rid in enumerate(ids):
            if replies[index] is None:
                replies[index] = self._progress(rid, updates)
        if not self.rows:
            self.drain_gate.leave()  # nothing runs between calls: a stop may proceed
        self._record(replies, time.perf_counter() - started)
        bodies = self._respond(replies)
        if self.step_ahead and self.rows:
            self.ahead = self.stepper.submit(self._timed_step)
        return bodies

    def _timed_step(self) -> tuple[dict[Any, Update], float]:
        started = time.perf_counter()
        updates = self._step()
        return updates, time.perf_counter() - started

    def _collect_ahead(self) -> dict[Any, Update] | None:
        """The updates of the step run since the last call, once it is done; None if none ran.
        Its time is counted here, on the handler's thread (the metrics object is not shared)."""
        ahead, self.ahead = self.ahead, None
        if ahead is None:
            return None
        updates, seconds = ahead.result()
        self.add_counter(METRIC_AHEAD_MS, round(seconds * 1000.0, 3), unit="ms")
        return updates

    def _admit(self, index: int, rid: str, row: dict[str, Any], draining: bool) -> Reply | None:
        """Validate a new job and put it in the loop; a reply when it is refused or answered
        at once (``v1/models``)."""
        route = self.context.get_request_header(index, "url_path") or ""
        replies = NATIVE if not route else OpenAIReplies(None, stream=False)
        try:
            if route not in openai_api.ROUTES and route not in tokenize_api.ROUTES:
                raise RequestError("url", f"no such route: {route!r}", 404)
            if route == openai_api.MODELS:
                body = openai_api.models_body(self.model_name)
                return Reply(body, None, content_type=openai_api.JSON)
            if route in tokenize_api.ROUTES:  # answered at once, beside the decode loop
                tokenizer = self.generator.tokenizer
                if tokenize_api.ROUTES[route] == tokenize_api.INFO:
                    body = tokenize_api.info(tokenizer)
                else:
                    answer = partial(tokenize_api.answer, route, tokenizer=tokenizer)
                    body = read_request(self.context, index, row, answer)
                return Reply(body, None, content_type=openai_api.JSON)
            completions = route == openai_api.COMPLETIONS
            parse = openai_api.parse_completion if completions else self.parse
            request = read_request(self.context, index, row, parse)
            for choice in request.choices:
                check_vocabulary(choice, self.generator.tokenizer.vocab_size)
            if draining:
                raise STOPPING
            session, carry = self._open_session(request)
        except RequestError as error:
            return replies.refused(error)
        # Choice 0 is keyed by the request id, further ones (OpenAI's n, prompt lists) by
        # (request id, index); only single-choice requests have sessions.
        keys = [rid if index == 0 else (rid, index) for index in range(len(request.choices))]
        engine = self._engine()
        try:
            keep = session is not None
            prompt_tokens = sum(
                engine.add(key, choice, carry, keep)
                for key, choice in zip(keys, request.choices, strict=True)
            )
        except Exception:
            logger.exception("request %s could not join the loop", rid)
            engine.drop(keys)
            if session is not None:
                self.sessions.release(session)
            self.call_failures += 1
            return replies.refused(RequestError("request", INTERNAL_ERROR, 500))
        if completions:
            ids = openai_api.CompletionIds.new(rid, self.model_name, prompt_tokens)
            replies = OpenAIReplies(ids, request.stream)
        job = Job(request.stream, session, request.end_session, replies, keys=keys, engine=engine)
        self.jobs[rid] = job
        return None

    def _open_session(self, request: LMRequest) -> tuple[str | None, Carry | None]:
        if request.session is None:
            return None, None
        if request.session == NEW_SESSION:
            return self.sessions.open(), None
        try:
            return request.session, self.sessions.take(request.session)
        except SessionError as error:
            raise RequestError("session", str(error), SESSION_STATUS[error.kind]) from error

    @property
    def rows(self) -> int:
        return len(self.loop) + (len(self.helper) if self.helper else 0)

    def _engine(self) -> DecodeLoop | DecodeProcess:
        """Where a new job's rows go: the helper process when it has fewer rows (a lone
        request stays in this process: no pipe on its way)."""
        if self.helper is not None and not self.helper.alive() and not len(self.helper):
            self._replace_helper()  # it died idle: no step of its rows will notice
        if self.helper is not None and self.helper.ready() and len(self.helper) < len(self.loop):
            return self.helper
        return self.loop

    def _replace_helper(self) -> None:
        """A new helper, loading while this worker's own loop decodes every row."""
        self.helper.close()
        self.helper = DecodeProcess(*self.helper_args, wait=False)

    def _step(self) -> dict[Any, Update]:
        """Both loops step at once: the helper's order goes out before this one's step."""
        if not self.rows:
            return {}
        updates: dict[Any, Update] = {}
        tokens = self.tokens_per_call
        if self.helper is not None:
            updates |= self._guarded(self.helper, lambda: self.helper.start_step(tokens) or {})
        updates |= self._guarded(self.loop, lambda: self.loop.step(tokens) if self.loop else {})
        if self.helper is not None:
            updates |= self._guarded(self.helper, self.helper.finish_step)
        return updates

    def _guarded(
        self, engine: DecodeLoop | DecodeProcess, work: Callable[[], dict[Any, Update]]
    ) -> dict[Any, Update]:
        """``work`` on one loop; if the loop itself breaks (not one row), its rows end with an
        error, it is replaced, and the other loop's rows go on."""
        try:
            return work()
        except Exception:
            keys = [key for job in self.jobs.values() if job.engine is engine for key in job.keys]
            logger.exception("decode step failed; ending its %d rows", len(keys))
            if engine is self.helper:
                self._replace_helper()
            else:
                self.loop = DecodeLoop(self.generator)
            return {key: Update(error=INTERNAL_ERROR) for key in keys}

    def _reset_engines(self) -> None:
        """Fresh, empty loops (the helper process restarted): after a failure of either."""
        self.loop = DecodeLoop(self.generator)
        if self.helper is not None:
            self._replace_helper()

    def _progress(self, rid: str, updates: dict[Any, Update]) -> Reply:
        job = self.jobs[rid]
        parts = [updates.get(key) or Update() for key in job.keys]
        error = next((part.error for part in parts if part.error is not None), None)
        if error is not None:  # one failed choice fails the request: its others leave too
            job.engine.drop(job.keys)
            self.call_failures += 1
            self._finish(rid, carry=None, failed=True)
            return job.replies.failed(job, RequestError("request", error, 500))
        for index, part in enumerate(parts):
            if part.result is not None:
                job.results[index] = part.result
                self.call_tokens += part.result.generated_tokens
        if len(job.results) == len(job.keys):
            self._finish(rid, parts[0].carry, failed=False)
            return job.replies.finished(job, parts)
        reply = job.replies.running(job, parts)
        job.started = job.started or not reply.silent
        return reply

    def _finish(self, rid: str, carry: Carry | None, failed: bool) -> None:
        job = self.jobs[rid]
        if failed or carry is None or job.session is None:
            self._release(rid)
            return
        if job.end_session:
            self.sessions.end(job.session)
        else:
            self.sessions.put(job.session, carry)
        del self.jobs[rid]  # after the store: if it fails, the job is failed as it should be

    def _release(self, rid: str) -> None:
        """Forget a job whose request did not complete: its session keeps its old state."""
        job = self.jobs.pop(rid)
        if job.session is not None:
            self.sessions.release(job.session)

    def _abandon(self, gone: set[str]) -> None:
        """Jobs TorchServe stopped sending: their clients went away."""
        if not gone:
            return
        for rid in gone:
            self.jobs[rid].engine.drop(self.jobs[rid].keys)
            self._release(rid)
        logger.info("dropped %d rows whose clients went away", len(gone))

    def _respond(self, replies: list[Reply]) -> list[Any]:
        """Bodies for TorchServe, with each job's status and whether its stream goes on."""
        for index, reply in enumerate(replies):
            if reply.silent:
                withhold(self.context, index)
                continue
            if reply.status != 200:
                phrase = PHRASES.get(reply.status, "Error")
                self.context.set_response_status(reply.status, phrase, idx=index)
            if reply.content_type:
                self.context.set_response_content_type(index, reply.content_type)
        # TorchServe calls criterion(body) per job after this method returns: False keeps a
        # job streaming, True ends its stream, None sends a whole (unchunked) response.
        self.context.stopping_criteria = [Decision(reply.more) for reply in replies]
        return [reply.body for reply in replies]

    def _record(self, replies: list[Reply], seconds: float) -> None:
        bad = sum(400 <= reply.status < 500 for reply in replies)
        self.record_call(len(replies), bad, self.call_failures, seconds)
        if self.call_tokens:
            self.add_counter(METRIC_GENERATED_TOKENS, self.call_tokens)
        self.set_gauge(METRIC_ACTIVE_ROWS, self.rows)
        self.set_gauge(METRIC_ACTIVE_SESSIONS, len(self.sessions))
        evicted = self.sessions.evictions - self.evictions_reported
        if evicted:
            self.add_counter(METRIC_SESSION_EVICTIONS, evicted)
            self.evictions_reported = self.sessions.evictions
