"""Log-probabilities of tokens under the model's own distribution, as scoring clients read them.

What a number means (the same on every route, and what OpenAI's legacy completions and vLLM
return by default): ``log softmax(logits)`` of the model's next-token distribution at
temperature 1, before presence/frequency penalties, logit bias, temperature, top-k and top-p.
So asking for log-probabilities changes no sampled token, and a prompt's score does not depend
on how its continuation is sampled.

What conditions each token:
- a generated token: everything read and generated before it;
- a prompt token (``echo``): the prompt before it; the *first* prompt token is conditioned on
  the model's start state (the zero state every training sequence started from), or on a
  session's state when the request continues one. A prompt may begin with the start marker
  `START_TEXT` (id ``vocab_size``, served by the tokenize endpoints as the BOS token, which is
  what lm-evaluation-harness puts before a rolling window): it is not read by the model (the
  start state already is "the beginning"), and its own entry is ``null``.

Token texts: each token's text is what it adds to the decoded text, so the texts concatenate
to the text. A byte-fallback piece that ends in the middle of a UTF-8 character adds nothing
yet (its text is ""); the piece that completes the character carries all of it.
"""

from __future__ import annotations

from dataclasses import dataclass, replace

import torch

from models.tokenizer import Tokenizer

MAX_LOGPROBS = 5  # most alternatives per token, as OpenAI's legacy completions allow
START_TEXT = "<s>"  # the start marker's text (its id is the vocabulary size)
REPLACEMENT = "\ufffd"  # what an unfinished UTF-8 byte sequence decodes to, for now


@dataclass(frozen=True)
class TokenLogprob:
    """One token: its text, its log-probability (None for the start marker) and the most
    likely tokens at its position as (text, log-probability) pairs, best first."""

    token: str
    logprob: float | None
    top: tuple[tuple[str, float], ...] = ()

    def with_text(self, text: str) -> TokenLogprob:
        return replace(self, token=text)


def token_texts(tokenizer: Tokenizer, ids: list[int]) -> list[str]:
    """What each token adds to the decoded text (see the module docstring): bytes of an
    unfinished character add "" until the token that completes it."""
    texts, pending = [], []
    for token in ids:
        pending.append(token)
        piece = tokenizer.decode(pending)
        if piece.endswith(REPLACEMENT):
            texts.append("")
            continue
        texts.append(piece)
        pending = []
    if pending:  # an unfinished character at the end stays U+FFFD, as a full decode has it
        texts[-1] = tokenizer.decode(pending)
    return texts


class Scorer:
    """Turns logits into `TokenLogprob` entries; alternatives are named by each id's text
    alone (a lone byte piece by its piece name, e.g. ``<0xE2>``)."""

    def __init__(self, tokenizer: Tokenizer) -> None:
        self.tokenizer = tokenizer
        self.names: dict[int, str] = {}

    def name(self, token: int) -> str:
        if token not in self.names:
            text = self.tokenizer.decode([token])
            self.names[token] = text if text and REPLACEMENT not in text else self.piece(token)
        return self.names[token]

    def piece(self, token: int) -> str:
        return self.tokenizer.id_to_piece(token)

    def entries(
        self,
        logits: torch.Tensor,
        tokens: list[int],
        tops: list[int],
        texts: list[str] | None = None,
    ) -> list[TokenLogprob]:
        """One entry per row of ``logits`` [R, V]: ``tokens[r]``'s log-probability and the
        ``tops[r]`` most likely tokens (the token itself added when it is not among them, as
        OpenAI does); named ``texts[r]`` where given, else by the token's own text.

        Every value is read from one log-softmax row, so the token's own value is bitwise the
        best alternative's when the token is the model's top choice."""
        logp = torch.log_softmax(logits.float(), dim=-1)
        most = max(tops, default=0)
        best = logp.topk(most, dim=-1) if most else None
        own = logp.gather(1, torch.tensor(tokens).unsqueeze(1)).squeeze(1).tolist()
        out = []
        for row, (token, top) in enumerate(zip(tokens, tops, strict=True)):
            pairs: dict[int, float] = {}
            if best is not None and top:
                values, ids = best.values[row, :top].tolist(), best.indices[row, :top].tolist()
                pairs = dict(zip(ids, values, strict=True))
            pairs.setdefault(token, own[row])
            named = tuple((self.name(i), value) for i, value in pairs.items())
            text = texts[row] if texts is not None else self.name(token)
            out.append(TokenLogprob(text, own[row], named))
        return out
