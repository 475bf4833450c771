"""The TorchServe seam: one base class that turns a TorchServe batch into typed requests.

TorchServe fails *every* request of a batch with 503 when a handler raises, so this class
never lets an exception escape: each request is parsed on its own (bad ones get their own
4xx), the valid ones run together in one forward pass, and if that pass fails the rows are
retried one by one so a single poisonous request cannot spoil its neighbours.
Subclasses implement `load`, `parse` and `infer`; everything TorchServe-specific stays here.
"""

from __future__ import annotations

import logging
import os
import time
from collections.abc import Callable, Sequence
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


class BatchHandler(BaseHandler):
    """Base for our model handlers: per-request validation, one batched pass, metrics."""

    def load(self, model_dir: str, device: torch.device, options: dict[str, Any]) -> None:
        """Load the model artifact from the unpacked archive folder."""
        raise NotImplementedError

    def parse(self, body: Any) -> Any:
        """Validate one request body into a typed request; raise RequestError if bad."""
        raise NotImplementedError

    def infer(self, requests: Sequence[Any], indices: Sequence[int]) -> list[Any]:
        """Answer valid requests (``indices`` are their positions in the TorchServe batch)."""
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

    def preprocess(self, data: list[dict[str, Any]]) -> list[Any]:
        """Parse each row on its own: a RequestError in the list marks a bad request."""
        parsed: list[Any] = []
        for index, row in enumerate(data):
            try:
                parsed.append(read_request(self.context, index, row, self.parse))
            except RequestError as error:
                parsed.append(error)
        return parsed

    def inference(self, parsed: list[Any]) -> list[Any]:
        indices = [i for i, item in enumerate(parsed) if not isinstance(item, RequestError)]
        results: list[Any] = list(parsed)
        if not indices:
            return results
        valid = [parsed[i] for i in indices]
        try:
            answers = self.infer(valid, indices)
        except Exception:
            logger.exception("batch of %d failed; retrying its requests one by one", len(valid))
            answers = [
                self._infer_alone(request, index)
                for request, index in zip(valid, indices, strict=True)
            ]
        for index, answer in zip(indices, answers, strict=True):
            results[index] = answer
        return results

    def _infer_alone(self, request: Any, index: int) -> Any:
        try:
            return self.infer([request], [index])[0]
        except RequestError as error:
            return error
        except Exception:
            logger.exception("request %d failed alone too", index)
            return RequestError("request", "could not be processed (internal error)", 500)

    def postprocess(self, results: list[Any]) -> list[Any]:
        """Errors become JSON bodies with their own status; answers pass through as JSON."""
        out = []
        for index, result in enumerate(results):
            if isinstance(result, RequestError):
                phrase = PHRASES.get(result.status, "Error")
                self.context.set_response_status(result.status, phrase, idx=index)
                out.append(result.to_json())
            else:
                out.append(result)
        return out

    def handle(self, data: list[dict[str, Any]], context: Any) -> list[Any]:
        started = time.perf_counter()
        self.context = context
        with self.drain_gate.batch() as draining:
            if draining:
                parsed = [STOPPING] * len(data)
                responses = self.postprocess(parsed)
            else:
                parsed, responses = self._respond(data)
        self._record_metrics(parsed, responses, time.perf_counter() - started)
        return responses

    def _respond(self, data: list[dict[str, Any]]) -> tuple[list[Any], list[Any]]:
        try:
            parsed = self.preprocess(data)
            return parsed, self.postprocess(self.inference(parsed))
        except Exception:  # a bug of ours must not become a batch-wide 503
            logger.exception("handler failed")
            error = RequestError("request", "could not be processed (internal error)", 500)
            parsed = [error] * len(data)
            return parsed, self.postprocess(parsed)

    def _record_metrics(self, parsed: list[Any], responses: list[Any], seconds: float) -> None:
        bad = sum(isinstance(item, RequestError) and item.status < 500 for item in parsed)
        failed = sum(isinstance(r, dict) and r.get("code") == 500 for r in responses)
        self.record_call(len(parsed), bad, failed, seconds)

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
