"""Continuous batching's loop: rows join mid-flight, leave, fail alone; sessions continue."""

from __future__ import annotations

import pytest
import torch

from models.decode_loop import DecodeLoop, Turn, Update
from models.generation import GenerationRequest, Generator
from models.language_model import LMConfig, RecurrentLM
from models.tokenizer import Tokenizer
from training.data import load_text
from training.train_lm import build_tokenizer


@pytest.fixture(scope="module")
def tokenizer(tmp_path_factory) -> Tokenizer:
    text = load_text("tinyshakespeare")[:50_000]
    return build_tokenizer(text, 0, tmp_path_factory.mktemp("tok") / "char")


@pytest.fixture(scope="module", params=[None, "int8"], ids=["fp32", "int8"])
def generator(request, tokenizer) -> Generator:
    torch.manual_seed(0)
    config = LMConfig(tokenizer.vocab_size, embed_dim=16, hidden_dim=32, num_layers=2)
    model = RecurrentLM(config)
    model.head.weight.data *= 4  # sharper than random, so greedy and sampled text differ
    return Generator(model, tokenizer, quantize=request.param)


SEEDED = GenerationRequest("ROMEO:", max_new_tokens=30, temperature=1.0, top_p=0.9, seed=42)
OTHERS = [
    GenerationRequest("A", 5, 0.5, seed=1),
    GenerationRequest("To be, or not to be", 50, 1.5, top_k=5, seed=2),
    GenerationRequest("First Citizen:\n", 12, 0.0),
    GenerationRequest("KING", 40, 1.0, seed=3),
]


def run_to_end(loop: DecodeLoop, tokens: int = 1) -> dict:
    """Step until the loop is empty; every key's concatenated text and final update."""
    finals: dict = {}
    texts: dict = {}
    while loop:
        for key, update in loop.step(tokens).items():
            texts[key] = texts.get(key, "") + update.text
            if update.result is not None or update.error is not None:
                finals[key] = update
    return {key: (texts[key], update) for key, update in finals.items()}


@pytest.mark.parametrize("join_after", [0, 1, 7, 20])
@pytest.mark.parametrize("tokens_per_step", [1, 4])
def test_a_row_joining_mid_flight_gets_the_answer_it_gets_alone(
    generator, join_after, tokens_per_step
):
    alone = generator.generate([SEEDED])[0]
    loop = DecodeLoop(generator.step, generator.tokenizer)
    for key, request in enumerate(OTHERS):
        loop.add(key, request)
    for _ in range(join_after):
        loop.step(tokens_per_step)
    loop.add("late", SEEDED)
    text, final = run_to_end(loop, tokens_per_step)["late"]
    assert final.result == alone
    assert text == alone.text


def test_rows_leave_when_finished_and_dropped_rows_free_their_slot(generator):
    loop = DecodeLoop(generator.step, generator.tokenizer)
    loop.add("short", GenerationRequest("A", 2, 1.0, seed=1))
    loop.add("long", GenerationRequest("B", 50, 1.0, seed=2))
    loop.add("gone", GenerationRequest("C", 50, 1.0, seed=3))
    loop.step(3)
    assert "short" not in loop and len(loop) == 2
    loop.drop(["gone", "never-there"])
    assert "gone" not in loop and len(loop) == 1
    rest = run_to_end(loop)
    assert set(rest) == {"long"}
    assert (
        rest["long"][1].result == generator.generate([GenerationRequest("B", 50, 1.0, seed=2)])[0]
    )
    assert loop.state is None and not loop.keys and not loop.rows


def test_a_row_that_fails_ends_alone(generator):
    loop = DecodeLoop(generator.step, generator.tokenizer)
    for key, request in enumerate(OTHERS):
        loop.add(key, request)
    loop.add("bad", SEEDED)

    def broken(token, tokenizer):
        raise RuntimeError("decode failed")

    loop.rows["bad"].add = broken
    finals = run_to_end(loop, 3)
    assert finals["bad"][1].error and finals["bad"][1].result is None
    expected = generator.generate(OTHERS)
    assert [finals[key][1].result for key in range(len(OTHERS))] == expected


def continue_session(generator, turns: list[GenerationRequest]) -> list[Update]:
    """Each turn continues the previous turn's carry; every turn runs beside other rows."""
    carry, finals = None, []
    for turn in turns:
        loop = DecodeLoop(generator.step, generator.tokenizer)
        for key, request in enumerate(OTHERS[:2]):
            loop.add(key, request)
        loop.add("session", turn, Turn(carry, keep=True))
        final = run_to_end(loop)["session"][1]
        carry = final.carry
        finals.append(final)
    return finals


def whole_text(generator, turns: list[GenerationRequest], finals: list[Update]) -> str:
    """The text a session has read before its last turn generates: every prompt and answer."""
    history = "".join(t.prompt + f.result.text for t, f in zip(turns, finals, strict=False))
    history += turns[-1].prompt
    if generator.tokenizer.decode(generator.tokenizer.encode(history)) != history:
        pytest.fail("the test needs text the character tokenizer reproduces")
    return history


def test_greedy_session_continues_exactly_like_one_request_with_the_whole_text(generator):
    """At character level the whole text is cut at the same places as its turns."""
    turns = [GenerationRequest("ROMEO:", 25, 0.0), GenerationRequest("\nJULIET:", 25, 0.0)]
    finals = continue_session(generator, turns)
    history = whole_text(generator, turns, finals)
    assert finals[1].result == generator.generate([GenerationRequest(history, 25, 0.0)])[0]
    assert finals[1].carry.nbytes == 2 * 2 * 32 * 4  # (h, c) x layers x hidden x fp32


def test_seeded_session_continuation_is_reproducible_and_reads_its_history(generator):
    turns = [GenerationRequest("ROMEO:", 10, 0.0), GenerationRequest(" and", 20, 1.0, seed=6)]
    finals = continue_session(generator, turns)
    assert continue_session(generator, turns)[1].result == finals[1].result
    history = whole_text(generator, turns, finals)
    whole = GenerationRequest(history, 20, 1.0, seed=6)
    assert finals[1].result == generator.generate([whole])[0]
