"""What one generation request asks for, what it gets, and its text while it is decoded.

`Row` is the per-request bookkeeping the decode loop keeps: its seeded random draws, the text
decoded so far (incrementally), stop strings and how much of the text was streamed. The
rules it implements (stop strings, held-back tails, U+FFFD at a cut character) are listed in
`models.generation`'s docstring; log-probabilities are explained in `models.logprobs`.
"""

from __future__ import annotations

import secrets
from collections import deque
from dataclasses import dataclass, field

from models.logprobs import REPLACEMENT, TokenLogprob
from models.sampling import UniformStream
from models.tokenizer import Tokenizer


@dataclass(frozen=True)
class GenerationRequest:
    prompt: str
    max_new_tokens: int = 200
    temperature: float = 0.8
    top_k: int = 0
    top_p: float = 1.0
    seed: int | None = None
    stop: list[str] = field(default_factory=list)
    # Log-probabilities of the model's own distribution (models/logprobs.py): None for none,
    # else each token's with this many most likely alternatives.
    logprobs: int | None = None
    echo: bool = False  # return the prompt's text (and its tokens' log-probabilities) too
    presence_penalty: float = 0.0  # OpenAI's definitions (models.sampling.penalise)
    frequency_penalty: float = 0.0
    logit_bias: tuple[tuple[int, float], ...] = ()  # (token id, bias) pairs
    prompt_ids: tuple[int, ...] | None = None  # the prompt as token ids (then ``prompt`` is "")

    def __post_init__(self) -> None:
        # The HTTP schema checks these with field names first; this guards direct callers.
        if self.max_new_tokens < 0 or self.temperature < 0 or self.top_k < 0:
            raise ValueError("need max_new_tokens >= 0, temperature >= 0 and top_k >= 0")
        if self.max_new_tokens == 0 and not self.echo:
            raise ValueError("max_new_tokens 0 (scoring only) needs echo")
        if not 0 < self.top_p <= 1:
            raise ValueError("top_p must be in (0, 1]")

    @property
    def penalised(self) -> bool:
        """Whether the logits are changed before sampling (penalties or a bias)."""
        return bool(self.presence_penalty or self.frequency_penalty or self.logit_bias)


@dataclass
class GenerationResult:
    text: str
    generated_tokens: int
    finish_reason: str  # "length" or "stop"
    logprobs: list[TokenLogprob] | None = None  # the generated tokens', when asked
    prompt: str | None = None  # the prompt's text, with echo
    prompt_logprobs: list[TokenLogprob] | None = None  # the prompt tokens', with echo and logprobs


class Row:
    """One request inside the loop: its random draws, decoded text and stream position.

    Text is decoded incrementally: ``final`` is text no later token can change and ``pending``
    the ids after it (byte pieces of an unfinished UTF-8 character). Re-decoding the whole
    sequence every token would cost O(n) per token (46 us at 1,000 tokens, x 64 rows).
    """

    def __init__(self, request: GenerationRequest) -> None:
        self.request = request
        self.stops = [s for s in request.stop if s]
        seed = request.seed if request.seed is not None else secrets.randbits(63)
        self.uniforms = UniformStream(seed)
        self.tokens = 0
        self.final = ""
        self.pending: list[int] = []
        self.sent = 0  # characters already handed to on_text
        self.finish_reason: str | None = None
        self.logprobs: list[TokenLogprob] = []  # generated tokens' (when asked)
        self.logprobs_sent = 0  # entries already handed out with streamed text
        self.logprobs_chars = 0  # the characters of those entries
        self.counts: dict[int, int] = {}  # how often each token was generated (penalties)
        self.prompt_text = ""  # with echo: the prompt as decoded from its tokens
        self.prompt_logprobs: list[TokenLogprob] = []  # with echo and logprobs
        self.prompt_texts: deque[str] = deque()  # texts of prompt tokens still to score
        self.to_score: deque[int] | None = None  # prompt tokens still to score (None: not asked)

    @property
    def text(self) -> str:
        return self.final

    def add(self, token: int, tokenizer: Tokenizer, logprob: TokenLogprob | None = None) -> None:
        """Append a sampled token (with its log-probability entry, when asked)."""
        self.tokens += 1
        self.counts[token] = self.counts.get(token, 0) + 1
        self.pending.append(token)
        piece = tokenizer.decode(self.pending)
        checked = len(self.final)
        if not piece.endswith(REPLACEMENT):
            self.final += piece
            self.pending = []
        if self.tokens >= self.request.max_new_tokens:
            self.finish_reason = "length"
            if self.pending:  # an unfinished character stays as U+FFFD, as a full decode has it
                self.final += tokenizer.decode(self.pending)
                self.pending = []
        if logprob is not None:  # its text: what it added to the final text (bytes: at the end)
            self.logprobs.append(logprob.with_text(self.final[checked:]))
        self._find_stop(checked)

    def _find_stop(self, checked: int) -> None:
        """Cut at the first stop string in the final text (only text after ``checked`` and the
        stop's length before it can hold a new one)."""
        if not self.stops or len(self.final) == checked:
            return
        start = max(0, checked - max(len(s) for s in self.stops) + 1)
        hits = [i for i in (self.final.find(s, start) for s in self.stops) if i >= 0]
        if hits:
            self.final = self.final[: min(hits)]
            self.finish_reason = "stop"
            self.logprobs = cut_to(self.logprobs, len(self.final))

    def take_logprobs(self) -> list[TokenLogprob]:
        """Entries whose text was handed out (all of them once the row has finished)."""
        ready, end = self.logprobs_sent, self.logprobs_chars
        if self.finish_reason is not None:
            ready = len(self.logprobs)
        while ready < len(self.logprobs) and end + len(self.logprobs[ready].token) <= self.sent:
            end += len(self.logprobs[ready].token)
            ready += 1
        fresh = self.logprobs[self.logprobs_sent : ready]
        self.logprobs_sent, self.logprobs_chars = ready, end
        return fresh

    def streamable(self) -> str:
        """New final text that can no longer turn into a stop string, marked as sent."""
        end = len(self.final)
        if self.finish_reason is None:
            end -= _held_back(self.final, self.stops)
        chunk = self.final[self.sent : end]
        self.sent = max(self.sent, end)
        return chunk


def cut_to(entries: list[TokenLogprob], end: int) -> list[TokenLogprob]:
    """The entries whose text starts before character ``end`` (the last one's text clipped
    there): a stop string cut the text at ``end``."""
    kept, offset = [], 0
    for entry in entries:
        stop = offset + len(entry.token)
        if offset >= end:
            break
        kept.append(entry if stop <= end else entry.with_text(entry.token[: end - offset]))
        offset = stop
    return kept


def _held_back(text: str, stops: list[str]) -> int:
    """Length of the longest tail of ``text`` that is a proper prefix of a stop string."""
    longest = 0
    for stop in stops:
        for size in range(min(len(stop) - 1, len(text)), longest, -1):
            if text.endswith(stop[:size]):
                longest = size
                break
    return longest
