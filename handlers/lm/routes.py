"""The LM's two APIs on one engine: which API a job speaks, its request read, and how its
answers look on the wire.

The path after ``/predictions/lm/1.0/`` (TorchServe's ``url_path`` header) picks the API:
none for ours (JSON, or NDJSON lines when streaming; handlers/lm/api.py), ``v1/completions``
and ``v1/models`` for OpenAI's (JSON, or Server-Sent Events; handlers/lm/openai_api.py), and
the tokenizer's routes (handlers/lm/tokenize_api.py), answered at once beside the decode loop.
The handler decides *when* a job gets a chunk, an answer or an error; the `Replies` classes
here decide *what* it looks like (and its content type).
"""

from __future__ import annotations

import json
from functools import partial
from typing import Any

from handlers.continuous import SILENT, Job
from handlers.lm import openai_api, tokenize_api
from handlers.lm.api import LMRequest, check_vocabulary, parse_generation
from handlers.schema import RequestError
from handlers.torchserve import Reply, read_request
from models.decode_loop import Update
from models.tokenizer import Tokenizer


def ndjson(payload: dict[str, Any]) -> str:
    return json.dumps(payload) + "\n"


def chunk_logprobs(job: Job, index: int, part: Update) -> dict[str, Any]:
    """``{"logprobs": ...}`` for a streamed chunk's tokens (when it has some; only rows that
    asked have any), with offsets continuing where the choice's earlier chunks ended."""
    if not part.logprobs:
        return {}
    offset = job.offsets.get(index, 0)
    job.offsets[index] = offset + sum(len(entry.token) for entry in part.logprobs)
    return {"logprobs": openai_api.logprobs_body(part.logprobs, offset)}


class Replies:
    """What both APIs share: an error before anything was sent is a whole response with its
    status; one after that ends the stream (or the chunked answer) in the API's shape.

    ``running`` and ``finished`` get what this call produced for each of the job's choices
    (one, except for OpenAI's prompt lists and ``n``); finished choices are in ``job.results``.
    """

    content_type: str | None = None  # of chunks and answers
    error_content_type: str | None = None  # of a refusal

    def error_body(self, error: RequestError) -> dict[str, Any]:
        raise NotImplementedError

    def line(self, payload: dict[str, Any]) -> str:
        """One streamed unit of ``payload``."""
        raise NotImplementedError

    def refused(self, error: RequestError) -> Reply:
        return Reply(self.error_body(error), None, error.status, self.error_content_type)

    def failed(self, job: Job, error: RequestError) -> Reply:
        """Before a chunk went out: a whole response with the error's status (non-streamed
        requests never send a chunk, see `SILENT`). After: a final line that says so."""
        if not job.started:
            return self.refused(error)
        return Reply(self.last_line(error), more=False, content_type=self.content_type)

    def last_line(self, error: RequestError) -> str:
        """The line that ends a stream that failed after its status line (200) went out."""
        raise NotImplementedError


class NativeReplies(Replies):
    """Our API: a JSON answer, or NDJSON lines when streaming (the last with finish_reason)."""

    content_type = None  # TorchServe's default, as before continuous batching

    def error_body(self, error: RequestError) -> dict[str, Any]:
        return error.to_json()

    def line(self, payload: dict[str, Any]) -> str:
        return ndjson(payload)

    def last_line(self, error: RequestError) -> str:
        return ndjson({**error.to_json(), "finish_reason": "error"})

    def running(self, job: Job, parts: list[Update]) -> Reply:
        text = parts[0].text
        if not job.stream or not text:
            return SILENT
        payload: dict[str, Any] = {"text": text, **chunk_logprobs(job, 0, parts[0])}
        if job.session and not job.announced:
            payload["session"] = job.announced = job.session
        return Reply(ndjson(payload), more=True, content_type=self.content_type)

    def finished(self, job: Job, parts: list[Update]) -> Reply:
        result, text = job.results[0], parts[0].text
        whole, logprobs = openai_api.choice_text(result)
        answer: dict[str, Any] = {
            "text": whole,
            "generated_tokens": result.generated_tokens,
            "finish_reason": result.finish_reason,
        }
        if logprobs is not None:
            answer["logprobs"] = logprobs
        if job.session:
            answer["session"] = job.session
        if job.stream:
            answer = {**answer, "text": text, **chunk_logprobs(job, 0, parts[0])}
        body = ndjson(answer) if job.stream else answer
        return Reply(body, more=False if job.started else None, content_type=self.content_type)


class OpenAIReplies(Replies):
    """OpenAI's completions: a `text_completion` object, or `data: {...}` events and
    `data: [DONE]`; errors as ``{"error": {...}}``."""

    error_content_type = openai_api.JSON

    def __init__(self, ids: openai_api.CompletionIds | None, stream: bool) -> None:
        self.ids = ids
        self.content_type = openai_api.EVENT_STREAM if stream else openai_api.JSON

    def error_body(self, error: RequestError) -> dict[str, Any]:
        return openai_api.error_body(error)

    def line(self, payload: dict[str, Any]) -> str:
        return openai_api.event(payload)

    def last_line(self, error: RequestError) -> str:
        return openai_api.event(self.error_body(error)) + openai_api.DONE

    def events(self, job: Job, parts: list[Update]) -> str:
        """One event per choice that has new text or finished in this call."""
        return "".join(
            openai_api.event(self.ids.body([(index, part.text, reason, logprobs.get("logprobs"))]))
            for index, part in enumerate(parts)
            if part.text or part.result is not None
            for reason in [part.result.finish_reason if part.result else None]
            for logprobs in [chunk_logprobs(job, index, part)]
        )

    def running(self, job: Job, parts: list[Update]) -> Reply:
        body = self.events(job, parts) if job.stream else ""
        return Reply(body, more=True, content_type=self.content_type) if body else SILENT

    def finished(self, job: Job, parts: list[Update]) -> Reply:
        if job.stream:
            body = self.events(job, parts) + openai_api.DONE
        else:
            body = self.ids.answer([job.results[index] for index in range(len(parts))])
        return Reply(body, more=False if job.started else None, content_type=self.content_type)


NATIVE = NativeReplies()


def refusals(route: str) -> Replies:
    """How a refusal of a job on ``route`` looks (before its request is read)."""
    return NATIVE if not route else OpenAIReplies(None, stream=False)


def read(
    route: str, context: Any, index: int, row: dict[str, Any], tokenizer: Tokenizer, model: str
) -> LMRequest | Reply:
    """Job ``index``'s generation request, or its whole answer when its route is answered at
    once (``v1/models``, the tokenizer's); a RequestError if it has neither."""
    if route not in openai_api.ROUTES and route not in tokenize_api.ROUTES:
        raise RequestError("url", f"no such route: {route!r}", 404)
    if route == openai_api.MODELS:
        return Reply(openai_api.models_body(model), content_type=openai_api.JSON)
    if route in tokenize_api.ROUTES:
        if tokenize_api.ROUTES[route] == tokenize_api.INFO:
            body = tokenize_api.info(tokenizer)
        else:
            answer = partial(tokenize_api.answer, route, tokenizer=tokenizer)
            body = read_request(context, index, row, answer)
        return Reply(body, content_type=openai_api.JSON)
    parse = openai_api.parse_completion if route == openai_api.COMPLETIONS else parse_generation
    request = read_request(context, index, row, parse)
    for choice in request.choices:
        check_vocabulary(choice, tokenizer.vocab_size)
    return request


def replies(route: str, rid: str, model: str, request: LMRequest, prompt_tokens: int) -> Replies:
    """How the answers of an admitted job look."""
    if route == openai_api.COMPLETIONS:
        ids = openai_api.CompletionIds.new(rid, model, prompt_tokens)
        return OpenAIReplies(ids, request.stream)
    return NATIVE
