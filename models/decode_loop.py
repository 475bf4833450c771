"""Continuous batching's engine: one decode loop that requests join and leave between steps.

A server calls `step` again and again; between calls it may `add` new requests (they are
prefilled together at the start of the next call and sample their first token in it) and
`drop` requests whose clients went away. A row that finishes leaves at once and hands back
its result, and, when asked, a `Carry`: what a session needs to continue later.

Why rows can come and go without changing anyone's answer: every operation is row-wise
(`DecodeStep` and `sample` mix no rows; see models/language_model.py), and a row's randomness
comes from its own seeded generator, so a seeded request gets the same text alone, in a full
batch or joining one mid-flight (tests/unit/test_decode_loop.py).

Errors stay in their row: a prompt that cannot be prefilled or a token that cannot be
decoded ends only that row (``Update.error``); the others go on.
"""

from __future__ import annotations

import logging
from collections.abc import Hashable, Iterable
from dataclasses import dataclass
from typing import TYPE_CHECKING

import torch

from models.language_model import State, zero_state
from models.requests import GenerationRequest, GenerationResult, Row
from models.sampling import draw_uniforms, sample

if TYPE_CHECKING:
    from models.generation import Generator

logger = logging.getLogger(__name__)

INTERNAL_ERROR = "could not be processed (internal error)"


@dataclass
class Carry:
    """A finished row's memory: the state after every token it read except the last one it
    sampled, and that token (fed first when the session continues)."""

    state: State  # each [layers, 1, hidden]
    token: int

    @property
    def nbytes(self) -> int:
        return sum(s.element_size() * s.nelement() for s in self.state)


@dataclass
class Update:
    """What one `step` call produced for a row."""

    text: str = ""  # final text new since the last update (never taken back)
    result: GenerationResult | None = None  # set once the row has finished
    carry: Carry | None = None  # with the result, for rows added with ``keep=True``
    error: str | None = None  # the row failed and left the loop


@dataclass
class _Waiting:
    row: Row
    ids: list[int]
    carry: Carry | None


class DecodeLoop:
    """Rows keyed by the caller's ids (a request id), decoded together."""

    def __init__(self, generator: Generator) -> None:
        self.generator = generator
        self.tokenizer = generator.tokenizer
        self.rows: dict[Hashable, Row] = {}
        self.keys: list[Hashable] = []  # running rows, in state order
        self.keep: set[Hashable] = set()
        self.waiting: dict[Hashable, _Waiting] = {}
        self.logits: torch.Tensor | None = None
        self.state: State | None = None
        self.params: list[torch.Tensor] = []

    def __len__(self) -> int:
        return len(self.keys) + len(self.waiting)

    def __contains__(self, key: Hashable) -> bool:
        return key in self.rows or key in self.waiting

    def add(
        self,
        key: Hashable,
        request: GenerationRequest,
        carry: Carry | None = None,
        keep: bool = False,
    ) -> None:
        """Queue a request; it is prefilled at the next `step`. With ``carry`` the prompt
        continues that state (its stored token is read first); ``keep`` asks for the row's
        own `Carry` when it finishes."""
        if key in self:
            raise KeyError(f"{key!r} is already in the loop")
        ids = self.tokenizer.encode(request.prompt)
        if carry is not None:
            ids = [carry.token, *ids]
        self.waiting[key] = _Waiting(Row(request), ids or [self.tokenizer.unk_id], carry)
        if keep:
            self.keep.add(key)

    def drop(self, keys: Iterable[Hashable]) -> None:
        """Forget rows (a client that went away); unknown keys are ignored."""
        gone = {k for k in keys if k in self}
        if not gone:
            return
        for key in gone:
            self.waiting.pop(key, None)
            self.keep.discard(key)
        positions = [p for p, key in enumerate(self.keys) if key not in gone]
        if len(positions) < len(self.keys):
            self._select(positions)

    @torch.inference_mode()
    def step(self, tokens: int = 1) -> dict[Hashable, Update]:
        """Admit waiting rows, then sample up to ``tokens`` tokens for every running row."""
        updates: dict[Hashable, Update] = {}
        if self.waiting:
            self._admit(updates)
        for _ in range(tokens):
            if not self.keys:
                break
            self._sample_once(updates)
        return updates

    def _admit(self, updates: dict[Hashable, Update]) -> None:
        """Prefill every waiting row in one call (one by one if that call fails)."""
        waiting, self.waiting = self.waiting, {}
        try:
            self._prefill(waiting)
        except Exception:
            logger.exception("prefill of %d rows failed; trying them one by one", len(waiting))
            for key, item in waiting.items():
                try:
                    self._prefill({key: item})
                except Exception:
                    logger.exception("prefill of row %r failed", key)
                    self.keep.discard(key)
                    updates[key] = Update(error=INTERNAL_ERROR)

    def _prefill(self, waiting: dict[Hashable, _Waiting]) -> None:
        generator = self.generator
        items = list(waiting.values())
        start = None
        if any(item.carry is not None for item in items):
            blank = zero_state(generator.config, 1, generator.device)
            columns = [item.carry.state if item.carry else blank for item in items]
            start = tuple(torch.cat(parts, dim=1) for parts in zip(*columns, strict=True))
        logits, state = generator.prefill([item.ids for item in items], start)
        if self.state is None:
            self.logits, self.state = logits, state
        else:
            self.logits = torch.cat([self.logits, logits])
            self.state = tuple(
                torch.cat(pair, dim=1) for pair in zip(self.state, state, strict=True)
            )
        for key, item in waiting.items():
            self.rows[key] = item.row
            self.keys.append(key)
        self._refresh_params()

    def _sample_once(self, updates: dict[Hashable, Update]) -> None:
        rows = [self.rows[key] for key in self.keys]
        sampled = self._sample(rows)
        kept = []
        for position, (key, row, token) in enumerate(zip(self.keys, rows, sampled, strict=True)):
            update = updates.setdefault(key, Update())
            try:
                if token < 0:
                    raise RuntimeError("sampling failed")
                row.add(token, self.tokenizer)
                update.text += row.streamable()
            except Exception:
                logger.exception("row %r failed", key)
                update.error = INTERNAL_ERROR
                continue
            if row.finish_reason is None:
                kept.append(position)
                continue
            update.result = GenerationResult(row.text, row.tokens, row.finish_reason)
            if key in self.keep:
                state = tuple(s[:, position : position + 1].clone() for s in self.state)
                update.carry = Carry(state, token)
        tokens = torch.tensor(sampled, dtype=torch.long)
        if len(kept) < len(self.keys):
            self._select(kept)
            tokens = tokens[kept]
        if self.keys:
            device = self.generator.device
            self.logits, self.state = self.generator.step(tokens.to(device), self.state)

    def _sample(self, rows: list[Row]) -> list[int]:
        """One token per row (on the CPU: its row-wise kernels do not depend on the batch, and
        the tokens are needed on the host anyway); -1 marks a row whose sampling failed."""
        logits = self.logits.float().cpu()
        uniforms = draw_uniforms([row.generator for row in rows])
        try:
            return sample(logits, *self.params, uniforms).tolist()
        except Exception:
            logger.exception("sampling %d rows failed; trying them one by one", len(rows))
        tokens = []
        for position in range(len(rows)):
            part = slice(position, position + 1)
            try:
                params = [p[part] for p in self.params]
                tokens.append(int(sample(logits[part], *params, uniforms[part])))
            except Exception:
                tokens.append(-1)
        return tokens

    def _select(self, positions: list[int]) -> None:
        """Keep only the running rows at ``positions`` (in order)."""
        keys = [self.keys[p] for p in positions]
        for key in set(self.keys) - set(keys):
            self.rows.pop(key, None)
            self.keep.discard(key)
        self.keys = keys
        if not keys:
            self.logits = self.state = None
            self.params = []
            return
        index = torch.tensor(positions, device=self.logits.device)
        self.logits = self.logits[index]
        self.state = tuple(s[:, index] for s in self.state)
        self._refresh_params()

    def _refresh_params(self) -> None:
        """Per-row sampling parameters (CPU tensors) in state order."""
        requests = [self.rows[key].request for key in self.keys]
        self.params = [
            torch.tensor([r.temperature for r in requests]),
            torch.tensor([r.top_k for r in requests], dtype=torch.long),
            torch.tensor([r.top_p for r in requests]),
        ]
