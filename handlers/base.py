"""The batching handler: one TorchServe batch of requests, one forward pass.

TorchServe fails *every* request of a batch with 503 when a handler raises, so this class
never lets an exception escape: each request is parsed on its own (bad ones get their own
4xx), the valid ones run together in one forward pass, and if that pass fails the rows are
retried one by one so a single poisonous request cannot spoil its neighbours.
Subclasses implement `load`, `parse` and `infer`; what TorchServe asks of every handler is in
the common base, handlers/torchserve.py.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Sequence
from typing import Any

from handlers.schema import RequestError
from handlers.torchserve import INTERNAL, STOPPING, Reply, ServedHandler, read_request

logger = logging.getLogger(__name__)


class BatchHandler(ServedHandler):
    """Base for handlers that answer a batch at once: per-request validation, one batched
    pass, metrics."""

    def parse(self, body: Any) -> Any:
        """Validate one request body into a typed request; raise RequestError if bad."""
        raise NotImplementedError

    def infer(self, requests: Sequence[Any], indices: Sequence[int]) -> list[Any]:
        """Answer valid requests (``indices`` are their positions in the TorchServe batch)."""
        raise NotImplementedError

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
            return INTERNAL

    def postprocess(self, results: list[Any]) -> list[Reply]:
        """Errors become JSON bodies with their own status; answers pass through as JSON."""
        return [
            Reply.error(result) if isinstance(result, RequestError) else Reply(result)
            for result in results
        ]

    def handle(self, data: list[dict[str, Any]], context: Any) -> list[Any]:
        started = time.perf_counter()
        self.context = context
        with self.drain_gate.batch() as draining:
            if draining:
                parsed = [STOPPING] * len(data)
                replies = self.postprocess(parsed)
            else:
                parsed, replies = self._answer(data)
        bad = sum(isinstance(item, RequestError) and item.status < 500 for item in parsed)
        failed = sum(reply.status == 500 for reply in replies)
        self.record_call(len(parsed), bad, failed, time.perf_counter() - started)
        return self.send(replies)

    def _answer(self, data: list[dict[str, Any]]) -> tuple[list[Any], list[Reply]]:
        """Each row parsed (a request, or its RequestError) and its reply."""
        try:
            parsed = self.preprocess(data)
            return parsed, self.postprocess(self.inference(parsed))
        except Exception:  # a bug of ours must not become a batch-wide 503
            logger.exception("handler failed")
            parsed = [INTERNAL] * len(data)
            return parsed, self.postprocess(parsed)
