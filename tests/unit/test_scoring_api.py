"""Scoring fields on both routes: limits refused naming the field, token-id prompts, and the
tokenizer routes' answers."""

from __future__ import annotations

import json

import pytest

from handlers.lm import tokenize_api
from handlers.lm.api import check_vocabulary, parse_generation
from handlers.lm.openai_api import parse_completion
from handlers.schema import RequestError
from tests.unit import test_decode_loop as loop_tests
from tests.unit import test_lm_handler as handler_tests
from tests.unit.test_lm_handler import Frontend

tokenizer = loop_tests.tokenizer  # a character tokenizer with byte fallback
handler = handler_tests.handler  # the continuous-batching handler on a tiny random LM


@pytest.mark.parametrize(
    ("extra", "field"),
    [
        ({"logprobs": 6}, "logprobs"),
        ({"logprobs": -1}, "logprobs"),
        ({"presence_penalty": 2.5}, "presence_penalty"),
        ({"frequency_penalty": -3}, "frequency_penalty"),
        ({"logit_bias": {"5": 101}}, "logit_bias[5]"),
        ({"logit_bias": {"five": 1}}, "logit_bias"),
        ({"logit_bias": [1, 2]}, "logit_bias"),
        ({"max_tokens": 0}, "max_tokens"),
        ({"echo": True, "stream": True}, "echo"),
        ({"prompt": [1, -2]}, "prompt[1]"),
        ({"prompt": [[1], []]}, "prompt"),
    ],
)
def test_openai_route_refuses_out_of_range_values_naming_the_field(extra, field):
    with pytest.raises(RequestError) as caught:
        parse_completion({"prompt": "A", **extra})
    assert caught.value.field == field and caught.value.status == 400


def test_native_route_takes_the_same_fields():
    request = parse_generation(
        {"prompt": "A", "max_new_tokens": 0, "echo": True, "logprobs": 5, "logit_bias": {"3": -100}}
    ).generation
    assert (request.max_new_tokens, request.echo, request.logprobs) == (0, True, 5)
    assert request.logit_bias == ((3, -100.0),)
    with pytest.raises(RequestError) as caught:
        parse_generation({"prompt": "A", "max_new_tokens": 0, "echo": True, "session": "new"})
    assert caught.value.field == "session"


def test_token_prompts_and_unknown_ids_name_their_field(tokenizer):
    vocab = tokenizer.vocab_size
    request = parse_completion({"prompt": [[vocab, 4, 5], [6]], "max_tokens": 1, "logprobs": 1})
    assert [c.prompt_ids for c in request.choices] == [(vocab, 4, 5), (6,)]
    check_vocabulary(request.generation, vocab)  # the start marker may come first
    for body, field in [
        ({"prompt": [4, vocab]}, "prompt"),
        ({"prompt": "A", "logit_bias": {str(vocab): 1}}, "logit_bias"),
    ]:
        with pytest.raises(RequestError) as caught:
            check_vocabulary(parse_completion(body).generation, vocab)
        assert caught.value.field == field


def test_tokenize_and_detokenize_round_trip_with_the_start_marker(tokenizer):
    text = "<s>ROMEO:\nCaf\u00e9"
    tokens = tokenize_api.answer("tokenize", {"prompt": text, "return_token_strs": True}, tokenizer)
    assert tokens["tokens"][0] == tokenizer.vocab_size and tokens["count"] == len(tokens["tokens"])
    assert tokens["token_strs"][0] == "<s>"
    assert tokenize_api.answer("v1/detokenize", {"tokens": tokens["tokens"]}, tokenizer) == {
        "prompt": text
    }
    info = tokenize_api.answer("tokenizer_info", None, tokenizer)
    assert info["bos_token"] == "<s>" and info["eos_token"] is None
    with pytest.raises(RequestError) as caught:
        tokenize_api.answer("detokenize", {"tokens": [1, tokenizer.vocab_size]}, tokenizer)
    assert caught.value.field == "tokens"


def test_native_streamed_lines_carry_their_tokens_logprobs(handler):
    frontend = Frontend(handler)
    body = {"prompt": "B", "max_new_tokens": 12, "seed": 2, "logprobs": 2}
    frontend.submit("whole", body)
    frontend.submit("streamed", {**body, "stream": True})
    frontend.run()
    whole = frontend.sent["whole"][-1]
    lines = [json.loads(sent) for sent in frontend.sent["streamed"] if sent]
    chunks = [line["logprobs"] for line in lines if "logprobs" in line]
    assert [t for c in chunks for t in c["tokens"]] == whole["logprobs"]["tokens"]
    assert [o for c in chunks for o in c["text_offset"]] == whole["logprobs"]["text_offset"]
    assert "".join(whole["logprobs"]["tokens"]) == whole["text"]
    assert all(len(top) in (2, 3) for top in whole["logprobs"]["top_logprobs"])
