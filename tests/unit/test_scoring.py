"""Log-probabilities, echo, scoring-only rows, penalties and logit bias in the decode loop.

References are written from the definitions, not from the code under test: the prompt's
log-likelihood from `nn.LSTM` over the whole sequence (fp32) and OpenAI's penalty formula in
NumPy on the model's logits.
"""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from models.decode_loop import DecodeLoop
from models.generation import GenerationRequest, Generator
from models.language_model import zero_state
from models.logprobs import START_TEXT
from tests.unit import test_decode_loop as loop_tests
from tests.unit.test_decode_loop import OTHERS, run_to_end

# The decode loop's tests' models (a character tokenizer with byte fallback; fp32 and int8).
tokenizer, generator = loop_tests.tokenizer, loop_tests.generator

PROMPT = "First Citizen:\nBefore we proceed any further, hear me speak.\n"
SEEDED = GenerationRequest("ROMEO:", max_new_tokens=25, temperature=1.0, top_p=0.9, seed=42)


def scored(generator, request: GenerationRequest, others=(), join_after: int = 0):
    """The finished result of ``request`` run beside ``others`` (joining after some steps)."""
    loop = DecodeLoop(generator.step, generator.tokenizer)
    for key, other in enumerate(others):
        loop.add(key, other)
    for _ in range(join_after):
        loop.step()
    loop.add("row", request)
    return run_to_end(loop)["row"][1].result


def reference_prompt_logprobs(generator: Generator, ids: list[int]) -> list[float]:
    """log p(t_i | t_<i) from nn.LSTM over the whole sequence, the first token from the zero
    state's logits (fp32, the trained model as training scores it)."""
    model = generator.model
    with torch.inference_mode():
        first = model.head(zero_state(model.config, 1)[0][-1])[0]
        logits, _ = model(torch.tensor([ids]))
        logp = torch.log_softmax(torch.cat([first[None], logits[0, :-1]]).double(), dim=-1)
    return [logp[i, token].item() for i, token in enumerate(ids)]


def test_echo_scores_every_prompt_token_as_the_whole_sequence_model_does(generator):
    if generator.quantize:
        pytest.skip("the reference is the fp32 model; int8 is compared like with like below")
    result = scored(generator, GenerationRequest(PROMPT, 0, logprobs=2, echo=True))
    ids = generator.tokenizer.encode(PROMPT)
    expected = reference_prompt_logprobs(generator, ids)
    got = [entry.logprob for entry in result.prompt_logprobs]
    assert result.generated_tokens == 0 and result.text == "" and result.prompt == PROMPT
    assert "".join(entry.token for entry in result.prompt_logprobs) == PROMPT
    assert len(got) == len(ids)
    assert max(abs(a - b) for a, b in zip(got, expected, strict=True)) < 1e-5


def test_scores_alone_batched_and_joining_mid_flight_agree(generator):
    request = GenerationRequest(PROMPT, 5, 0.0, logprobs=5, echo=True)
    alone = scored(generator, request)
    for join_after in (0, 3):
        batched = scored(generator, request, OTHERS, join_after)
        pairs = zip(
            alone.prompt_logprobs + alone.logprobs,
            batched.prompt_logprobs + batched.logprobs,
            strict=True,
        )
        for a, b in pairs:
            assert a.token == b.token and abs(a.logprob - b.logprob) < 1e-5
            assert [t for t, _ in a.top] == [t for t, _ in b.top]


def test_asking_for_logprobs_changes_no_sampled_token(generator):
    plain = scored(generator, SEEDED)
    asked = scored(generator, GenerationRequest(**{**SEEDED.__dict__, "logprobs": 3}))
    assert plain.text == asked.text and plain.logprobs is None
    assert "".join(entry.token for entry in asked.logprobs) == asked.text
    assert len(asked.logprobs) == asked.generated_tokens


def test_top_alternatives_are_ranked_and_a_greedy_token_is_its_own_best(generator):
    result = scored(generator, GenerationRequest("KING", 12, 0.0, logprobs=3, echo=True))
    for entry in result.prompt_logprobs[1:] + result.logprobs:
        values = [value for _, value in entry.top]
        assert values[:3] == sorted(values[:3], reverse=True) and len(values) in (3, 4)
        assert sum(math.exp(v) for v in values) <= 1 + 1e-6
    for entry in result.logprobs:  # greedy: each generated token is the model's top choice
        assert entry.logprob == max(value for _, value in entry.top)


def test_the_start_marker_is_not_read_and_has_no_logprob(generator):
    plain = scored(generator, GenerationRequest(PROMPT, 0, logprobs=0, echo=True))
    marked = scored(generator, GenerationRequest(START_TEXT + PROMPT, 0, logprobs=0, echo=True))
    assert marked.prompt == START_TEXT + PROMPT
    assert marked.prompt_logprobs[0].logprob is None and marked.prompt_logprobs[0].token == "<s>"
    assert [e.logprob for e in marked.prompt_logprobs[1:]] == [
        e.logprob for e in plain.prompt_logprobs
    ]
    ids = (generator.tokenizer.vocab_size, *generator.tokenizer.encode(PROMPT))
    by_ids = scored(generator, GenerationRequest("", 0, logprobs=0, echo=True, prompt_ids=ids))
    assert by_ids.prompt_logprobs == marked.prompt_logprobs


def test_byte_fallback_tokens_concatenate_to_the_text(generator):
    text = "Caf\u00e9 \u2603 na\u00efve \U0001f600!"
    result = scored(generator, GenerationRequest(text, 0, logprobs=1, echo=True))
    assert len(generator.tokenizer.encode(text)) > len(text)  # some characters are bytes
    assert "".join(entry.token for entry in result.prompt_logprobs) == text


def numpy_greedy(generator, prompt, steps, presence, frequency, bias) -> list[int]:
    """Greedy decoding with OpenAI's formula applied in NumPy to the model's logits:
    mu[j] - c[j] * frequency - (c[j] > 0) * presence + bias[j]."""
    step, tokenizer = generator.step, generator.tokenizer
    counts = np.zeros(tokenizer.vocab_size)
    bias_vector = np.zeros(tokenizer.vocab_size)
    for token, value in bias.items():
        bias_vector[token] = value
    state = zero_state(generator.config, 1)
    out = []
    with torch.inference_mode():
        for token in tokenizer.encode(prompt):
            state = step.advance(torch.tensor([token]), state)
        for _ in range(steps):
            mu = step.logits(state)[0].double().numpy()
            adjusted = mu - counts * frequency - (counts > 0) * presence + bias_vector
            token = int(np.argmax(adjusted))
            out.append(token)
            counts[token] += 1
            state = step.advance(torch.tensor([token]), state)
    return out


@pytest.mark.parametrize(
    ("presence", "frequency", "bias"),
    [(0.0, 1.5, {}), (2.0, 0.0, {}), (-1.0, 0.5, {}), (0.0, 0.0, {"e": 3.0, " ": -100.0})],
)
def test_penalties_and_bias_follow_openais_formula(generator, presence, frequency, bias):
    tokenizer = generator.tokenizer
    ids = {tokenizer.encode(char)[0]: value for char, value in bias.items()}
    request = GenerationRequest(
        "KING:",
        30,
        0.0,
        presence_penalty=presence,
        frequency_penalty=frequency,
        logit_bias=tuple(ids.items()),
    )
    expected = numpy_greedy(generator, "KING:", 30, presence, frequency, ids)
    assert scored(generator, request).text == tokenizer.decode(expected)
    # the same with a batch running beside it, joined mid-flight
    assert scored(generator, request, OTHERS, join_after=4).text == tokenizer.decode(expected)
    plain = scored(generator, GenerationRequest("KING:", 30, 0.0)).text
    assert plain != tokenizer.decode(expected)  # the adjustment changed something


def test_seeded_penalised_rows_are_batch_invariant(generator):
    request = GenerationRequest(
        "ROMEO:",
        30,
        1.0,
        seed=7,
        presence_penalty=0.8,
        frequency_penalty=0.4,
        logit_bias=((generator.tokenizer.encode("a")[0], 2.0),),
        logprobs=1,
    )
    alone = scored(generator, request)
    for join_after in (0, 5):
        batched = scored(generator, request, OTHERS, join_after)
        assert batched.text == alone.text
        assert [e.logprob for e in batched.logprobs] == [e.logprob for e in alone.logprobs]


def test_a_stop_string_cuts_the_tokens_with_the_text(generator):
    whole = scored(generator, GenerationRequest("KING", 40, 1.0, seed=3, logprobs=1))
    stop = whole.text[15:17]
    cut = scored(generator, GenerationRequest("KING", 40, 1.0, seed=3, logprobs=1, stop=[stop]))
    assert cut.finish_reason == "stop" and cut.text == whole.text[: whole.text.index(stop)]
    assert "".join(entry.token for entry in cut.logprobs) == cut.text
    kept = len(cut.logprobs)
    assert [e.logprob for e in cut.logprobs] == [e.logprob for e in whole.logprobs[:kept]]
