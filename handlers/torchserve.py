"""The TorchServe seam common to our handlers: `ServedHandler` loads the model with its
options from the model config, reads each job's body, and sends back one `Reply` per job.

Both kinds of handler build on it: `handlers.base.BatchHandler` (one forward pass per batch)
and `handlers.continuous.ContinuousHandler` (jobs that span calls). Each answers a call with
a list of `Reply`, one per job, and `ServedHandler.send` turns them into what TorchServe
wants: the bodies, with each job's status and content type set on the context. TorchServe
fails *every* job of a call with 503 when a handler raises, so neither lets an exception
escape: a request that cannot be answered gets its own error reply.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Callable
from dataclasses import dataclass
from http import HTTPStatus
from typing import Any, TypeVar

import torch
from ts.metrics.metric_type_enum import MetricTypes
from ts.torch_handler.base_handler import BaseHandler

from handlers.drain import DrainGate
from handlers.schema import RequestError, body_errors, decode_body

logger = logging.getLogger(__name__)
T = TypeVar("T")

# Handler metrics, exported on /metrics when model_metrics_auto_detect=true. Counters only:
# a scraper derives means (batch size, latency) from differences of two scrapes.
METRIC_BATCHES = "HandlerBatches"
METRIC_REQUESTS = "HandlerBatchRequests"
METRIC_LATENCY_MS = "HandlerBatchLatencyMs"
METRIC_BAD_REQUESTS = "HandlerBadRequests"
METRIC_FAILED_REQUESTS = "HandlerFailedRequests"

# The reason phrase TorchServe sends beside a status we set (the standard library's table).
PHRASES = {status.value: status.phrase for status in HTTPStatus}
# The answer to every request a worker has not begun once the server drains for a stop.
STOPPING = RequestError("server", "is stopping; send the request again (to another instance)", 503)
# The answer to a request that failed on our side (logged with its traceback).
INTERNAL = RequestError("request", "could not be processed (internal error)", 500)


# Content types TorchServe's frontend decodes into form fields before a handler sees the body.
FORM_TYPES = ("application/x-www-form-urlencoded", "multipart/form-data")
FORM_LOST = (
    "reached the model as form fields, not as sent: TorchServe splits a body typed "
    "application/x-www-form-urlencoded (curl -d's default) into name=value fields and drops "
    "the rest (with curl, add -H 'Content-Type: application/json' or use --json)"
)


def request_body(row: dict[str, Any], content_type: str = "", length: str | None = None) -> Any:
    """The body of one job, as TorchServe hands it over.

    TorchServe puts a body under "body" or "data" depending on how it was sent, except for a
    form content type: its frontend (InferenceRequestHandler.parseRequest, TorchServe 0.12)
    splits such a body into ``name=value`` fields with Netty's form decoder, which drops a
    last part without ``=`` and URL-decodes the rest, and the handler gets only the fields.
    Real fields (``curl -d 'text=a fine film'``) are read as a JSON object of strings; a JSON
    or plain-text body (``curl -d '{"prompt": "ROMEO:"}'``) cannot be rebuilt from what is
    left, so it gets a 400 that says how to send it.
    """
    body = row.get("body")
    body = row.get("data") if body is None else body
    if body is not None or not content_type.lower().startswith(FORM_TYPES):
        return body
    mangled = any(name.lstrip()[:1] in ("{", "[") for name in row)
    if mangled or (not row and length not in (None, "", "0")):
        raise RequestError("body", FORM_LOST)
    return {name: _text(value) for name, value in row.items()} or None


def _text(value: Any) -> str:
    return bytes(value).decode("utf-8") if isinstance(value, (bytes, bytearray)) else str(value)


def header(context: Any, index: int, name: str) -> str | None:
    """Request header ``name`` of job ``index``, whatever its case on the wire."""
    try:
        headers = context.get_all_request_header(index) or {}
    except (AttributeError, IndexError, KeyError, TypeError):
        return None
    wanted = name.lower()
    return next((v for k, v in headers.items() if isinstance(v, str) and k.lower() == wanted), None)


def read_request(context: Any, index: int, row: dict[str, Any], parse: Callable[[Any], T]) -> T:
    """Job ``index``'s body decoded (JSON whatever its content type, or text) and ``parse``d;
    a RequestError if it cannot be."""
    content_type = header(context, index, "Content-Type") or ""
    with body_errors(content_type):
        length = header(context, index, "Content-Length")
        return parse(decode_body(request_body(row, content_type, length)))


def pick_device(properties: dict[str, Any]) -> torch.device:
    """CUDA when TorchServe assigned this worker a GPU, else CPU."""
    gpu_id = properties.get("gpu_id")
    if torch.cuda.is_available() and gpu_id is not None:
        return torch.device(f"cuda:{gpu_id}")
    return torch.device("cpu")


@dataclass
class Reply:
    """One job's answer in one call: the one contract between our handlers and `send`."""

    body: Any
    # Continuous batching only (handlers/continuous.py): True, chunks follow; False, the last
    # chunk; None, a whole response (the only kind a batch handler sends).
    more: bool | None = None
    status: int = 200
    content_type: str | None = None  # None: TorchServe's default
    # Nothing to send in this call: the job gets no answer at all, so TorchServe sends it
    # again in the next call and its client has seen no status line yet (continuous only).
    silent: bool = False

    @classmethod
    def error(cls, error: RequestError) -> Reply:
        return cls(error.to_json(), status=error.status)


class ServedHandler(BaseHandler):
    """Base of our handlers: the model's options, request bodies, replies, metrics."""

    model_name = ""  # the served name, from TorchServe's manifest (`initialize`)

    def load(self, model_dir: str, device: torch.device, options: dict[str, Any]) -> None:
        """Load the model artifact from the unpacked archive folder; ``options`` is the model
        config's ``handler`` section."""
        raise NotImplementedError

    def initialize(self, context: Any) -> None:
        properties = context.system_properties
        self.model_yaml_config = context.model_yaml_config or {}
        options = dict(self.model_yaml_config.get("handler") or {})
        # Threads per worker come from the model config: on small machines several 1-thread
        # workers beat one worker that spreads over every core.
        threads = int(options.get("torch_threads", os.environ.get("TORCH_THREADS", 1)))
        torch.set_num_threads(threads)
        self.device = pick_device(properties)
        self.model_name = context.manifest["model"]["modelName"]
        self.load(properties["model_dir"], self.device, options)
        self.drain_gate = DrainGate.from_environment()
        self.initialized = True
        logger.info("%s ready on %s with %d thread(s)", self.model_name, self.device, threads)

    def send(self, replies: list[Reply]) -> list[Any]:
        """The bodies for TorchServe, with each job's status and content type set."""
        for index, reply in enumerate(replies):
            if reply.silent:
                continue
            if reply.status != 200:
                phrase = PHRASES.get(reply.status, "Error")
                self.context.set_response_status(reply.status, phrase, idx=index)
            if reply.content_type:
                self.context.set_response_content_type(index, reply.content_type)
        return [reply.body for reply in replies]

    def record_call(self, requests: int, bad: int, failed: int, seconds: float) -> None:
        """The handler counters of one call (a batch, or one step group of a decode loop)."""
        self.add_counter(METRIC_BATCHES, 1)
        self.add_counter(METRIC_REQUESTS, requests)
        self.add_counter(METRIC_LATENCY_MS, round(seconds * 1000.0, 3), unit="ms")
        self.add_counter(METRIC_BAD_REQUESTS, bad)
        self.add_counter(METRIC_FAILED_REQUESTS, failed)

    def add_counter(self, name: str, value: float, unit: str = "count") -> None:
        """Add to a per-model counter; metrics must never break an answer."""
        self._add_metric(name, value, unit, MetricTypes.COUNTER)

    def set_gauge(self, name: str, value: float, unit: str = "count") -> None:
        self._add_metric(name, value, unit, MetricTypes.GAUGE)

    def _add_metric(self, name: str, value: float, unit: str, kind: MetricTypes) -> None:
        try:
            self.context.metrics.add_metric(name, value, unit, metric_type=kind)
        except Exception:
            logger.debug("metric %s not recorded", name, exc_info=True)
