"""Scoring through a real TorchServe: log-probabilities, echo, scoring-only requests,
penalties, logit bias and the tokenizer routes, on the served tiny LM.

References: `training.evaluate_lm`'s scorer on the same text from the same start state, in the
precision the archive is served in on this machine (`quantize: auto`: int8 or fp32, like with
like), and OpenAI's penalty formula in NumPy on the
archived model's logits (tests/unit/test_scoring.py's `numpy_greedy`)."""

from __future__ import annotations

import math
import threading
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import openai
import pytest
import requests
import torch

from serving.client import Client
from tests.unit.test_scoring import numpy_greedy
from training.archive import packed_quantize, unpack_archive
from training.data import load_text, split_text
from training.evaluate_lm import load_lm, step_nll

from .conftest import archived_generator

pytestmark = pytest.mark.integration

SCORE = {"model": "lm", "temperature": 0, "max_tokens": 0, "logprobs": 1, "echo": True}
BUSY = [  # generation running beside the scoring requests
    {"prompt": "To be, or not to be", "max_new_tokens": 120, "temperature": 1.0, "seed": 2},
    {"prompt": "KING:", "max_new_tokens": 90, "temperature": 0.7, "seed": 3, "top_k": 5},
    {"prompt": "A", "max_new_tokens": 150, "temperature": 1.2, "seed": 4},
]


@pytest.fixture(scope="module")
def client(server) -> openai.OpenAI:
    base = f"{server.connection.inference_url}/predictions/lm/1.0/v1"
    return openai.OpenAI(base_url=base, api_key=server.connection.inference_key, max_retries=0)


@pytest.fixture(scope="module")
def chunk() -> str:
    """A piece of Tiny Shakespeare's validation split (the part training held out)."""
    validation = split_text(load_text("tinyshakespeare"))[1]
    return validation[1000:4000]


def post(server, path: str, payload) -> dict:
    reply = requests.post(
        f"{server.connection.inference_url}/predictions/lm/1.0/{path}",
        json=payload,
        headers=server.connection.inference_headers(),
        timeout=120,
    )
    assert reply.status_code == 200, reply.text
    return reply.json()


def busy_while(server, work):
    """``work()``'s answer while generation requests keep the decode loop busy (they start
    first, so the scoring rows join a running batch mid-flight)."""
    with ThreadPoolExecutor(len(BUSY)) as pool:
        started = threading.Event()

        def generate(body):
            started.set()
            return server.post("lm", json=body).status_code

        futures = [pool.submit(generate, body) for body in BUSY]
        started.wait()
        answer = work()
        assert [f.result() for f in futures] == [200] * len(BUSY)
    return answer


def test_a_scored_validation_chunk_equals_the_evaluators_figure(
    server, tiny_model_store: Path, tmp_path, chunk
):
    archive = tiny_model_store / "lm.mar"
    quantize = packed_quantize(archive)  # "auto": the scorer resolves it as the server does
    choice = post(server, "v1/completions", {**SCORE, "prompt": chunk})["choices"][0]
    assert choice["text"] == chunk
    logprobs = choice["logprobs"]
    assert "".join(logprobs["tokens"]) == chunk
    step, tokenizer = load_lm(unpack_archive(archive, tmp_path), quantize)
    ids = torch.tensor(tokenizer.encode(chunk))
    assert len(logprobs["token_logprobs"]) == len(ids)
    # One stream from the start state: every token but the first is scored from the text
    # before it; the evaluator charges the first one log(V), the server scores it from the
    # start state.
    nll = step_nll(step, ids, 1)[0] - math.log(step.config.vocab_size)
    served = -sum(logprobs["token_logprobs"][1:])
    assert abs(served - nll) / len(chunk) < 1e-4
    assert logprobs["text_offset"][:3] == [0, 1, 2]


def test_the_python_client_scores_text(server, chunk):
    scored = Client(server.connection).score(chunk[:500])
    via_api = post(server, "v1/completions", {**SCORE, "prompt": chunk[:500]})["choices"][0]
    assert scored["nats"] == -sum(via_api["logprobs"]["token_logprobs"])
    assert scored["nats_per_char"] == scored["nats"] / 500


def test_scores_alone_and_beside_running_generation_agree(server, chunk):
    body = {**SCORE, "prompt": chunk[:800], "logprobs": 5}
    alone = post(server, "v1/completions", body)["choices"][0]["logprobs"]
    batched = busy_while(server, lambda: post(server, "v1/completions", body))
    batched = batched["choices"][0]["logprobs"]
    assert alone["tokens"] == batched["tokens"]
    pairs = zip(alone["token_logprobs"], batched["token_logprobs"], strict=True)
    assert max(abs(a - b) for a, b in pairs) < 1e-5


def test_lm_evaluation_harness_requests_get_what_it_reads(server):
    """local-completions' loglikelihood request: a prompt list, one generated token."""
    prompts = ["<s>ROMEO:\nWhat", "JULIET:\nAy me"]
    body = {**SCORE, "prompt": prompts, "max_tokens": 1, "seed": 1234}
    answer = post(server, "v1/completions", body)
    assert [c["index"] for c in answer["choices"]] == [0, 1]
    for prompt, choice in zip(prompts, answer["choices"], strict=True):
        logprobs = choice["logprobs"]
        tokens = post(server, "tokenize", {"prompt": prompt, "add_special_tokens": False})
        assert len(logprobs["token_logprobs"]) == tokens["count"] + 1  # the prompt, then one
        assert choice["text"].startswith(prompt)
        pairs = zip(logprobs["token_logprobs"][1:], logprobs["top_logprobs"][1:], strict=True)
        for value, top in pairs:
            assert top and max(top.values()) >= value
        # temperature 0: the generated token is the top choice, bit for bit
        assert logprobs["token_logprobs"][-1] == max(logprobs["top_logprobs"][-1].values())
    assert answer["choices"][0]["logprobs"]["token_logprobs"][0] is None  # the start marker


def test_token_id_prompts_score_exactly_the_ids_given(server):
    ids = post(server, "tokenize", {"prompt": "<s>ROMEO:"})["tokens"]
    by_ids = post(server, "v1/completions", {**SCORE, "prompt": [ids, ids[1:]]})["choices"]
    by_text = post(server, "v1/completions", {**SCORE, "prompt": "<s>ROMEO:"})["choices"][0]
    assert by_ids[0]["logprobs"] == by_text["logprobs"] and by_ids[0]["text"] == "<s>ROMEO:"
    assert by_ids[1]["logprobs"]["token_logprobs"] == by_text["logprobs"]["token_logprobs"][1:]


def test_logprobs_change_no_seeded_token_and_stream_with_the_text(client):
    seeded = {"model": "lm", "prompt": "ROMEO:", "max_tokens": 30, "temperature": 1.0, "seed": 5}
    plain = client.completions.create(**seeded).choices[0]
    asked = client.completions.create(**seeded, logprobs=3).choices[0]
    assert plain.text == asked.text and plain.logprobs is None
    assert "".join(asked.logprobs.tokens) == asked.text
    assert all(len(top) in (3, 4) for top in asked.logprobs.top_logprobs)
    events = list(client.completions.create(**seeded, logprobs=3, stream=True))
    tokens = [t for e in events if e.choices[0].logprobs for t in e.choices[0].logprobs.tokens]
    offsets = [
        o for e in events if e.choices[0].logprobs for o in e.choices[0].logprobs.text_offset
    ]
    assert "".join(tokens) == asked.text and offsets == asked.logprobs.text_offset
    with pytest.raises(openai.BadRequestError) as error:
        client.completions.create(**seeded, echo=True, stream=True)
    assert error.value.body["param"] == "echo"


def test_the_native_route_answers_the_same_scores(server, client):
    native = server.post(
        "lm", json={"prompt": "KING:", "max_new_tokens": 0, "echo": True, "logprobs": 2}
    ).json()
    openai_answer = client.completions.create(
        model="lm", prompt="KING:", max_tokens=0, echo=True, logprobs=2
    ).choices[0]
    assert native["text"] == "KING:" and native["generated_tokens"] == 0
    assert native["logprobs"]["token_logprobs"] == openai_answer.logprobs.token_logprobs


@pytest.fixture(scope="module")
def local_generator(tiny_model_store: Path, tmp_path_factory):
    return archived_generator(tiny_model_store / "lm.mar", tmp_path_factory.mktemp("unpacked"))


@pytest.mark.parametrize(
    ("presence", "frequency", "bias"),
    [(0.0, 1.2, {}), (1.5, 0.0, {}), (0.3, -0.5, {"e": 4.0, " ": -100.0})],
)
def test_penalties_and_bias_follow_openais_formula(
    client, local_generator, presence, frequency, bias
):
    tokenizer = local_generator.tokenizer
    ids = {tokenizer.encode(char)[0]: value for char, value in bias.items()}
    expected = tokenizer.decode(
        numpy_greedy(local_generator, "KING:", 40, presence, frequency, ids)
    )
    answer = client.completions.create(
        model="lm",
        prompt="KING:",
        max_tokens=40,
        temperature=0,
        presence_penalty=presence,
        frequency_penalty=frequency,
        logit_bias={str(token): value for token, value in ids.items()},
    )
    assert answer.choices[0].text == expected


def test_penalised_seeded_answers_are_batch_invariant(server):
    body = {
        "prompt": "ROMEO:",
        "max_new_tokens": 60,
        "temperature": 1.0,
        "seed": 9,
        "presence_penalty": 0.7,
        "frequency_penalty": 0.3,
        "logit_bias": {"5": 3.0, "7": -2.0},
    }
    alone = server.post("lm", json=body).json()["text"]
    with ThreadPoolExecutor(4) as pool:
        together = list(pool.map(lambda _: server.post("lm", json=body).json()["text"], range(4)))
    joined = busy_while(server, lambda: server.post("lm", json=body).json()["text"])
    assert together == [alone] * 4 and joined == alone


@pytest.mark.parametrize(
    ("extra", "param"),
    [
        ({"logprobs": 6}, "logprobs"),
        ({"logit_bias": {"99999": 1}}, "logit_bias"),
        ({"logit_bias": {"3": 150}}, "logit_bias[3]"),
        ({"presence_penalty": 2.1}, "presence_penalty"),
        ({"max_tokens": 0}, "max_tokens"),
    ],
)
def test_out_of_range_scoring_fields_are_400s_naming_them(client, extra, param):
    with pytest.raises(openai.BadRequestError) as error:
        client.completions.create(model="lm", prompt="A", **extra)
    assert error.value.body["param"] == param, error.value.body


def test_tokenizer_routes_answer_in_vllms_shape(server):
    headers = server.connection.inference_headers()
    base = f"{server.connection.inference_url}/predictions/lm/1.0"
    info = requests.get(f"{base}/tokenizer_info", headers=headers, timeout=30).json()
    assert info["bos_token"] == "<s>" and info["eos_token"] is None
    tokens = post(server, "v1/tokenize", {"prompt": "<s>KING:", "return_token_strs": True})
    assert tokens["tokens"][0] == info["vocab_size"] - 1 and tokens["count"] == 6
    assert post(server, "detokenize", {"tokens": tokens["tokens"]}) == {"prompt": "<s>KING:"}
    refused = requests.post(
        f"{base}/detokenize", json={"tokens": [10**6]}, headers=headers, timeout=30
    )
    assert refused.status_code == 400 and refused.json()["error"]["param"] == "tokens"
