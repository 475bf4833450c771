"""The generation endpoint through a real TorchServe: sampling controls, batching, streaming."""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest

from models.generation import GenerationRequest, Generator
from serving.client import generate_stream
from tests.sampling_reference import SETTINGS, StepLogits, check_settings, reference_generation
from tests.text_pieces import printable_piece

from .conftest import archived_generator

pytestmark = pytest.mark.integration


@pytest.fixture(autouse=True)
def _needs_lm(server):
    # A missing archive is a failed build, not a reason to skip every generation test.
    assert "lm" in server.config.models, "the tiny model store has no lm.mar"


@pytest.fixture(scope="module")
def local_generator(tiny_model_store: Path, tmp_path_factory) -> Generator:
    """The archived model run in-process with the archive's own settings: the reference."""
    return archived_generator(tiny_model_store / "lm.mar", tmp_path_factory.mktemp("unpacked-lm"))


def generate(server, **payload):
    reply = server.post("lm", json=payload)
    assert reply.status_code == 200, reply.text
    return reply.json()


def stream_chunks(server, **payload) -> list[dict]:
    return list(generate_stream(server.connection, payload))


SEEDED = {"prompt": "ROMEO:", "max_new_tokens": 40, "temperature": 1.0, "top_p": 0.9, "seed": 1234}


def test_answer_shape_and_max_new_tokens(server):
    answer = generate(server, prompt="KING:", max_new_tokens=7, temperature=0.8, seed=3)
    assert set(answer) == {"text", "generated_tokens", "finish_reason"}
    assert answer["generated_tokens"] == 7
    assert answer["finish_reason"] == "length"
    assert isinstance(answer["text"], str)


def test_seeded_text_is_the_same_alone_and_inside_concurrent_batches(server):
    alone = generate(server, **SEEDED)
    others = [
        {"prompt": p, "max_new_tokens": n, "temperature": t, "seed": s, "top_k": k}
        for p, n, t, s, k in [
            ("A", 5, 0.5, 1, 0),
            ("To be, or not to be", 60, 1.5, 2, 10),
            ("First Citizen:\nBefore we proceed", 25, 0.0, None, 0),
            ("\nThe", 80, 1.0, None, 3),
        ]
    ]
    payloads = [SEEDED] + others * 3 + [SEEDED] * 3
    with ThreadPoolExecutor(max_workers=len(payloads)) as pool:
        answers = list(pool.map(lambda p: generate(server, **p), payloads))
    for payload, answer in zip(payloads, answers, strict=True):
        if payload is SEEDED:
            assert answer == alone


REFERENCE_CASES = [
    {"prompt": "ROMEO:", "max_new_tokens": 30, "temperature": 1.0, "seed": 1},
    {"prompt": "KING:", "max_new_tokens": 25, "temperature": 0.7, "top_k": 5, "seed": 2},
    {"prompt": "To be", "max_new_tokens": 40, "temperature": 1.3, "top_p": 0.8, "seed": 3},
    {"prompt": "First", "max_new_tokens": 20, "temperature": 0},
    {"prompt": "A", "max_new_tokens": 60, "temperature": 1.0, "seed": 4, "stop": ["e"]},
]


def test_served_answers_equal_the_archived_model_run_in_process(server, local_generator):
    """Temperature, top-k, top-p, seed and stop each change the text; the server must apply
    them exactly as the engine does (a handler that ignored one would fail here)."""
    with ThreadPoolExecutor(max_workers=len(REFERENCE_CASES)) as pool:
        served = list(pool.map(lambda case: generate(server, **case), REFERENCE_CASES))
    for case, answer in zip(REFERENCE_CASES, served, strict=True):
        expected = local_generator.generate([GenerationRequest(**case)])[0]
        assert answer == {
            "text": expected.text,
            "generated_tokens": expected.generated_tokens,
            "finish_reason": expected.finish_reason,
        }, case


def test_each_sampling_setting_gives_the_independent_references_text(server, local_generator):
    """One prompt and seed under each setting (temperature, top-k, top-p, top-k 1, top-p near
    0, greedy): the served int8 model's text is the one a NumPy sampler written from the
    definitions picks from that model's logits with the request's uniforms; each setting
    changes the text at this seed, and top-k 1 and top-p near 0 give greedy's."""
    prompt, seed, length = "ROMEO:", 21, 60
    cases = {
        name: {"prompt": prompt, "max_new_tokens": length, "seed": seed, **setting}
        for name, setting in SETTINGS.items()
    }
    with ThreadPoolExecutor(max_workers=len(cases)) as pool:
        served = pool.map(lambda case: generate(server, **case), cases.values())
        answers = dict(zip(cases, served, strict=True))
    tokenizer = local_generator.tokenizer
    expected = {}
    for name, setting in SETTINGS.items():
        read = StepLogits(local_generator)
        tokens = reference_generation(read, tokenizer.encode(prompt), length, seed=seed, **setting)
        expected[name] = tokenizer.decode(tokens)
    assert all(answer["generated_tokens"] == length for answer in answers.values())
    check_settings({name: answer["text"] for name, answer in answers.items()}, expected)


def test_greedy_is_deterministic_without_a_seed(server):
    first = generate(server, prompt="JULIET:", max_new_tokens=30, temperature=0)
    second = generate(server, prompt="JULIET:", max_new_tokens=30, temperature=0)
    assert first == second


def test_stop_string_ends_generation_before_it(server):
    free = generate(server, **{**SEEDED, "max_new_tokens": 80})
    text = free["text"]
    if len(text) < 4:
        pytest.skip("the tiny model produced too little text to pick a stop string from")
    stop = printable_piece(text, len(text) // 2, 2)
    stopped = generate(server, **{**SEEDED, "max_new_tokens": 80, "stop": [stop]})
    assert stopped["finish_reason"] == "stop"
    assert stop not in stopped["text"]
    assert text.startswith(stopped["text"])
    assert stopped["text"] == text[: text.index(stop)]


def test_streamed_chunks_concatenate_to_the_non_streamed_text(server):
    whole = generate(server, **SEEDED)
    chunks = stream_chunks(server, **SEEDED)
    assert len(chunks) > 1
    assert "".join(chunk["text"] for chunk in chunks) == whole["text"]
    assert chunks[-1]["finish_reason"] == whole["finish_reason"]
    assert chunks[-1]["generated_tokens"] == whole["generated_tokens"]


BAD = [
    ({}, "prompt"),
    ({"prompt": ""}, "prompt"),
    ({"prompt": 5}, "prompt"),
    ({"prompt": "x", "max_new_tokens": 0}, "max_new_tokens"),
    ({"prompt": "x", "max_new_tokens": 100_000}, "max_new_tokens"),
    ({"prompt": "x", "max_new_tokens": 2.5}, "max_new_tokens"),
    ({"prompt": "x", "temperature": -0.1}, "temperature"),
    ({"prompt": "x", "temperature": 9}, "temperature"),
    ({"prompt": "x", "temperature": "hot"}, "temperature"),
    ({"prompt": "x", "top_p": 0}, "top_p"),
    ({"prompt": "x", "top_p": 1.5}, "top_p"),
    ({"prompt": "x", "top_k": -1}, "top_k"),
    ({"prompt": "x", "seed": -5}, "seed"),
    ({"prompt": "x", "stop": ["a", "b", "c", "d", "e"]}, "stop"),
    ({"prompt": "x", "stop": [""]}, "stop[0]"),
    ({"prompt": "x", "stream": "yes"}, "stream"),
    ({"prompt": "x", "best_of": 2}, "best_of"),
    ({"prompt": "x" * 5000}, "prompt"),
    ({"prompt": "nul \x00 byte"}, "prompt"),
]


def test_bad_fields_get_400_naming_them_and_spare_their_batch(server):
    good = {"prompt": "ROMEO:", "max_new_tokens": 10, "seed": 5}
    expected = generate(server, **good)
    jobs = [(payload, field) for payload, field in BAD] + [(good, None)] * 8

    def send(job):
        return job, server.post("lm", json=job[0])

    with ThreadPoolExecutor(max_workers=16) as pool:
        results = list(pool.map(send, jobs))
    for (payload, field), reply in results:
        if field is None:
            assert reply.status_code == 200 and reply.json() == expected
        else:
            assert reply.status_code == 400, (payload, reply.text)
            assert reply.json()["field"] == field, reply.json()


def test_nan_and_infinity_are_refused(server):
    for raw in (b'{"prompt": "x", "temperature": NaN}', b'{"prompt": "x", "top_p": Infinity}'):
        reply = server.post("lm", data=raw, headers={"Content-Type": "application/json"})
        assert reply.status_code == 400, reply.text
        assert reply.json()["field"] in ("temperature", "top_p")
