"""A language model with a subword (unigram, byte-fallback) tokenizer through a real
TorchServe: the default LM's kind of vocabulary, which the shared character-level tiny model
never exercises. Served answers must equal the archive run in-process, UTF-8 included."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from models.decode_loop import DecodeLoop, Turn
from models.generation import GenerationRequest, Generator
from models.requests import GenerationResult
from serving.client import generate_stream
from tests.text_pieces import printable_piece
from training.archive import build_archive

from .conftest import ROOT, archived_generator, launch

pytestmark = pytest.mark.integration

VOCAB = 400  # the smallest lossless unigram vocabulary is 324 pieces (bytes included)


@pytest.fixture(scope="module")
def subword_store(tmp_path_factory) -> Path:
    base = tmp_path_factory.mktemp("subword")
    command = [sys.executable, "-m", "training.train_lm", "--profile", "tiny"]
    command += ["--vocab-size", str(VOCAB), "--out", str(base / "lm")]
    subprocess.run(command, cwd=ROOT, check=True, stdout=subprocess.DEVNULL)
    build_archive("lm", base / "lm", base / "store")
    return base / "store"


@pytest.fixture(scope="module")
def subword_server(subword_store, tmp_path_factory):
    yield from launch(subword_store, tmp_path_factory.mktemp("server"), models=("lm",))


@pytest.fixture(scope="module")
def reference(subword_store, tmp_path_factory) -> Generator:
    generator = archived_generator(subword_store / "lm.mar", tmp_path_factory.mktemp("unpacked"))
    assert generator.tokenizer.vocab_size == VOCAB
    return generator


CASES = [
    {"prompt": "ROMEO:", "max_new_tokens": 40, "temperature": 1.2, "seed": 1},
    {"prompt": "Ein Grüß 🙂 — «ça»", "max_new_tokens": 40, "temperature": 1.0, "seed": 2},
    {"prompt": "KING:", "max_new_tokens": 40, "temperature": 0.8, "top_k": 20, "seed": 3},
]


@pytest.mark.parametrize("case", CASES, ids=["ascii", "utf8-prompt", "top-k"])
def test_served_subword_answers_equal_the_archive_in_process(subword_server, reference, case):
    reply = subword_server.post("lm", json=case)
    assert reply.status_code == 200, reply.text
    expected = reference.generate([GenerationRequest(**case)])[0]
    assert reply.json()["text"] == expected.text
    assert reply.json()["generated_tokens"] == expected.generated_tokens
    chunks = list(generate_stream(subword_server.connection, case))
    assert "".join(c["text"] for c in chunks) == expected.text


def session_in_process(
    generator: Generator, turns: list[GenerationRequest]
) -> list[GenerationResult]:
    """One session's turns run in-process, each continuing the state the previous one left:
    the reference for what the server keeps between requests."""
    carry, results = None, []
    for turn in turns:
        loop = DecodeLoop(generator.step, generator.tokenizer)
        loop.add("session", turn, Turn(carry, keep=True))
        final = None
        while loop:
            update = loop.step().get("session")
            if update is not None and (update.result or update.error):
                final = update
        assert final is not None and final.error is None, final
        carry = final.carry
        results.append(final.result)
    return results


def test_a_subword_session_with_a_stop_string_continues_like_the_archive(subword_server, reference):
    """Pieces, not characters: the server keeps the state after every piece the first turn
    read, the stop string's included (its answer ends before it), and a UTF-8 follow-up
    continues from there exactly as the archive does in-process."""
    seeded = {"max_new_tokens": 40, "temperature": 1.0, "seed": 2}  # greedy: only newlines
    free = reference.generate([GenerationRequest("ROMEO:", **seeded)])[0].text
    stop = printable_piece(free, len(free) // 2, 2)
    turns = [
        GenerationRequest("ROMEO:", stop=[stop], **seeded),
        GenerationRequest("\nJULIET: Grüß 🙂", max_new_tokens=30, temperature=1.0, seed=5),
    ]
    expected = session_in_process(reference, turns)
    assert expected[0].finish_reason == "stop" and expected[0].text == free[: free.index(stop)]
    first = subword_server.post(
        "lm", json={"prompt": "ROMEO:", "stop": [stop], "session": "new", **seeded}
    )
    assert first.status_code == 200, first.text
    session = first.json()["session"]
    follow_up = {"prompt": turns[1].prompt, "max_new_tokens": 30, "temperature": 1.0, "seed": 5}
    second = subword_server.post("lm", json={**follow_up, "session": session})
    assert second.status_code == 200, second.text
    for served, result in zip((first.json(), second.json()), expected, strict=True):
        assert served["text"] == result.text
        assert served["generated_tokens"] == result.generated_tokens
        assert served["finish_reason"] == result.finish_reason
