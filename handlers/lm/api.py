"""The generation endpoint's request schema: fields, defaults and limits, declared once.

The caps bound the work one request can ask for, so every request finishes well inside the
response timeout even on a 2-core machine (the limits in docs/api.md).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from handlers.schema import Endpoint, Field, RequestError, check_text, optional, validate
from models.generation import GenerationRequest
from models.logprobs import MAX_LOGPROBS
from models.sessions import NEW_SESSION, SessionError

MAX_PROMPT_CHARS = 4000
MAX_NEW_TOKENS = 1000
MAX_STOP_STRINGS = 4
MAX_STOP_CHARS = 64
MAX_SESSION_ID_CHARS = 64
MAX_BIASED_TOKENS = 300  # logit_bias entries, as OpenAI allows

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
        "max_new_tokens",
        int,
        200,
        "Most tokens to generate; 0 (with `echo`) scores the prompt without generating.",
        minimum=0,
        maximum=MAX_NEW_TOKENS,
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
    optional(
        "seed",
        int,
        "Seed for reproducible sampling; null draws one.",
        minimum=0,
        maximum=2**63 - 1,
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
    optional(
        "session",
        str,
        '"new" opens a session (its id comes back as "session"); an id continues one, '
        "reading only this prompt after everything the session has read and written.",
        min_length=1,
        max_length=MAX_SESSION_ID_CHARS,
    ),
    Field("end_session", bool, False, "Forget the session once this request is answered."),
    optional(
        "logprobs",
        int,
        "Log-probabilities of the tokens (the model's own distribution: temperature 1, before "
        "penalties, bias, top-k and top-p), each with this many most likely alternatives "
        "(docs/scoring.md); null for none.",
        minimum=0,
        maximum=MAX_LOGPROBS,
    ),
    Field(
        "echo",
        bool,
        False,
        "Return the prompt before the completion, and with `logprobs` its tokens' too "
        "(not with `stream`).",
    ),
    Field(
        "presence_penalty",
        float,
        0.0,
        "Subtracted once from the logit of every token generated so far (OpenAI's).",
        minimum=-2,
        maximum=2,
    ),
    Field(
        "frequency_penalty",
        float,
        0.0,
        "Subtracted from a token's logit per time it was generated so far (OpenAI's).",
        minimum=-2,
        maximum=2,
    ),
    optional(
        "logit_bias",
        dict,
        'Token id (as a string, see `/tokenize`) -> bias added to its logit, e.g. {"5": -100}.',
        minimum=-100,
        maximum=100,
        max_length=MAX_BIASED_TOKENS,
    ),
)
SESSION_ERRORS = {"404": "unknown session", "409": "session busy", "410": "session expired"}
SESSION_STATUS = {"unknown": 404, "busy": 409, "expired": 410}  # by `SessionError.kind`
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
    check_scoring(values, "max_new_tokens", serving["stream"])
    if values["max_new_tokens"] == 0 and serving["session"] is not None:
        raise RequestError("session", "cannot continue with a scoring-only request")
    values["logit_bias"] = bias_pairs(values["logit_bias"])
    return LMRequest(GenerationRequest(**values), **serving)


def check_scoring(values: dict[str, Any], max_tokens: str, stream: bool) -> None:
    """Combinations both routes refuse: generating nothing without echo (nothing to answer),
    and echo in a stream (the prompt's log-probabilities would come before any text)."""
    if values[max_tokens] == 0 and not values["echo"]:
        raise RequestError(max_tokens, "0 scores the prompt only, and needs echo: true")
    if values["echo"] and stream:
        raise RequestError("echo", "cannot be combined with stream")


def bias_pairs(bias: dict[str, float] | None) -> tuple[tuple[int, float], ...]:
    """``logit_bias``'s keys as token ids (their range is checked against the vocabulary by
    `check_vocabulary`, which needs the served tokenizer)."""
    pairs = []
    for key, value in (bias or {}).items():
        try:
            token = int(key)
        except ValueError:
            raise RequestError("logit_bias", f"key {key!r} is not a token id") from None
        pairs.append((token, value))
    return tuple(pairs)


def check_vocabulary(request: GenerationRequest, vocab_size: int) -> None:
    """Token ids a request names must be the served vocabulary's (the start marker, id
    ``vocab_size``, only as a prompt's first token)."""
    for token, _ in request.logit_bias:
        if not 0 <= token < vocab_size:
            raise RequestError("logit_bias", f"token id {token} is not in [0, {vocab_size})")
    ids = request.prompt_ids or ()
    for position, token in enumerate(ids):
        if not 0 <= token < vocab_size and not (position == 0 and token == vocab_size):
            raise RequestError("prompt", f"token id {token} is not in [0, {vocab_size})")


def session_refused(error: SessionError) -> RequestError:
    """Why a request cannot have its session, with the status that tells the client which
    case it is in (`SESSION_ERRORS`)."""
    return RequestError("session", str(error), SESSION_STATUS[error.kind])
