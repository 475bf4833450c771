"""Request parsing of the sentiment endpoint: what a client sends, what it gets told."""

from __future__ import annotations

import json

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from handlers.schema import MAX_BODY_BYTES, RequestError, decode_body
from handlers.sentiment.api import MAX_TEXT_CHARS, MAX_TEXTS, parse_sentiment


def parse_raw(raw):
    return parse_sentiment(decode_body(raw))


@pytest.mark.parametrize(
    ("raw", "texts", "many"),
    [
        ({"text": "a fine film"}, ["a fine film"], False),
        ({"texts": ["good", "bad"]}, ["good", "bad"], True),
        ("plain text body", ["plain text body"], False),
        (b'{"text": "bytes json"}', ["bytes json"], False),
        (b"bytes plain", ["bytes plain"], False),
        ({"text": "line one\nline two\ttab"}, ["line one\nline two\ttab"], False),
    ],
)
def test_good_inputs(raw, texts, many):
    request = parse_raw(raw)
    assert request.texts == texts
    assert request.many is many


@pytest.mark.parametrize(
    ("raw", "field"),
    [
        ({"text": ""}, "text"),
        ({"text": "   "}, "text"),
        ("", "body"),
        ({}, "text"),
        ({"text": "a", "texts": ["b"]}, "text"),
        ({"text": 3}, "text"),
        ({"texts": "not a list"}, "texts"),
        ({"texts": []}, "texts"),
        ({"texts": ["ok", 5]}, "texts[1]"),
        ({"texts": ["ok", ""]}, "texts[1]"),
        ({"texts": ["x"] * (MAX_TEXTS + 1)}, "texts"),
        ({"text": "x" * (MAX_TEXT_CHARS + 1)}, "text"),
        ({"text": "bell \x07 inside"}, "text"),
        ({"text": "ok", "colour": "red"}, "colour"),
        ({"text": "ok", "explain": "yes"}, "explain"),
        ([1, 2], "body"),
        (b'{"text": "unterminated', "body"),
        (b"\xff\xfe not utf-8", "body"),
    ],
)
def test_bad_inputs_name_the_field(raw, field):
    with pytest.raises(RequestError) as caught:
        parse_raw(raw)
    error = caught.value
    assert error.status == 400
    assert error.field == field
    body = error.to_json()
    assert body["field"] == field and field in body["error"]
    json.dumps(body)  # the error body is valid JSON


json_values = st.recursive(
    st.none() | st.booleans() | st.floats() | st.integers() | st.text(),
    lambda children: (
        st.lists(children, max_size=4)
        | st.dictionaries(st.sampled_from(["text", "texts", "explain", "x"]), children, max_size=4)
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
        assert request.texts and all(isinstance(t, str) and t.strip() for t in request.texts)


def test_a_body_over_the_limit_is_refused_with_413_before_it_is_parsed():
    raw = b'{"text": "' + b"x" * MAX_BODY_BYTES + b'"}'
    with pytest.raises(RequestError) as refused:
        decode_body(raw)
    assert refused.value.status == 413 and refused.value.field == "body"
    assert parse_raw(b'{"text": "fine"}')  # far below: parsed as usual
