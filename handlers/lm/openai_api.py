"""OpenAI's completions API on our generation engine: its fields mapped to ours, its answer,
stream and error shapes, so that the official `openai` client (and tools built on it) work.

    POST /predictions/lm/1.0/v1/completions    OpenAI(base_url=".../predictions/lm/1.0/v1")
    GET  /predictions/lm/1.0/v1/models

TorchServe hands the path after ``/predictions/{model}/{version}/`` to the handler as the
request header ``url_path``, and its token authorization is the ``Authorization: Bearer``
header that OpenAI clients send, so the route needs no proxy.
"""

from __future__ import annotations

import json
import time
from dataclasses import dataclass, replace
from typing import Any

from handlers.lm import api as lm_api
from handlers.lm.tokenize_api import MAX_TOKEN_IDS
from handlers.schema import Endpoint, Field, RequestError, check_ids, optional, validate
from models.generation import GenerationRequest, GenerationResult
from models.logprobs import TokenLogprob

COMPLETIONS = "v1/completions"
MODELS = "v1/models"
ROUTES = ("", COMPLETIONS, MODELS)  # "" is our own API
EVENT_STREAM = "text/event-stream"
JSON = "application/json"
DONE = "data: [DONE]\n\n"
MAX_PROMPTS = 8
MAX_N = 8
MAX_CHOICES = 16  # prompts x n: each choice is a row of the decode loop
SEED_SPAN = 1 << 63


def _ours(field: str, **changes: Any) -> Field:
    """A field of our own API under OpenAI's name or default: each limit is declared once."""
    spec = next(spec for spec in lm_api.FIELDS if spec.name == field)
    return replace(spec, **changes)


FIELDS = (
    optional("model", str, "Any name; answers carry the served model's."),
    Field(
        "prompt",
        list,
        doc="Text to continue: a string, or a list of strings (each gets its own choices); or "
        f"token ids (at most {MAX_TOKEN_IDS}): a list of ids, or a list of such lists.",
        min_length=1,
        max_length=MAX_PROMPTS,
        item_max_length=lm_api.MAX_PROMPT_CHARS,
        blank_ok=True,
        single_as_list=True,
    ),
    _ours("max_new_tokens", name="max_tokens", default=16),
    _ours("temperature", default=1.0),
    _ours("top_p"),
    _ours("seed"),
    _ours("stop", default=None, nullable=True),
    _ours("stream", doc="Server-Sent Events, ending with `data: [DONE]`."),
    Field(
        "n",
        int,
        1,
        f"Choices per prompt (prompts x n at most {MAX_CHOICES}); with a seed, choice j samples "
        "with seed + j.",
        minimum=1,
        maximum=MAX_N,
    ),
    _ours("logprobs"),
    _ours("echo"),
    _ours("presence_penalty"),
    _ours("frequency_penalty"),
    _ours("logit_bias"),
    optional("user", str, "Accepted and ignored."),
)
ENDPOINTS = (
    Endpoint(
        "openai",
        "/1.0/" + COMPLETIONS,
        "Generate text (OpenAI completions)",
        "CompletionRequest",
        FIELDS,
    ),
    Endpoint("openai-models", "/1.0/" + MODELS, "OpenAI model list", method="get"),
)


def parse_completion(body: Any) -> lm_api.LMRequest:
    """An OpenAI completions body as the request our own route makes, one generation per
    choice: prompt-major, as OpenAI numbers choices (prompt i, choice j is index i * n + j)."""
    body, token_prompts = split_token_prompts(body)
    values = validate(body, FIELDS)
    lm_api.check_scoring(values, "max_tokens", values["stream"])
    prompts, n, seed = values["prompt"], values["n"], values["seed"]
    if len(prompts) * n > MAX_CHOICES:
        raise RequestError("n", f"{len(prompts)} prompts x n={n} exceeds {MAX_CHOICES} choices")
    bias = lm_api.bias_pairs(values["logit_bias"])
    choices = [
        GenerationRequest(
            prompt="" if token_prompts else prompt,
            max_new_tokens=values["max_tokens"],
            temperature=values["temperature"],
            top_p=values["top_p"],
            seed=None if seed is None else (seed + j) % SEED_SPAN,
            stop=values["stop"] or [],
            logprobs=values["logprobs"],
            echo=values["echo"],
            presence_penalty=values["presence_penalty"],
            frequency_penalty=values["frequency_penalty"],
            logit_bias=bias,
            prompt_ids=token_prompts[i] if token_prompts else None,
        )
        for i, prompt in enumerate(prompts)
        for j in range(n)
    ]
    return lm_api.LMRequest(choices[0], stream=values["stream"], more=tuple(choices[1:]))


def split_token_prompts(body: Any) -> tuple[Any, list[tuple[int, ...]] | None]:
    """A body whose prompt is token ids (a list of ints, or a list of such lists, as OpenAI's
    API takes): the body with placeholder text prompts to validate the rest, and the ids."""
    prompt = body.get("prompt") if isinstance(body, dict) else None
    if not isinstance(prompt, list) or not prompt or isinstance(prompt[0], str):
        return body, None
    lists = prompt if isinstance(prompt[0], list) else [prompt]
    if len(lists) > MAX_PROMPTS:
        raise RequestError("prompt", f"holds {len(lists)} prompts; the limit is {MAX_PROMPTS}")
    ids = [tuple(check_ids("prompt", item, 1, MAX_TOKEN_IDS)) for item in lists]
    return {**body, "prompt": ["ids"] * len(ids)}, ids


def logprobs_body(entries: list[TokenLogprob], offset: int = 0) -> dict[str, Any]:
    """OpenAI's legacy ``logprobs`` object; ``text_offset`` counts characters of the choice's
    text (from ``offset``, where earlier chunks of a stream ended)."""
    offsets = []
    for entry in entries:
        offsets.append(offset)
        offset += len(entry.token)
    return {
        "tokens": [entry.token for entry in entries],
        "token_logprobs": [entry.logprob for entry in entries],
        "top_logprobs": [
            dict(entry.top) if entry.logprob is not None else None for entry in entries
        ],
        "text_offset": offsets,
    }


def choice_text(result: GenerationResult) -> tuple[str, dict[str, Any] | None]:
    """A finished choice's text (the prompt first, with echo) and its logprobs object."""
    text = (result.prompt or "") + result.text
    if result.logprobs is None:
        return text, None
    return text, logprobs_body((result.prompt_logprobs or []) + result.logprobs)


def error_body(error: RequestError) -> dict[str, Any]:
    """OpenAI's error shape; its clients raise BadRequestError (400) naming ``param``."""
    kind = "invalid_request_error" if error.status < 500 else "server_error"
    return {
        "error": {"message": str(error), "type": kind, "param": error.field, "code": None},
    }


def models_body(model: str) -> dict[str, Any]:
    return {
        "object": "list",
        "data": [{"id": model, "object": "model", "created": 0, "owned_by": "rnn-serve"}],
    }


@dataclass
class CompletionIds:
    """What every answer and event of one completion repeats."""

    id: str
    model: str
    created: int
    prompt_tokens: int

    @classmethod
    def new(cls, request_id: str, model: str, prompt_tokens: int) -> CompletionIds:
        return cls(f"cmpl-{request_id}", model, int(time.time()), prompt_tokens)

    def body(self, choices: list[tuple[int, str, str | None, dict | None]]) -> dict[str, Any]:
        """A completion object holding ``(index, text, finish_reason, logprobs)`` choices."""
        return {
            "id": self.id,
            "object": "text_completion",
            "created": self.created,
            "model": self.model,
            "choices": [
                {"index": index, "text": text, "finish_reason": reason, "logprobs": logprobs}
                for index, text, reason, logprobs in choices
            ],
        }

    def answer(self, results: list[GenerationResult]) -> dict[str, Any]:
        completion = sum(result.generated_tokens for result in results)
        usage = {
            "prompt_tokens": self.prompt_tokens,
            "completion_tokens": completion,
            "total_tokens": self.prompt_tokens + completion,
        }
        choices = []
        for index, result in enumerate(results):
            text, logprobs = choice_text(result)
            choices.append((index, text, result.finish_reason, logprobs))
        return {**self.body(choices), "usage": usage}


def event(payload: dict[str, Any]) -> str:
    return f"data: {json.dumps(payload)}\n\n"
