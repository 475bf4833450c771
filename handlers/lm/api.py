"""The generation endpoint's request schema: fields, defaults and limits, declared once.

The caps bound the work one request can ask for, so every request finishes well inside the
response timeout even on a 2-core machine (the limits in docs/api.md).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from handlers.schema import Endpoint, Field, RequestError, check_text, validate
from models.generation import GenerationRequest

MAX_PROMPT_CHARS = 4000
MAX_NEW_TOKENS = 1000
MAX_STOP_STRINGS = 4
MAX_STOP_CHARS = 64
MAX_SESSION_ID_CHARS = 64
NEW_SESSION = "new"

FIELDS = (
    Field(
        "prompt",
        str,
        blank_ok=True,
        doc="Text to continue.",
        min_length=1,
        max_length=MAX_PROMPT_CHARS,
        example="ROMEO:",
    ),
    Field(
        "max_new_tokens", int, 200, "Most tokens to generate.", minimum=1, maximum=MAX_NEW_TOKENS
    ),
    Field("temperature", float, 0.8, "Softmax temperature; 0 means greedy.", minimum=0, maximum=5),
    Field(
        "top_k",
        int,
        0,
        "Sample among the k most likely tokens; 0 turns it off.",
        minimum=0,
        maximum=100_000,
    ),
    Field(
        "top_p",
        float,
        1.0,
        "Nucleus sampling: smallest set of tokens with this mass.",
        minimum=0,
        maximum=1,
        exclusive_minimum=True,
    ),
    Field(
        "seed",
        int,
        None,
        "Seed for reproducible sampling; null draws one.",
        minimum=0,
        maximum=2**63 - 1,
        nullable=True,
    ),
    Field(
        "stop",
        list,
        [],
        "Strings that end generation (not included in the text).",
        max_length=MAX_STOP_STRINGS,
        item_max_length=MAX_STOP_CHARS,
        blank_ok=True,
        single_as_list=True,
    ),
    Field("stream", bool, False, "Send the text in chunks as it is produced."),
    Field(
        "session",
        str,
        None,
        '"new" opens a session (its id comes back as "session"); an id continues one, '
        "reading only this prompt after everything the session has read and written.",
        min_length=1,
        max_length=MAX_SESSION_ID_CHARS,
        nullable=True,
    ),
    Field("end_session", bool, False, "Forget the session once this request is answered."),
)
SESSION_ERRORS = {"404": "unknown session", "409": "session busy", "410": "session expired"}
ENDPOINTS = (
    Endpoint("lm", "", "Generate text (ours)", "GenerationRequest", FIELDS, SESSION_ERRORS),
)


@dataclass(frozen=True)
class LMRequest:
    generation: GenerationRequest
    stream: bool = False
    session: str | None = None  # NEW_SESSION or the id of one
    end_session: bool = False
    more: tuple[GenerationRequest, ...] = ()  # further choices (OpenAI's prompt lists and n)

    @property
    def choices(self) -> tuple[GenerationRequest, ...]:
        return (self.generation, *self.more)


def parse_generation(body: Any) -> LMRequest:
    """A JSON object as declared in FIELDS, or a plain-text body holding the prompt."""
    if isinstance(body, str):
        body = {"prompt": check_text("prompt", body, 1, MAX_PROMPT_CHARS, blank_ok=True)}
    values = validate(body, FIELDS)
    serving = {name: values.pop(name) for name in ("stream", "session", "end_session")}
    if serving["end_session"] and serving["session"] in (None, NEW_SESSION):
        raise RequestError("end_session", "needs the id of an open session in 'session'")
    return LMRequest(GenerationRequest(**values), **serving)
