"""The served tokenizer over HTTP, in vLLM's shape: count tokens, build ``logit_bias``, and let
lm-evaluation-harness's default ("remote") tokenizer backend count context in our own pieces.

    POST /predictions/lm/1.0/tokenize         {"prompt": "ROMEO:"}  -> {"tokens": [...], ...}
    POST /predictions/lm/1.0/detokenize       {"tokens": [48, 7]}   -> {"prompt": "..."}
    GET  /predictions/lm/1.0/tokenizer_info                         -> {"bos_token": "<s>", ...}

Each is also served under ``v1/`` (``…/v1/tokenize``). lm-evaluation-harness strips
``/v1/completions`` from its base URL and asks the server root, as vLLM serves them.

The tokenizer has no BOS or EOS of its own (the LM was trained on plain text); the start
marker ``<s>`` (id = vocabulary size, models/logprobs.py) is offered as the BOS token: a prompt
that begins with it is read from the model's start state, which is what a harness's "prefix
token" before a rolling window means.
"""

from __future__ import annotations

from typing import Any

from handlers.lm.api import MAX_PROMPT_CHARS
from handlers.schema import Endpoint, Field, RequestError, check_ids, optional, validate
from models.logprobs import START_TEXT
from models.tokenizer import Tokenizer

TOKENIZE, DETOKENIZE, INFO = "tokenize", "detokenize", "tokenizer_info"
ROUTES = {
    f"{prefix}{name}": name for name in (TOKENIZE, DETOKENIZE, INFO) for prefix in ("", "v1/")
}
MAX_TOKEN_IDS = MAX_PROMPT_CHARS  # a prompt given as token ids holds at most this many

MODEL = optional("model", str, "Any name (accepted and ignored).")
TOKENIZE_FIELDS = (
    MODEL,
    Field(
        "prompt",
        str,
        doc=f"Text to split into the served tokenizer's pieces; a leading `{START_TEXT}` is the "
        "start marker.",
        max_length=MAX_PROMPT_CHARS,
        blank_ok=True,
        example="ROMEO:",
    ),
    Field("add_special_tokens", bool, True, "Accepted; the tokenizer adds none."),
    Field("return_token_strs", bool, False, "Also return each token's text (`token_strs`)."),
)
DETOKENIZE_FIELDS = (
    MODEL,
    Field("tokens", "ids", doc="Token ids to decode.", max_length=MAX_TOKEN_IDS),
)
ENDPOINTS = (
    Endpoint(
        "tokenize", "/1.0/" + TOKENIZE, "Text to token ids", "TokenizeRequest", TOKENIZE_FIELDS
    ),
    Endpoint(
        "detokenize",
        "/1.0/" + DETOKENIZE,
        "Token ids to text",
        "DetokenizeRequest",
        DETOKENIZE_FIELDS,
    ),
    Endpoint(
        "tokenizer-info", "/1.0/" + INFO, "The served tokenizer's special tokens", method="get"
    ),
)


def encode(tokenizer: Tokenizer, text: str) -> list[int]:
    """Token ids of ``text``; a leading start marker is its own id (the vocabulary size)."""
    if text.startswith(START_TEXT):
        return [tokenizer.vocab_size, *tokenizer.encode(text[len(START_TEXT) :])]
    return tokenizer.encode(text)


def decode(tokenizer: Tokenizer, ids: list[int], field: str = "tokens") -> str:
    """Text of token ids (the start marker only first); unknown ids are refused naming
    ``field``."""
    vocab = tokenizer.vocab_size
    for position, token in enumerate(ids):
        if not 0 <= token < vocab and not (position == 0 and token == vocab):
            raise RequestError(field, f"token id {token} is not in [0, {vocab})")
    if ids[:1] == [vocab]:
        return START_TEXT + tokenizer.decode(ids[1:])
    return tokenizer.decode(ids)


def answer(route: str, body: Any, tokenizer: Tokenizer) -> dict[str, Any]:
    """The JSON answer of one tokenizer route (``route`` as `ROUTES` names it)."""
    name = ROUTES[route]
    if name == INFO:
        return info(tokenizer)
    if name == TOKENIZE:
        values = validate(body, TOKENIZE_FIELDS)
        ids = encode(tokenizer, values["prompt"])
        reply: dict[str, Any] = {"count": len(ids), "max_model_len": MAX_TOKEN_IDS, "tokens": ids}
        if values["return_token_strs"]:
            reply["token_strs"] = [piece(tokenizer, token) for token in ids]
        return reply
    values = validate(body, DETOKENIZE_FIELDS)
    return {"prompt": decode(tokenizer, check_ids("tokens", values["tokens"], 0, MAX_TOKEN_IDS))}


def piece(tokenizer: Tokenizer, token: int) -> str:
    return START_TEXT if token == tokenizer.vocab_size else tokenizer.id_to_piece(token)


def info(tokenizer: Tokenizer) -> dict[str, Any]:
    """vLLM's ``tokenizer_info`` fields that a client reads: the special tokens (BOS: the
    start marker; no EOS or PAD: the model was trained on plain text) and the sizes."""
    return {
        "tokenizer_class": "SentencePieceTokenizer",
        "bos_token": START_TEXT,
        "eos_token": None,
        "pad_token": None,
        "unk_token": tokenizer.id_to_piece(tokenizer.unk_id),
        "vocab_size": tokenizer.vocab_size + 1,  # the pieces and the start marker
        "model_max_length": MAX_TOKEN_IDS,
    }
