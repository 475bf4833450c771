"""The decode loop in its own thread: the same answers as the loop alone, however the steps
fall between collects; joins and departures land between steps; failures stay contained."""

from __future__ import annotations

import pytest
import torch

from models.decode_thread import DecodeThread
from models.generation import GenerationRequest, Generator
from models.language_model import LMConfig, RecurrentLM
from models.tokenizer import Tokenizer
from training.data import load_text
from training.train_lm import build_tokenizer

REQUESTS = {
    "seeded": GenerationRequest("ROMEO:", max_new_tokens=30, temperature=1.0, seed=42),
    "short": GenerationRequest("A", 5, 0.5, seed=1),
    "greedy": GenerationRequest("First Citizen:\n", 12, 0.0),
    "long": GenerationRequest("KING", 60, 1.0, top_k=5, seed=3),
}


@pytest.fixture(scope="module")
def tokenizer(tmp_path_factory) -> Tokenizer:
    text = load_text("tinyshakespeare")[:50_000]
    return build_tokenizer(text, 0, tmp_path_factory.mktemp("tok") / "char")


@pytest.fixture(scope="module")
def generator(tokenizer) -> Generator:
    torch.manual_seed(0)
    config = LMConfig(tokenizer.vocab_size, embed_dim=16, hidden_dim=32, num_layers=2)
    model = RecurrentLM(config)
    model.head.weight.data *= 4  # sharper than random, so greedy and sampled text differ
    return Generator(model, tokenizer)


@pytest.fixture
def decoder(generator):
    thread = DecodeThread(generator, lookahead=8)
    yield thread
    thread.close()


def collect_all(decoder: DecodeThread, keys: set, most: int = 4, least: int = 1) -> dict:
    """Collect until every key has ended; each key's concatenated text and last update."""
    texts: dict = {}
    finals: dict = {}
    while set(finals) != keys:
        for key, update in decoder.collect(most, least).items():
            texts[key] = texts.get(key, "") + update.text
            if update.result is not None or update.error is not None:
                finals[key] = update
    return {key: (texts[key], finals[key]) for key in keys}


def test_answers_equal_the_loop_alone_with_rows_joining_between_collects(generator, decoder):
    alone = dict(zip(REQUESTS, generator.generate(list(REQUESTS.values())), strict=True))
    decoder.add("long", REQUESTS["long"])
    head = decoder.collect(4, 4)["long"].text  # 64 steps to go: still running
    for key in ("seeded", "short", "greedy"):
        decoder.add(key, REQUESTS[key])
    answers = collect_all(decoder, set(REQUESTS))
    answers["long"] = (head + answers["long"][0], answers["long"][1])
    for key, (text, update) in answers.items():
        assert update.result.text == alone[key].text == text, key


def test_the_thread_runs_at_most_lookahead_steps_past_the_last_collect(decoder):
    decoder.add("long", REQUESTS["long"])  # a 4-character prompt, then 60 tokens
    update = decoder.collect(most=100, least=100)["long"]
    assert update.result is None and len(update.text) == 8 - 4 + 1


def test_a_finished_row_ends_the_wait_long_before_most_steps(generator):
    decoder = DecodeThread(generator, lookahead=5000)
    try:
        decoder.add("short", REQUESTS["short"])  # 1 prompt character, 5 tokens: 5 steps
        decoder.add("endless", GenerationRequest("A", 4000, 1.0, seed=5))
        updates = decoder.collect(most=5000, least=5)
    finally:
        decoder.close()
    assert updates["short"].result.generated_tokens == 5
    assert updates["endless"].result is None


def test_a_dropped_row_leaves_and_reports_nothing_more(decoder):
    decoder.add("gone", REQUESTS["long"])
    decoder.add("stays", REQUESTS["seeded"])
    decoder.collect(2, 2)
    decoder.drop(["gone"])
    answers = collect_all(decoder, {"stays"})
    assert "gone" not in decoder.loop and answers["stays"][1].result.generated_tokens == 30


def test_a_row_that_cannot_join_fails_alone(decoder, monkeypatch):
    join = decoder.loop.join

    def refuse(key, newcomer):
        if key == "bad":
            raise RuntimeError("no room")
        join(key, newcomer)

    monkeypatch.setattr(decoder.loop, "join", refuse)
    decoder.add("bad", REQUESTS["short"])
    decoder.add("good", REQUESTS["short"])
    answers = collect_all(decoder, {"bad", "good"})
    assert answers["bad"][1].error and answers["good"][1].result.generated_tokens == 5


def test_a_broken_step_ends_its_rows_and_the_thread_serves_on(decoder, monkeypatch):
    def broken():
        raise RuntimeError("kernel failure")

    monkeypatch.setattr(decoder.loop, "step_once", broken)
    decoder.add("a", REQUESTS["short"])
    assert collect_all(decoder, {"a"})["a"][1].error
    decoder.add("b", REQUESTS["short"])  # the thread made itself a fresh loop
    assert collect_all(decoder, {"b"})["b"][1].result.generated_tokens == 5
    assert decoder.alive
