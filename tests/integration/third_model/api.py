"""The topic endpoint's one field, a text (tests/integration/test_third_model.py's model)."""

from __future__ import annotations

from typing import Any

from handlers.schema import Endpoint, Field, validate

FIELDS = (
    Field(
        "text",
        str,
        doc="A sentence about animals, food or sport.",
        min_length=1,
        max_length=500,
        example="the cat chased a mouse",
    ),
)
ENDPOINTS = (Endpoint("topic", "", "Name a sentence's topic", "TopicRequest", FIELDS),)


def parse_topic(body: Any) -> str:
    return validate(body, FIELDS)["text"]
