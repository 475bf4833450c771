"""Request parsing of the generation endpoint: defaults, limits, errors that name the field."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from handlers.lm.api import MAX_NEW_TOKENS, parse_generation
from handlers.schema import RequestError, decode_body


def parse_raw(raw):
    return parse_generation(decode_body(raw))


def test_defaults_and_plain_text_prompt():
    request = parse_raw(b"ROMEO:")
    assert request.generation.prompt == "ROMEO:"
    assert request.generation.max_new_tokens == 200
    assert request.generation.temperature == 0.8
    assert request.generation.stop == []
    assert request.stream is False


def test_whitespace_stop_strings_and_prompts_are_valid():
    request = parse_raw({"prompt": "\n", "stop": ["\n\n", " "], "stream": True})
    assert request.generation.prompt == "\n"
    assert request.generation.stop == ["\n\n", " "]
    assert parse_raw({"prompt": "x", "stop": "\n"}).generation.stop == ["\n"]


@pytest.mark.parametrize(
    ("payload", "field"),
    [
        ({"prompt": ""}, "prompt"),
        ({"prompt": "x", "max_new_tokens": MAX_NEW_TOKENS + 1}, "max_new_tokens"),
        ({"prompt": "x", "max_new_tokens": True}, "max_new_tokens"),
        ({"prompt": "x", "temperature": float("nan")}, "temperature"),
        ({"prompt": "x", "top_p": float("inf")}, "top_p"),
        ({"prompt": "x", "top_p": 0.0}, "top_p"),
        ({"prompt": "x", "seed": 2**64}, "seed"),
        ({"prompt": "x", "stop": [""]}, "stop[0]"),
        ({"prompt": "x", "stop": ["a"] * 5}, "stop"),
        ({"prompt": "x", "n": 2}, "n"),
        (b'{"prompt": "x", "temperature": NaN}', "temperature"),
    ],
)
def test_bad_fields_are_named(payload, field):
    with pytest.raises(RequestError) as caught:
        parse_raw(payload)
    assert caught.value.field == field and caught.value.status == 400


json_values = st.recursive(
    st.none() | st.booleans() | st.floats() | st.integers() | st.text(max_size=20),
    lambda children: (
        st.lists(children, max_size=4)
        | st.dictionaries(
            st.sampled_from(
                [
                    "prompt",
                    "max_new_tokens",
                    "temperature",
                    "top_k",
                    "top_p",
                    "seed",
                    "stop",
                    "stream",
                    "x",
                ]
            ),
            children,
            max_size=6,
        )
    ),
    max_leaves=12,
)


@settings(max_examples=300, deadline=None)
@given(st.one_of(json_values, st.binary(max_size=64)))
def test_arbitrary_input_is_parsed_or_refused_with_4xx(raw):
    try:
        request = parse_raw(raw)
    except RequestError as error:
        assert 400 <= error.status < 500
    else:
        generation = request.generation
        assert 1 <= generation.max_new_tokens <= MAX_NEW_TOKENS
        assert 0 <= generation.temperature <= 5 and 0 < generation.top_p <= 1
