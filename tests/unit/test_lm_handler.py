"""The continuous-batching handler against a fake of TorchServe's side of the protocol:
each call carries every running job (new ones with a body, running ones without), and the
handler's stopping criteria decide which responses are chunks, last chunks or whole."""

from __future__ import annotations

import json
from typing import Any

import pytest
import torch

from handlers.drain import DrainGate
from handlers.lm.handler import LMHandler
from models.artifact import save_artifact
from models.language_model import LMConfig, RecurrentLM
from training.data import load_text
from training.train_lm import build_tokenizer


class Frontend:
    """Plays ContinuousBatching.java: keeps jobs until their stream ends, records answers."""

    def __init__(self, handler: LMHandler) -> None:
        self.handler = handler
        self.jobs: dict[str, Any] = {}  # request id -> body (None once it was sent)
        self.sent: dict[str, list[Any]] = {}
        self.statuses: dict[str, int] = {}
        self.finished: dict[str, str] = {}  # "whole" or "stream"
        self.withheld: dict[str, int] = {}  # calls in which a job got no answer at all

    def submit(self, rid: str, body: dict[str, Any]) -> None:
        self.jobs[rid] = body

    def call(self) -> None:
        ids = list(self.jobs)
        context = FakeContext(ids)
        data = [
            {"body": json.dumps(self.jobs[rid]).encode()} if self.jobs[rid] else {} for rid in ids
        ]
        bodies = self.handler.handle(data, context)
        assert len(bodies) == len(ids)
        answered = set(context.request_ids)  # as ts/service.py: only these get an answer
        for index, (rid, body) in enumerate(zip(ids, bodies, strict=True)):
            if index not in answered:  # kept, and sent again (with its body) in the next call
                self.withheld[rid] = self.withheld.get(rid, 0) + 1
                continue
            self.sent.setdefault(rid, []).append(body)
            self.statuses.setdefault(rid, context.statuses.get(index, 200))
            verdict = context.stopping_criteria[index](body)
            if verdict is False:
                self.jobs[rid] = None
            else:
                self.finished[rid] = "whole" if verdict is None else "stream"
                del self.jobs[rid]

    def run(self) -> None:
        while self.jobs:
            self.call()


class FakeContext:
    def __init__(self, ids: list[str]) -> None:
        self.request_ids = dict(enumerate(ids))
        self.statuses: dict[int, int] = {}
        self.stopping_criteria = None
        self.metrics = self

    def get_request_id(self, index: int) -> str:
        return self.request_ids[index]

    def set_response_status(self, code: int, phrase: str, idx: int) -> None:
        self.statuses[idx] = code

    def get_request_header(self, idx: int, key: str) -> str | None:
        return ""  # our own API; the OpenAI route is tested through a real TorchServe

    def set_response_content_type(self, idx: int, value: str) -> None:
        pass

    def add_metric(self, *args, **kwargs) -> None:
        pass


def make_handler(folder, **options) -> LMHandler:
    instance = LMHandler()
    options = {
        "tokens_per_call": 3,
        "step_ahead": True,
        "sessions": {"capacity": 4, "ttl_seconds": 60},
        **options,
    }
    instance.load(str(folder), torch.device("cpu"), options)
    instance.drain_gate = DrainGate(None)
    return instance


@pytest.fixture
def handler(tmp_path) -> LMHandler:
    tokenizer = build_tokenizer(load_text("tinyshakespeare")[:20_000], 0, tmp_path / "char")
    torch.manual_seed(0)
    model = RecurrentLM(LMConfig(tokenizer.vocab_size, embed_dim=8, hidden_dim=16))
    save_artifact(
        tmp_path / "lm", "lm", model.config.as_dict(), model.state_dict(), tokenizer.model_file
    )
    return make_handler(tmp_path / "lm")


def test_answers_are_whole_and_only_streams_are_chunked(handler):
    """A non-streamed job gets no answer until its whole one (so it can still fail with a
    5xx status line); a stream gets a chunk per call with new text."""
    frontend = Frontend(handler)
    frontend.submit("short", {"prompt": "A", "max_new_tokens": 2, "seed": 1})
    frontend.submit("long", {"prompt": "B", "max_new_tokens": 10, "seed": 2})
    frontend.submit("streamed", {"prompt": "B", "max_new_tokens": 10, "seed": 2, "stream": True})
    frontend.run()
    assert frontend.finished == {"short": "whole", "long": "whole", "streamed": "stream"}
    assert frontend.sent["short"][0]["generated_tokens"] == 2
    long = frontend.sent["long"]
    assert len(long) == 1 and long[0]["generated_tokens"] == 10  # 3 + 3 + 3 + 1
    assert frontend.withheld == {"long": 3}
    lines = [json.loads(body) for body in frontend.sent["streamed"] if body]
    assert "".join(line["text"] for line in lines) == long[-1]["text"]
    assert lines[-1]["finish_reason"] == "length" and len(handler.engine.loop) == 0


def test_a_job_the_frontend_stops_sending_leaves_the_loop(handler):
    frontend = Frontend(handler)
    frontend.submit("gone", {"prompt": "A", "max_new_tokens": 50, "session": "new"})
    frontend.submit("stays", {"prompt": "B", "max_new_tokens": 20})
    frontend.call()
    del frontend.jobs["gone"]  # its client hung up
    frontend.call()
    assert "gone" not in handler.engine.loop and len(handler.sessions) == 0
    frontend.run()
    assert frontend.sent["stays"][-1]["generated_tokens"] == 20


def test_an_expired_session_gets_410_and_a_failing_row_a_500_alone(handler, monkeypatch):
    frontend = Frontend(handler)
    frontend.submit("open", {"prompt": "A", "max_new_tokens": 2, "session": "new"})
    frontend.run()
    session = frontend.sent["open"][0]["session"]
    monkeypatch.setattr(handler.sessions, "clock", lambda: 1e9)
    frontend.submit("late", {"prompt": "B", "session": session})
    frontend.submit("fine", {"prompt": "C", "max_new_tokens": 7, "seed": 4})
    frontend.submit("broken", {"prompt": "D", "max_new_tokens": 7, "seed": 5})
    frontend.submit(
        "broken stream", {"prompt": "D", "max_new_tokens": 9, "seed": 6, "stream": True}
    )
    frontend.call()
    assert frontend.sent["broken stream"], "the stream has sent its first chunk"

    def fail(token, tokenizer):
        raise RuntimeError("cannot decode")

    handler.engine.loop.rows["broken"].add = fail
    handler.engine.loop.rows["broken stream"].add = fail
    frontend.run()
    assert frontend.statuses["late"] == 410 and frontend.sent["late"][0]["field"] == "session"
    # Not yet answered: a whole 500. Streaming already: a last line that says it failed.
    assert frontend.statuses["broken"] == 500 and frontend.finished["broken"] == "whole"
    assert frontend.sent["broken"] == [{**frontend.sent["broken"][0], "code": 500}]
    last = json.loads(frontend.sent["broken stream"][-1])
    assert last["finish_reason"] == "error" and "internal error" in last["error"]
    assert frontend.statuses["broken stream"] == 200  # its status line went out with chunk 1
    assert frontend.finished["broken stream"] == "stream"
    assert frontend.sent["fine"][-1]["generated_tokens"] == 7


def test_a_helper_process_decoding_half_the_rows_changes_no_answer(handler, tmp_path):
    requests = {
        f"r{i}": {"prompt": "ROMEO:"[: i % 6 + 1], "max_new_tokens": 4 + 3 * i, "seed": i}
        for i in range(6)
    }
    requests["streamed"] = {"prompt": "B", "max_new_tokens": 9, "seed": 7, "stream": True}
    two = make_handler(tmp_path / "lm", decode_processes=2)
    try:
        answers = []
        for instance in (handler, two):
            frontend = Frontend(instance)
            for rid, body in requests.items():
                frontend.submit(rid, body)
            frontend.call()
            if instance is two:
                assert len(two.engine.helper) > 0 and len(two.engine.loop) > 0  # both decode
            frontend.run()
            streamed = "".join(json.loads(b)["text"] for b in frontend.sent.pop("streamed") if b)
            final = {rid: sent[-1] for rid, sent in frontend.sent.items()}
            answers.append((final, streamed))
    finally:
        two.engine.helper.close()
    assert answers[0] == answers[1]  # how the text is cut into chunks may differ, not the text


def test_stepping_ahead_between_calls_changes_no_answer(handler, tmp_path):
    """With ``step_ahead`` the running rows' next tokens are decoded while the frontend is
    busy; newcomers that join a running loop and a stream get the same text as without it."""
    waiting = make_handler(tmp_path / "lm", step_ahead=False)
    answers = []
    for instance in (handler, waiting):
        frontend = Frontend(instance)
        for i in range(3):
            frontend.submit(f"r{i}", {"prompt": "AB"[: i % 2 + 1], "max_new_tokens": 8, "seed": i})
        frontend.call()
        assert (instance.engine.ahead is not None) == instance.engine.step_ahead
        frontend.submit("late", {"prompt": "C", "max_new_tokens": 5, "seed": 9})
        frontend.submit("streamed", {"prompt": "D", "max_new_tokens": 7, "seed": 3, "stream": True})
        frontend.run()
        streamed = "".join(json.loads(b)["text"] for b in frontend.sent.pop("streamed") if b)
        answers.append(({rid: sent[-1] for rid, sent in frontend.sent.items()}, streamed))
        assert instance.engine.rows == 0 and instance.engine.ahead is None
    assert answers[0] == answers[1] and len(answers[0][0]) == 4


def test_a_dead_helper_process_fails_the_running_rows_and_is_replaced(tmp_path, handler):
    """The helper's running rows end with a 500, the worker's own rows finish; the next
    requests are served, by a new helper among others."""
    two = make_handler(tmp_path / "lm", decode_processes=2)
    try:
        frontend = Frontend(two)
        for i in range(4):
            frontend.submit(f"r{i}", {"prompt": "A", "max_new_tokens": 40, "seed": i})
        frontend.call()
        assert len(two.engine.helper) > 0
        two.engine.helper.process.kill()
        two.engine.helper.process.join()
        frontend.run()
        helper_rows = {rid for rid, job_sent in frontend.sent.items() if job_sent[-1].get("code")}
        assert helper_rows and len(helper_rows) < 4  # only the helper's rows failed
        for rid, sent in frontend.sent.items():
            assert sent[-1]["code"] == 500 if rid in helper_rows else sent[-1]["text"]
            assert frontend.statuses[rid] == (500 if rid in helper_rows else 200)
        frontend.submit("after", {"prompt": "B", "max_new_tokens": 5, "seed": 1})
        frontend.submit("after2", {"prompt": "C", "max_new_tokens": 5, "seed": 2})
        frontend.run()
        assert frontend.sent["after"][-1]["generated_tokens"] == 5
        assert frontend.sent["after2"][-1]["generated_tokens"] == 5
        assert two.engine.helper.process.is_alive() and two.engine.rows == 0
    finally:
        two.engine.helper.close()


def test_a_failing_session_store_fails_its_requests_with_a_5xx_or_a_last_error_line(
    handler, monkeypatch
):
    def broken(*args):
        raise RuntimeError("session store down")

    monkeypatch.setattr(handler.sessions, "put", broken)
    frontend = Frontend(handler)
    frontend.submit("plain", {"prompt": "A", "max_new_tokens": 8, "seed": 1, "session": "new"})
    body = {"prompt": "B", "max_new_tokens": 8, "seed": 2, "session": "new", "stream": True}
    frontend.submit("streamed", body)
    frontend.run()
    assert frontend.statuses["plain"] == 500 and frontend.finished["plain"] == "whole"
    last = json.loads(frontend.sent["streamed"][-1])
    assert last["finish_reason"] == "error" and frontend.finished["streamed"] == "stream"
    assert len(handler.sessions) == 0 and handler.engine.rows == 0
