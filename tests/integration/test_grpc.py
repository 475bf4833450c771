"""TorchServe's gRPC inference API against HTTP on the same server: same answers, same key.

What TorchServe 0.12 does differently over gRPC is pinned here (serving/grpc_client.py says
why): our handler's 4xx arrive as gRPC OK with our JSON error, and a chunked LM answer is cut.
StreamPredictions is not tried: on a non-streamed answer it kills the worker (a frontend
NullPointerException), which would disturb the shared server of the other tests.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import grpc
import pytest

from serving.grpc_client import GrpcClient, GrpcError

from .conftest import idle_lm

pytestmark = pytest.mark.integration

# Short enough that the LM answers it in ONE handler call (16 decode steps per call in
# handlers/lm/model-config.yaml: 5 prompt characters, then the tokens), so it comes back whole.
SHORT_SEEDED = {"prompt": "KING:", "max_new_tokens": 8, "temperature": 1.0, "top_p": 0.9}
LONG_SEEDED = {"prompt": "ROMEO:", "max_new_tokens": 40, "temperature": 1.0, "seed": 1234}
REFUSED = "Token Authorization failed"


def address(server) -> str:
    return f"{server.config.host}:{server.config.grpc_inference_port}"


@pytest.fixture(scope="module")
def client(server) -> Iterator[GrpcClient]:
    with GrpcClient(address(server), server.connection.inference_key, timeout=60) as made:
        yield made


def http_answer(server, model: str, body: bytes) -> tuple[int, Any]:
    reply = server.post(model, data=body)
    return reply.status_code, reply.json()


def assert_close(grpc_answer: Any, http: Any, tolerance: float = 1e-6) -> None:
    """The same JSON, numbers within ``tolerance`` (probabilities of two separate batches)."""
    if isinstance(http, dict):
        assert isinstance(grpc_answer, dict) and grpc_answer.keys() == http.keys()
        for key, value in http.items():
            assert_close(grpc_answer[key], value, tolerance)
    elif isinstance(http, list):
        assert isinstance(grpc_answer, list) and len(grpc_answer) == len(http)
        for mine, theirs in zip(grpc_answer, http, strict=True):
            assert_close(mine, theirs, tolerance)
    elif isinstance(http, float):
        assert grpc_answer == pytest.approx(http, abs=tolerance)
    else:
        assert grpc_answer == http


def test_ping_with_the_key_is_healthy(client):
    assert client.ping()["status"] == "Healthy"


@pytest.mark.parametrize(
    "body",
    [
        b'{"text": "a gripping , funny movie"}',
        b'{"texts": ["dull and lifeless", "a triumph", "neither here nor there"]}',
        b'{"text": "moving", "explain": true}',
        b"a plain-text body is one sentence too",
    ],
)
def test_sentiment_answer_equals_http(server, client, body):
    status, http = http_answer(server, "sentiment", body)
    assert status == 200, http
    assert_close(json.loads(client.predict("sentiment", body)), http)


@pytest.mark.parametrize("seed", [1, 1234])
def test_short_seeded_generation_equals_http(server, client, seed):
    body = json.dumps({**SHORT_SEEDED, "seed": seed}).encode()
    status, http = http_answer(server, "lm", body)
    assert status == 200, http
    assert http["generated_tokens"] == SHORT_SEEDED["max_new_tokens"]
    # One handler call answers it only in an idle loop (a newcomer beside running rows starts
    # a call later): whatever earlier tests left running must have ended first.
    idle_lm(server)
    assert json.loads(client.predict("lm", body)) == http


def test_a_long_generation_comes_whole_over_grpc(server, client):
    """More than one handler call: the handler sends a non-streamed job nothing until its
    whole answer (handlers/continuous.py `withhold`), so TorchServe 0.12's gRPC job, which
    ends a call after its first chunk, gets the whole answer, the same as over HTTP."""
    body = json.dumps(LONG_SEEDED).encode()
    status, http = http_answer(server, "lm", body)
    assert status == 200 and http["generated_tokens"] == LONG_SEEDED["max_new_tokens"]
    assert json.loads(client.predict("lm", body)) == http


@pytest.mark.parametrize("key", [None, "not-the-key", "management"])
def test_calls_without_the_inference_key_are_refused(server, key):
    """TorchServe's GRPCInterceptor closes the call with PERMISSION_DENIED (HTTP says 401)
    before it reaches a model: no key, a wrong one, and the management key alike (each API
    takes only its own key), and for Ping as well as Predictions."""
    if key == "management":
        key = server.connection.management_key
    with GrpcClient(address(server), key, timeout=30) as stranger:
        for call in (stranger.ping, lambda: stranger.predict("sentiment", b'{"text": "hi"}')):
            with pytest.raises(GrpcError) as refused:
                call()
            assert refused.value.code == grpc.StatusCode.PERMISSION_DENIED
            assert REFUSED in refused.value.details


@pytest.mark.parametrize(
    ("model", "body", "field"),
    [
        ("sentiment", b'{"text": 5}', "text"),
        ("sentiment", b'{"texts": []}', "texts"),
        ("sentiment", b"\xff\xfe not utf-8", "body"),
        ("lm", b'{"prompt": "x", "max_new_tokens": -1}', "max_new_tokens"),
    ],
)
def test_bad_bodies_get_our_json_error_with_grpc_ok(server, client, model, body, field):
    """Our handler's 400 does not become a gRPC status: TorchServe's gRPC job ignores the
    status a handler sets and answers OK, so the JSON error (with its "code") is the answer."""
    status, http = http_answer(server, model, body)
    assert status == 400 and http["field"] == field
    answer = json.loads(client.predict(model, body))
    assert answer == http and answer["code"] == 400


def test_an_unknown_model_is_a_grpc_internal_error(client):
    """TorchServe's own refusals are gRPC statuses; an unknown model is INTERNAL (HTTP 404)."""
    with pytest.raises(GrpcError) as refused:
        client.predict("no-such-model", b'{"text": "hi"}')
    assert refused.value.code == grpc.StatusCode.INTERNAL
    assert "Model not found" in refused.value.details
