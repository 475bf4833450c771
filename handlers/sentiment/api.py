"""The sentiment endpoint's request schema: fields, defaults and limits, declared once
(docs/api.md's table and docs/openapi.json are generated from it)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from handlers.schema import Endpoint, Field, RequestError, check_text, optional, validate

MAX_TEXT_CHARS = 2000
MAX_TEXTS = 64

FIELDS = (
    optional(
        "text",
        str,
        "One text to classify.",
        min_length=1,
        max_length=MAX_TEXT_CHARS,
        example="a gripping , funny movie",
    ),
    optional(
        "texts",
        list,
        "Several texts, answered as a list in the same order.",
        min_length=1,
        max_length=MAX_TEXTS,
        item_max_length=MAX_TEXT_CHARS,
    ),
    Field("explain", bool, False, "Also return per-token LSTM gate activations."),
)
ENDPOINTS = (Endpoint("sentiment", "", "Classify sentiment", "SentimentRequest", FIELDS),)


@dataclass(frozen=True)
class SentimentRequest:
    texts: list[str]
    many: bool  # answer with a list (the request used "texts")
    explain: bool = False


def parse_sentiment(body: Any) -> SentimentRequest:
    """A JSON object with "text" or "texts", or a plain-text body holding the text itself."""
    if isinstance(body, str):
        return SentimentRequest([check_text("text", body, 1, MAX_TEXT_CHARS)], many=False)
    values = validate(body, FIELDS)
    if (values["text"] is None) == (values["texts"] is None):
        raise RequestError("text", 'give exactly one of "text" or "texts"')
    if values["texts"] is not None:
        return SentimentRequest(values["texts"], many=True, explain=values["explain"])
    return SentimentRequest([values["text"]], many=False, explain=values["explain"])
