"""The TorchServe seam without a server: per-request status, isolation of failures."""

from __future__ import annotations

from http import HTTPStatus
from typing import Any

import pytest

from handlers import drain
from handlers.base import BatchHandler
from handlers.schema import Field, RequestError, validate


class FakeContext:
    """What BatchHandler uses of TorchServe's Context, recorded for assertions."""

    def __init__(self, batch: int) -> None:
        self.statuses: dict[int, tuple[int, str]] = {}
        self.metrics = self
        self.counters: dict[str, float] = {}
        self.request_ids = {i: f"req-{i}" for i in range(batch)}
        self.system_properties = {"model_dir": "/nowhere", "gpu_id": None}
        self.manifest = {"model": {"modelName": "echo"}}
        self.model_yaml_config = {"handler": {"torch_threads": 1}}

    def set_response_status(self, code: int, phrase: str, idx: int) -> None:
        self.statuses[idx] = (code, phrase)

    def add_metric(self, name: str, value: float, unit: str, metric_type: Any = None) -> None:
        self.counters[name] = self.counters.get(name, 0) + value


class EchoHandler(BatchHandler):
    """Echoes "text"; the text "poison" makes any batch containing it raise."""

    def load(self, model_dir, device, options) -> None:
        self.batches: list[int] = []

    def parse(self, body: Any) -> str:
        return validate(body, (Field("text", str, min_length=1),))["text"]

    def infer(self, requests, indices) -> list[Any]:
        self.batches.append(len(requests))
        if "poison" in requests:
            raise RuntimeError("model blew up")
        return [{"echo": text} for text in requests]


@pytest.fixture
def handler() -> EchoHandler:
    instance = EchoHandler()
    instance.initialize(FakeContext(0))
    return instance


def run(handler: EchoHandler, bodies: list[Any]) -> tuple[list[Any], FakeContext]:
    context = FakeContext(len(bodies))
    return handler.handle([{"body": body} for body in bodies], context), context


def test_valid_requests_run_in_one_batch(handler):
    answers, context = run(handler, [{"text": "a"}, {"text": "b"}, b'{"text": "c"}'])
    assert answers == [{"echo": "a"}, {"echo": "b"}, {"echo": "c"}]
    assert handler.batches == [3]
    assert context.statuses == {}
    assert context.counters["HandlerBatches"] == 1
    assert context.counters["HandlerBatchRequests"] == 3


def test_bad_requests_get_their_own_400_and_the_rest_still_run(handler):
    answers, context = run(handler, [{"text": "a"}, {"text": 1}, b"{broken", {"text": "d"}])
    assert answers[0] == {"echo": "a"} and answers[3] == {"echo": "d"}
    assert context.statuses == {1: (400, "Bad Request"), 2: (400, "Bad Request")}
    assert answers[1]["field"] == "text" and answers[2]["field"] == "body"
    assert handler.batches == [2]
    assert context.counters["HandlerBadRequests"] == 2


def test_a_failing_request_is_isolated_by_retrying_one_by_one(handler):
    answers, context = run(handler, [{"text": "a"}, {"text": "poison"}, {"text": "c"}])
    assert answers[0] == {"echo": "a"} and answers[2] == {"echo": "c"}
    assert context.statuses == {1: (500, "Internal Server Error")}
    assert answers[1]["code"] == 500
    assert handler.batches == [3, 1, 1, 1]
    assert context.counters["HandlerFailedRequests"] == 1


def test_a_request_error_raised_during_inference_keeps_its_status(handler):
    def refuse(requests, indices):
        raise RequestError("text", "is too long for this model", 413)

    handler.infer = refuse
    answers, context = run(handler, [{"text": "a"}])
    # the standard library's phrase for 413 (its name changes with the RFCs it follows)
    assert context.statuses == {0: (413, HTTPStatus.REQUEST_ENTITY_TOO_LARGE.phrase)}
    assert answers[0]["field"] == "text"


def test_broken_metrics_never_break_answers(handler):
    context = FakeContext(1)

    def explode(*args, **kwargs):
        raise RuntimeError("metrics backend down")

    context.add_metric = explode
    assert handler.handle([{"body": {"text": "a"}}], context) == [{"echo": "a"}]


def test_a_draining_server_answers_503_without_running_the_batch(tmp_path, monkeypatch):
    monkeypatch.setenv(drain.DRAIN_DIR_ENV, str(tmp_path))
    handler = EchoHandler()
    handler.initialize(FakeContext(0))
    drain.begin(tmp_path)
    answers, context = run(handler, [{"text": "a"}, {"text": "b"}])
    assert context.statuses == {0: (503, "Service Unavailable"), 1: (503, "Service Unavailable")}
    assert all(answer["field"] == "server" for answer in answers)
    assert handler.batches == []
    assert context.counters["HandlerBadRequests"] == 0
