"""The sentiment endpoint through a real TorchServe: answers, batching, bad input, keys."""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest
import requests
from prometheus_client.parser import text_string_to_metric_families

from models.classifier_predictor import ClassifierPredictor
from serving.polling import poll_until
from training.data import load_sentiment

from .conftest import archived_predictor

pytestmark = pytest.mark.integration


@pytest.fixture(scope="module")
def dev_sentences() -> list[str]:
    return load_sentiment("sst2")["dev"]["sentence"][:48]


@pytest.fixture(scope="module")
def local_predictor(tiny_model_store: Path, tmp_path_factory) -> ClassifierPredictor:
    """The archived model loaded in-process with the settings packed beside it (int8 or not):
    the one-by-one reference for served answers."""
    return archived_predictor(
        tiny_model_store / "sentiment.mar", tmp_path_factory.mktemp("unpacked")
    )


def handler_counter(server, name: str) -> float:
    reply = requests.get(f"{server.connection.metrics_url}/metrics", timeout=10)
    reply.raise_for_status()
    return sum(
        sample.value
        for family in text_string_to_metric_families(reply.text)
        for sample in family.samples
        if sample.name.startswith(name) and sample.labels.get("ModelName") == "sentiment"
    )


def counter_reaching(server, name: str, target: float, timeout: float = 15.0) -> float:
    """The counter once it reaches ``target``: TorchServe reads handler metrics from the
    worker's log stream, which may trail the answers a little. Fails after ``timeout``."""
    return poll_until(
        lambda: handler_counter(server, name),
        timeout,
        f"{name} of sentiment never reached {target}",
        until=lambda value: value >= target,
    )


def assert_same_prediction(served: dict, expected: dict) -> None:
    assert served["label"] == expected["label"]
    assert served["score"] == pytest.approx(expected["score"], abs=1e-5)
    for label, probability in expected["probabilities"].items():
        assert served["probabilities"][label] == pytest.approx(probability, abs=1e-5)


def test_concurrent_answers_equal_one_by_one_and_batches_form(
    server, dev_sentences, local_predictor
):
    batches_before = handler_counter(server, "HandlerBatches")
    requests_before = handler_counter(server, "HandlerBatchRequests")
    with ThreadPoolExecutor(max_workers=16) as pool:
        replies = list(
            pool.map(lambda s: server.post("sentiment", json={"text": s}), dev_sentences)
        )
    assert [r.status_code for r in replies] == [200] * len(dev_sentences)
    for sentence, reply in zip(dev_sentences, replies, strict=True):
        assert_same_prediction(reply.json(), local_predictor.predict([sentence])[0])
    handled = (
        counter_reaching(server, "HandlerBatchRequests", requests_before + len(dev_sentences))
        - requests_before
    )
    # Each batch logs HandlerBatches before HandlerBatchRequests (handlers/base.py) and the
    # frontend reads a worker's lines in order: the batch count is complete by now.
    batches = handler_counter(server, "HandlerBatches") - batches_before
    assert handled == len(dev_sentences)
    assert batches < handled, "16 concurrent clients should have been served in batches > 1"


def test_answer_shape_for_text_texts_and_plain_body(server, local_predictor):
    single = server.post("sentiment", json={"text": "a gripping , funny movie"})
    assert single.status_code == 200
    body = single.json()
    assert body["label"] in ("negative", "positive")
    assert set(body["probabilities"]) == {"negative", "positive"}
    assert sum(body["probabilities"].values()) == pytest.approx(1.0, abs=1e-5)
    assert body["score"] == pytest.approx(body["probabilities"][body["label"]])

    texts = ["dull and lifeless", "a triumph", "fine"]
    many = server.post("sentiment", json={"texts": texts})
    assert many.status_code == 200
    for served, expected in zip(many.json(), local_predictor.predict(texts), strict=True):
        assert_same_prediction(served, expected)

    plain = server.post("sentiment", data=b"a triumph", headers={"Content-Type": "text/plain"})
    assert plain.status_code == 200
    assert_same_prediction(plain.json(), local_predictor.predict(["a triumph"])[0])


BAD_REQUESTS = [
    ({"data": b"", "headers": {"Content-Type": "text/plain"}}, "body"),  # empty: the body's fault
    ({"data": b'{"text": ', "headers": {"Content-Type": "application/json"}}, "body"),
    ({"json": {"text": 42}}, "text"),
    ({"json": {"texts": ["fine", None]}}, "texts[1]"),
    ({"json": {"text": "x" * 5000}}, "text"),
    ({"json": {"text": "ok", "mood": "happy"}}, "mood"),
    ({"data": b"\xff\xfe\xfa", "headers": {"Content-Type": "application/octet-stream"}}, "body"),
]


def test_bad_inputs_get_400_naming_the_field_and_spare_their_batch(server, local_predictor):
    good = ["an utterly charming film", "a dreary mess"] * 6
    jobs = [("good", {"json": {"text": t}}, t) for t in good]
    jobs += [("bad", kwargs, field) for kwargs, field in BAD_REQUESTS]
    jobs = jobs[::2] + jobs[1::2]  # interleave so bad and good requests share batches

    def send(job):
        return job, server.post("sentiment", **job[1])

    with ThreadPoolExecutor(max_workers=16) as pool:
        results = list(pool.map(send, jobs))
    for (kind, _, detail), reply in results:
        if kind == "good":
            assert reply.status_code == 200, reply.text
            assert_same_prediction(reply.json(), local_predictor.predict([detail])[0])
        else:
            assert reply.status_code == 400, reply.text
            assert reply.json()["field"] == detail
            assert detail in reply.json()["error"]
    # The workers survived: a normal request still works.
    assert server.post("sentiment", json={"text": "still alive"}).status_code == 200


def test_requests_without_the_right_key_are_refused(server):
    for key in (None, "not-the-key", server.connection.management_key):
        reply = server.post("sentiment", key=key, json={"text": "let me in"})
        assert reply.status_code in (400, 401, 403), (key, reply.status_code)
    assert server.post("sentiment", json={"text": "let me in"}).status_code == 200


def test_explain_over_http_returns_the_gates_computed_in_process(server, local_predictor):
    from models.gates import explain_sentiment

    text = "a gripping , funny movie"
    reply = server.post("sentiment", json={"text": text, "explain": True})
    assert reply.status_code == 200, reply.text
    served = reply.json()
    expected = explain_sentiment(local_predictor, text, layer=0)
    assert served["explanation"] == expected
    assert [t["piece"] for t in served["explanation"]["tokens"]][:2] == ["a", "gripping"]
