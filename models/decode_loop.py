"""Continuous batching's engine: one decode loop that requests join and leave between steps.

A server calls `step` again and again; between calls it may `add` new requests and `drop`
requests whose clients went away. A row that finishes leaves at once and hands back its
result, and, when asked, a `Carry`: what a session needs to continue later.

Prompts are read inside the same batched step as the running rows' sampled tokens: each step
feeds every row one token, a prompt token while it has some left, else the token it sampled
last. Reading a newcomer's prompt in a loop of its own would run ~100 steps at a batch of one
or two rows per arrival, which under steady traffic cost much of the served throughput
(measured with `make bench`); inside the shared step a prompt token costs about what a
generated one does.
A call runs at least ``tokens`` steps, and more (up to `PROMPT_STEPS`) while a newcomer is
still reading its prompt, so that a short prompt gets its first tokens in its first call.

Why rows can come and go without changing anyone's answer: every operation is row-wise
(`DecodeStep` and `sample` mix no rows; see models/decode_step.py), and a row's randomness
comes from its own seeded generator, so a seeded request gets the same text alone, in a full
batch or joining one mid-flight (tests/unit/test_decode_loop.py).

Scoring (models/logprobs.py): a row that asked for its prompt's log-probabilities (``echo``
with ``logprobs``) gets the head's logits at every prompt position, inside the same step; a
row with ``max_new_tokens`` 0 leaves once its prompt is read, without sampling. Penalties and
logit bias change a row's logits before it samples (`models.sampling.penalise`), row by row.

Errors stay in their row: a token that cannot be sampled or decoded ends only that row
(``Update.error``); the others go on.
"""

from __future__ import annotations

import logging
from collections import deque
from collections.abc import Hashable, Iterable
from dataclasses import dataclass, field

import torch

from models.decode_step import DecodeStep
from models.language_model import State, zero_state
from models.logprobs import START_TEXT, Scorer, TokenLogprob, token_texts
from models.requests import GenerationRequest, GenerationResult, Row
from models.sampling import draw_uniforms, penalise, sample
from models.tokenizer import Tokenizer

logger = logging.getLogger(__name__)

INTERNAL_ERROR = "could not be processed (internal error)"
PROMPT_STEPS = 128  # most steps one call runs for newcomers still reading their prompts


@dataclass
class Carry:
    """A finished row's memory: the state after every token it read except the last one it
    sampled, and that token (fed first when the session continues)."""

    state: State  # each [layers, 1, hidden]
    token: int

    @property
    def nbytes(self) -> int:
        return sum(s.element_size() * s.nelement() for s in self.state)


@dataclass(frozen=True)
class Turn:
    """A row's part in a session: the state it continues (``carry``; None starts afresh) and
    whether it hands back its own `Carry` when it finishes (``keep``). One value, passed from
    the handler through the engine to whichever loop decodes the row."""

    carry: Carry | None = None
    keep: bool = False


ALONE = Turn()  # a request outside any session


@dataclass
class Update:
    """What one `step` call produced for a row."""

    text: str = ""  # final text new since the last update (never taken back)
    result: GenerationResult | None = None  # set once the row has finished
    carry: Carry | None = None  # with the result, for rows whose `Turn` keeps it
    error: str | None = None  # the row failed and left the loop
    logprobs: list[TokenLogprob] = field(default_factory=list)  # of ``text``'s tokens


class DecodeLoop:
    """Rows keyed by the caller's ids (a request id), decoded together by ``step`` (the
    served model's `DecodeStep`); ``tokenizer`` reads prompts and writes the text."""

    def __init__(self, step: DecodeStep, tokenizer: Tokenizer) -> None:
        self.decoder = step
        self.tokenizer = tokenizer
        self.rows: dict[Hashable, Row] = {}
        self.keys: list[Hashable] = []  # rows in the state, in state order
        self.feed: dict[Hashable, deque[int]] = {}  # tokens each row reads next
        self.keep: set[Hashable] = set()
        self.joining: dict[Hashable, Carry | None] = {}  # added since the last step
        self.state: State | None = None
        self.params: list[torch.Tensor] = []
        self.scorer = Scorer(self.tokenizer)
        self._start_logits: torch.Tensor | None = None

    def __len__(self) -> int:
        return len(self.rows)

    def __contains__(self, key: Hashable) -> bool:
        return key in self.rows

    def add(self, key: Hashable, request: GenerationRequest, turn: Turn = ALONE) -> int:
        """Queue a request; it joins at the next `step`. With the turn's ``carry`` the prompt
        continues that state (its stored token is read first); its ``keep`` asks for the row's
        own `Carry` when it finishes. Returns the prompt's length in tokens."""
        if key in self:
            raise KeyError(f"{key!r} is already in the loop")
        carry = turn.carry
        if request.max_new_tokens == 0 and turn.keep:
            raise ValueError("a scoring-only row (max_new_tokens 0) cannot keep a session")
        prompt, start = self._prompt(request)
        ids = prompt if carry is None else [carry.token, *prompt]
        row = self.rows[key] = Row(request)
        if request.echo:
            self._echo(row, prompt, start, fresh=carry is None)
        self.feed[key] = deque(ids or [self.tokenizer.unk_id])
        self.joining[key] = carry
        if turn.keep:
            self.keep.add(key)
        return len(prompt)

    def _prompt(self, request: GenerationRequest) -> tuple[list[int], bool]:
        """The prompt's token ids, and whether it began with the start marker (which is not
        read: see models/logprobs.py)."""
        vocab = self.tokenizer.vocab_size
        if request.prompt_ids is not None:
            ids = list(request.prompt_ids)
            start = ids[:1] == [vocab]
            ids = ids[1:] if start else ids
            if any(not 0 <= token < vocab for token in ids):
                raise ValueError(f"prompt ids must lie in [0, {vocab})")
            return ids, start
        start = request.prompt.startswith(START_TEXT)
        text = request.prompt[len(START_TEXT) :] if start else request.prompt
        return self.tokenizer.encode(text), start

    def _echo(self, row: Row, prompt: list[int], start: bool, fresh: bool) -> None:
        """The prompt's text for an echo, and with logprobs its first token's entry (from the
        start state for a fresh row; a session's row scores it after its carried token)."""
        texts = token_texts(self.tokenizer, prompt)
        row.prompt_text = (START_TEXT if start else "") + "".join(texts)
        if row.request.logprobs is None:
            return
        row.prompt_logprobs = [TokenLogprob(START_TEXT, None)] if start else []
        row.prompt_texts, row.to_score = deque(texts), deque(prompt)
        if fresh and prompt:
            self._score_prompts([row], self.start_logits)

    @property
    def start_logits(self) -> torch.Tensor:
        """The next-token logits [1, V] of the model's start state (what the first token of a
        fresh prompt is conditioned on), computed once."""
        if self._start_logits is None:
            with torch.inference_mode():
                state = zero_state(self.decoder.config, 1, self.decoder.device)
                self._start_logits = self.decoder.logits(state).float().cpu()
        return self._start_logits

    def _score_prompts(self, rows: list[Row], logits: torch.Tensor) -> None:
        """Each row's next prompt token scored from its row of ``logits``."""
        tokens = [row.to_score.popleft() for row in rows]
        tops = [row.request.logprobs for row in rows]
        texts = [row.prompt_texts.popleft() for row in rows]
        for row, entry in zip(rows, self.scorer.entries(logits, tokens, tops, texts), strict=True):
            row.prompt_logprobs.append(entry)

    def drop(self, keys: Iterable[Hashable]) -> None:
        """Forget rows (a client that went away); unknown keys are ignored."""
        gone = {k for k in keys if k in self}
        if not gone:
            return
        for key in gone & set(self.joining):  # not in the state yet
            del self.joining[key]
            self._forget(key)
        positions = [p for p, key in enumerate(self.keys) if key not in gone]
        if len(positions) < len(self.keys):
            self._select(positions)

    @torch.inference_mode()
    def step(self, tokens: int = 1) -> dict[Hashable, Update]:
        """Admit new rows, then run at least ``tokens`` steps (each row reads one token per
        step; a row that has read its prompt samples one)."""
        if self.joining:
            self._admit()
        prompt_left = max((len(self.feed[k]) for k in self.keys), default=0)
        steps = max(tokens, min(prompt_left, PROMPT_STEPS))
        updates: dict[Hashable, Update] = {}
        for _ in range(steps):
            if not self.keys:
                break
            self._step_once(updates)
        return updates

    def _admit(self) -> None:
        """Append the new rows' starting states (zeros, or a session's) to the batch."""
        config, device = self.decoder.config, self.decoder.device
        columns = [
            carry.state if carry is not None else zero_state(config, 1, device)
            for carry in self.joining.values()
        ]
        fresh = tuple(torch.cat(parts, dim=1) for parts in zip(*columns, strict=True))
        if self.state is None:
            self.state = fresh
        else:
            pairs = zip(self.state, fresh, strict=True)
            self.state = tuple(torch.cat(pair, dim=1) for pair in pairs)
        self.keys += list(self.joining)
        self.joining = {}
        self._refresh_params()

    def _step_once(self, updates: dict[Hashable, Update]) -> None:
        device = self.decoder.device
        inputs = torch.tensor([self.feed[key].popleft() for key in self.keys])
        self.state = self.decoder.advance(inputs.to(device), self.state)
        ready = [p for p, key in enumerate(self.keys) if not self.feed[key]]
        scoring = [
            p for p, key in enumerate(self.keys) if self.feed[key] and self.rows[key].to_score
        ]
        if not ready and not scoring:
            return
        wanted = torch.tensor(sorted(ready + scoring))
        hidden = (self.state[0][:, wanted.to(device)],)
        every = self.decoder.logits(hidden).float().cpu()
        at = {position: i for i, position in enumerate(wanted.tolist())}
        if scoring:
            rows = [self.rows[self.keys[p]] for p in scoring]
            self._score_prompts(rows, every[[at[p] for p in scoring]])
        leaving = self._scored_only(ready, updates)  # positions of rows that failed or finished
        ready = [p for p in ready if p not in leaving]
        if not ready:
            if leaving:
                self._select([p for p in range(len(self.keys)) if p not in leaving])
            return
        index = torch.tensor(ready)
        logits = every if len(ready) == len(at) else every[[at[p] for p in ready]]
        rows = [self.rows[self.keys[p]] for p in ready]
        sampled = self._sample(rows, self._penalised(rows, logits), [p[index] for p in self.params])
        entries = self._logprobs(rows, logits, sampled)
        for position, row, token, entry in zip(ready, rows, sampled, entries, strict=True):
            key = self.keys[position]
            update = updates.setdefault(key, Update())
            try:
                if token < 0:
                    raise RuntimeError("sampling failed")
                row.add(token, self.tokenizer, entry)
                update.text += row.streamable()
                update.logprobs += row.take_logprobs()
            except Exception:
                logger.exception("row %r failed", key)
                update.error = INTERNAL_ERROR
                leaving.add(position)
                continue
            if row.finish_reason is None:
                self.feed[key].append(token)
                continue
            update.result = self._result(row, row.finish_reason)
            leaving.add(position)
            if key in self.keep:
                state = tuple(s[:, position : position + 1].clone() for s in self.state)
                update.carry = Carry(state, token)
        if leaving:
            self._select([p for p in range(len(self.keys)) if p not in leaving])

    def _scored_only(self, ready: list[int], updates: dict[Hashable, Update]) -> set[int]:
        """Rows that asked for no tokens (``max_new_tokens`` 0) finish once their prompt is
        read, without sampling; their positions."""
        done = set()
        for position in ready:
            row = self.rows[self.keys[position]]
            if row.request.max_new_tokens == 0:
                updates.setdefault(self.keys[position], Update()).result = self._result(
                    row, "length"
                )
                done.add(position)
        return done

    @staticmethod
    def _result(row: Row, finish_reason: str) -> GenerationResult:
        request = row.request
        return GenerationResult(
            row.text,
            row.tokens,
            finish_reason,
            logprobs=row.logprobs if request.logprobs is not None else None,
            prompt=row.prompt_text if request.echo else None,
            prompt_logprobs=row.prompt_logprobs if row.to_score is not None else None,
        )

    @staticmethod
    def _penalised(rows: list[Row], logits: torch.Tensor) -> torch.Tensor:
        """The logits a row samples from: with its penalties and bias, if it has any."""
        if not any(row.request.penalised for row in rows):
            return logits
        adjusted = logits.clone()
        for i, row in enumerate(rows):
            r = row.request
            if r.penalised:
                adjusted[i] = penalise(
                    logits[i], row.counts, r.presence_penalty, r.frequency_penalty, r.logit_bias
                )
        return adjusted

    def _logprobs(
        self, rows: list[Row], logits: torch.Tensor, sampled: list[int]
    ) -> list[TokenLogprob | None]:
        """Entries of the sampled tokens for the rows that asked (None for the others), from
        the raw logits (models/logprobs.py)."""
        asked = [i for i, row in enumerate(rows) if row.request.logprobs is not None]
        out: list[TokenLogprob | None] = [None] * len(rows)
        asked = [i for i in asked if sampled[i] >= 0]
        if asked:
            tops = [rows[i].request.logprobs for i in asked]
            tokens = [sampled[i] for i in asked]
            for i, entry in zip(
                asked, self.scorer.entries(logits[asked], tokens, tops), strict=True
            ):
                out[i] = entry
        return out

    def _sample(
        self, rows: list[Row], logits: torch.Tensor, params: list[torch.Tensor]
    ) -> list[int]:
        """One token per row (on the CPU: its row-wise kernels do not depend on the batch, and
        the tokens are needed on the host anyway); -1 marks a row whose sampling failed."""
        uniforms = draw_uniforms([row.uniforms for row in rows])
        try:
            return sample(logits, *params, uniforms).tolist()
        except Exception:
            logger.exception("sampling %d rows failed; trying them one by one", len(rows))
        tokens = []
        for position in range(len(rows)):
            part = slice(position, position + 1)
            try:
                row_params = [p[part] for p in params]
                tokens.append(int(sample(logits[part], *row_params, uniforms[part])))
            except Exception:
                tokens.append(-1)
        return tokens

    def _select(self, positions: list[int]) -> None:
        """Keep only the rows of the state at ``positions`` (in order)."""
        keys = [self.keys[p] for p in positions]
        for key in set(self.keys) - set(keys):
            self._forget(key)
        self.keys = keys
        if not keys:
            self.state = None
            self.params = []
            return
        index = torch.tensor(positions, device=self.state[0].device)
        self.state = tuple(s[:, index] for s in self.state)
        self._refresh_params()

    def _forget(self, key: Hashable) -> None:
        self.rows.pop(key, None)
        self.feed.pop(key, None)
        self.keep.discard(key)

    def _refresh_params(self) -> None:
        """Per-row sampling parameters (CPU tensors) in state order."""
        requests = [self.rows[key].request for key in self.keys]
        self.params = [
            torch.tensor([r.temperature for r in requests]),
            torch.tensor([r.top_k for r in requests], dtype=torch.long),
            torch.tensor([r.top_p for r in requests]),
        ]
