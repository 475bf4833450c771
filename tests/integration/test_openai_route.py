"""The OpenAI-compatible completions route, driven by the official `openai` client against a
real TorchServe: same answers as our own route, SSE streaming, errors the client understands."""

from __future__ import annotations

import openai
import pytest
import requests

from models.artifact import load_artifact
from models.tokenizer import Tokenizer
from tests.text_pieces import printable_piece
from training.archive import unpack_archive

pytestmark = pytest.mark.integration

SEEDED = {"prompt": "ROMEO:", "max_tokens": 30, "temperature": 1.0, "top_p": 0.9, "seed": 11}


@pytest.fixture(scope="module")
def client(server) -> openai.OpenAI:
    base = f"{server.connection.inference_url}/predictions/lm/1.0/v1"
    return openai.OpenAI(base_url=base, api_key=server.connection.inference_key, max_retries=0)


def native(server, **payload) -> dict:
    reply = server.post("lm", json=payload)
    assert reply.status_code == 200, reply.text
    return reply.json()


@pytest.fixture(scope="module")
def tokenizer(tiny_model_store, tmp_path_factory) -> Tokenizer:
    """The served model's tokenizer, from its archive."""
    unpacked = unpack_archive(tiny_model_store / "lm.mar", tmp_path_factory.mktemp("lm"))
    return load_artifact(unpacked).tokenizer


def test_a_completion_equals_the_native_answer_for_the_same_parameters(server, client, tokenizer):
    completion = client.completions.create(model="lm", **SEEDED)
    ours = native(server, prompt="ROMEO:", max_new_tokens=30, temperature=1.0, top_p=0.9, seed=11)
    choice = completion.choices[0]
    assert completion.object == "text_completion" and completion.model == "lm"
    assert choice.text == ours["text"] and choice.finish_reason == ours["finish_reason"]
    assert completion.usage.completion_tokens == ours["generated_tokens"]
    assert completion.usage.prompt_tokens == len(tokenizer.encode(SEEDED["prompt"]))
    assert completion.usage.total_tokens == completion.usage.prompt_tokens + 30
    stop = printable_piece(ours["text"], 5, 2)
    stopped = client.completions.create(model="lm", **SEEDED, stop=[stop])
    assert stopped.choices[0].finish_reason == "stop"
    assert stopped.choices[0].text == ours["text"][: ours["text"].index(stop)]


def test_streamed_events_concatenate_to_the_completion(server, client):
    whole = client.completions.create(model="lm", **SEEDED).choices[0]
    events = list(client.completions.create(model="lm", **SEEDED, stream=True))
    assert len(events) > 1
    assert "".join(e.choices[0].text for e in events) == whole.text
    assert events[-1].choices[0].finish_reason == whole.finish_reason
    raw = requests.post(
        f"{server.connection.inference_url}/predictions/lm/1.0/v1/completions",
        json={**SEEDED, "stream": True},
        headers=server.connection.inference_headers(),
        timeout=60,
    )
    assert raw.headers["Content-Type"].startswith("text/event-stream")
    assert raw.text.endswith("data: [DONE]\n\n")


def test_prompt_lists_and_n_give_each_choice_its_own_seeded_answer(server, client):
    """Choice i * n + j continues prompt i with seed + j, alone or streamed."""
    prompts, n = ["ROMEO:", "JULIET:\n"], 2
    request = {**SEEDED, "prompt": prompts, "n": n, "max_tokens": 12}
    completion = client.completions.create(model="lm", **request)
    assert [c.index for c in completion.choices] == [0, 1, 2, 3]
    for choice in completion.choices:
        prompt, j = prompts[choice.index // n], choice.index % n
        ours = native(
            server, prompt=prompt, max_new_tokens=12, temperature=1.0, top_p=0.9, seed=11 + j
        )
        assert choice.text == ours["text"] and choice.finish_reason == ours["finish_reason"]
    assert completion.usage.completion_tokens == 4 * 12
    assert completion.choices[0].text != completion.choices[1].text  # seeds 11 and 12

    streamed: dict[int, str] = {}
    reasons: dict[int, list] = {}
    for event in client.completions.create(model="lm", **request, stream=True):
        for choice in event.choices:
            streamed[choice.index] = streamed.get(choice.index, "") + choice.text
            if choice.finish_reason:
                reasons.setdefault(choice.index, []).append(choice.finish_reason)
    assert streamed == {c.index: c.text for c in completion.choices}
    assert reasons == {c.index: [c.finish_reason] for c in completion.choices}


@pytest.mark.parametrize(
    ("extra", "param"),
    [
        ({"max_tokens": 0}, "max_tokens"),
        ({"temperature": -1}, "temperature"),
        ({"n": 9}, "n"),
        ({"prompt": ["a", "b", "c"], "n": 6}, "n"),  # 18 choices: more than 16
        ({"logprobs": 6}, "logprobs"),
        ({"prompt": ["a"] * 9}, "prompt"),
    ],
)
def test_bad_parameters_raise_the_clients_bad_request_naming_them(client, extra, param):
    with pytest.raises(openai.BadRequestError) as error:
        client.completions.create(model="lm", **{**SEEDED, **extra})
    assert error.value.status_code == 400
    assert error.value.body["param"] == param, error.value.body


def test_models_are_listed_and_a_wrong_key_is_refused(server, client):
    assert [m.id for m in client.models.list()] == ["lm"]
    stranger = openai.OpenAI(base_url=client.base_url, api_key="not-the-key", max_retries=0)
    # TorchServe checks keys before our code runs and answers 400, not OpenAI's 401.
    with pytest.raises(openai.BadRequestError) as error:
        stranger.completions.create(model="lm", **SEEDED)
    assert error.value.status_code == 400
