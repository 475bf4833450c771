"""The published OpenAPI document is generated from the validators and agrees with them."""

from __future__ import annotations

import json
from pathlib import Path

import jsonschema
import pytest
from openapi_spec_validator import validate as validate_spec

from handlers import openapi
from handlers.lm import api as lm_api
from handlers.lm import openai_api
from handlers.schema import RequestError, validate
from handlers.sentiment import api as sentiment_api

DOC = Path(__file__).resolve().parents[2] / "docs" / "openapi.json"

CASES = {
    "GenerationRequest": (
        lm_api.FIELDS,
        [
            {"prompt": "ROMEO:"},
            {"prompt": "x", "max_new_tokens": 5, "temperature": 0, "top_p": 1, "stop": "\n"},
            {"prompt": "x", "seed": None, "session": "new", "stream": True},
            {},
            {"prompt": ""},
            {"prompt": "x", "max_new_tokens": 0},
            {"prompt": "x", "top_p": 0},
            {"prompt": "x", "stop": ["a", "b", "c", "d", "e"]},
            {"prompt": "x", "best_of": 2},
            {"prompt": "x", "temperature": "hot"},
        ],
    ),
    "SentimentRequest": (
        sentiment_api.FIELDS,
        [{"text": "fine"}, {"texts": ["a", "b"]}, {"text": 3}, {"texts": []}, {"txt": "a"}],
    ),
    "CompletionRequest": (
        openai_api.FIELDS,
        [
            {"prompt": "x", "max_tokens": 3, "model": "lm"},
            {"prompt": ["x"], "stop": "y"},
            {"prompt": ["x", "y"], "n": 8},
            {"prompt": ["x"] * 9},
            {"prompt": "x", "n": 9},
            {"prompt": "x", "max_tokens": 1001},
        ],
    ),
}


def test_the_committed_document_is_up_to_date():
    assert DOC.read_text() == openapi.render(), (
        "run: python -m handlers.openapi > docs/openapi.json"
    )


def test_the_committed_document_is_valid_openapi():
    validate_spec(json.loads(DOC.read_text()))


@pytest.mark.parametrize("name", sorted(CASES))
def test_the_schema_accepts_exactly_what_the_validator_accepts(name):
    fields, payloads = CASES[name]
    schema = {**openapi.document()["components"]["schemas"][name]}
    checker = jsonschema.Draft202012Validator(schema)
    for payload in payloads:
        try:
            validate(payload, fields)
            ours = True
        except RequestError:
            ours = False
        assert checker.is_valid(payload) == ours, (name, payload)
