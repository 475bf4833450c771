"""What one generation request asks for, what it gets, and its text while it is decoded.

`Row` is the per-request bookkeeping the decode loop keeps: its seeded random draws, the text
decoded so far (incrementally), stop strings and how much of the text was streamed. The
rules it implements (stop strings, held-back tails, U+FFFD at a cut character) are listed in
`models.generation`'s docstring.
"""

from __future__ import annotations

import secrets
from dataclasses import dataclass, field

from models.sampling import UniformStream
from models.tokenizer import Tokenizer

REPLACEMENT = "\ufffd"  # what an unfinished UTF-8 byte sequence decodes to, for now


@dataclass(frozen=True)
class GenerationRequest:
    prompt: str
    max_new_tokens: int = 200
    temperature: float = 0.8
    top_k: int = 0
    top_p: float = 1.0
    seed: int | None = None
    stop: list[str] = field(default_factory=list)

    def __post_init__(self) -> None:
        # The HTTP schema checks these with field names first; this guards direct callers.
        if self.max_new_tokens < 1 or self.temperature < 0 or self.top_k < 0:
            raise ValueError("need max_new_tokens >= 1, temperature >= 0 and top_k >= 0")
        if not 0 < self.top_p <= 1:
            raise ValueError("top_p must be in (0, 1]")


@dataclass
class GenerationResult:
    text: str
    generated_tokens: int
    finish_reason: str  # "length" or "stop"


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

    @property
    def text(self) -> str:
        return self.final

    def add(self, token: int, tokenizer: Tokenizer) -> None:
        self.tokens += 1
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

    def streamable(self) -> str:
        """New final text that can no longer turn into a stop string, marked as sent."""
        end = len(self.final)
        if self.finish_reason is None:
            end -= _held_back(self.final, self.stops)
        chunk = self.final[self.sent : end]
        self.sent = max(self.sent, end)
        return chunk


def _held_back(text: str, stops: list[str]) -> int:
    """Length of the longest tail of ``text`` that is a proper prefix of a stop string."""
    longest = 0
    for stop in stops:
        for size in range(min(len(stop) - 1, len(text)), longest, -1):
            if text.endswith(stop[:size]):
                longest = size
                break
    return longest
