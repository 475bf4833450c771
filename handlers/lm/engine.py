"""The LM handler's engine: the decode loops its rows run in, and the thread that steps them
between handler calls. Free of TorchServe: the handler tells it what to add, drop and step.

- Two loops, with ``decode_processes: 2``: this worker's `DecodeLoop` and a child process's
  (models/decode_process.py), which decodes on the core one continuous-batching worker leaves
  idle. A new request's rows go to the one with fewer rows (a lone request stays here: no
  pipe on its way); both step at once.
- Stepping ahead (``step_ahead``): while TorchServe carries one call's answers to the clients
  and gathers the next call's jobs (the Java round trip, when the worker's Python waits on its
  socket), a thread already decodes the running rows' next ``tokens_per_call`` tokens: the
  next call answers from them at once. Rows that joined in that call start decoding in the
  step after it; an idle server (no running rows) still decodes a lone request in its own
  first call. Answers do not change: each row's tokens depend only on its own request and
  seed.
- A loop that breaks (not one row: the loop itself, or a helper process that died) ends its
  rows with an error and is replaced; the other loop's rows go on.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Hashable, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from typing import Any

import torch

from models.decode_loop import INTERNAL_ERROR, DecodeLoop, Turn, Update
from models.decode_process import DecodeProcess
from models.generation import Generator
from models.requests import GenerationRequest

logger = logging.getLogger(__name__)

Loop = DecodeLoop | DecodeProcess


class Engine:
    """Rows keyed as in `DecodeLoop`, decoded ``tokens_per_call`` tokens per step."""

    def __init__(self, model_dir: str, device: torch.device, options: dict[str, Any]) -> None:
        quantize = options.get("quantize") if device.type == "cpu" else None
        self.generator = Generator.from_artifact(model_dir, device=device, quantize=quantize)
        self.loop = self._new_loop()
        processes = int(options.get("decode_processes", 1))
        if processes not in (1, 2):
            raise ValueError(f"decode_processes must be 1 or 2, not {processes}")
        self.helper_args = (model_dir, quantize, torch.get_num_threads())
        self.helper = DecodeProcess(*self.helper_args) if processes == 2 else None
        self.tokens_per_call = int(options["tokens_per_call"])
        self.step_ahead = bool(options["step_ahead"])
        self.placed: dict[Hashable, Loop] = {}  # the loop each running row is in
        self.ahead: Future[tuple[dict[Any, Update], float]] | None = None
        self.ahead_updates: dict[Any, Update] | None = None
        self.stepper = ThreadPoolExecutor(max_workers=1, thread_name_prefix="decode-ahead")

    @property
    def tokenizer(self) -> Any:
        return self.generator.tokenizer

    @property
    def rows(self) -> int:
        return len(self.loop) + (len(self.helper) if self.helper else 0)

    def _new_loop(self) -> DecodeLoop:
        return DecodeLoop(self.generator.step, self.generator.tokenizer)

    def join(
        self,
        keys: Sequence[Hashable],
        choices: Sequence[GenerationRequest],
        turn: Turn,
    ) -> int:
        """Put one request's rows (one per choice) in one loop; its prompt tokens in all. A
        session's ``turn`` says what state they continue and whether a row hands back its own
        `Carry` when it finishes. If a row cannot join, none stays and the error is raised."""
        loop = self._pick()
        try:
            tokens = 0
            for key, choice in zip(keys, choices, strict=True):
                tokens += loop.add(key, choice, turn)
                self.placed[key] = loop
        except Exception:
            loop.drop(keys)
            for key in keys:
                self.placed.pop(key, None)
            raise
        return tokens

    def _pick(self) -> Loop:
        """Where a new request's rows go: the helper process when it has fewer rows."""
        if self.helper is not None and not self.helper.alive() and not len(self.helper):
            self._replace_helper()  # it died idle: no step of its rows will notice
        if self.helper is not None and self.helper.ready() and len(self.helper) < len(self.loop):
            return self.helper
        return self.loop

    def drop(self, keys: Sequence[Hashable]) -> None:
        """Forget rows (a client gone, or a sibling choice failed); unknown keys are ignored."""
        for key in keys:
            loop = self.placed.pop(key, None)
            if loop is not None:
                loop.drop([key])

    def collect(self) -> float | None:
        """Wait for the step run since the last call, if one ran: its seconds (None if none
        ran). From here on, no step runs beside the caller."""
        ahead, self.ahead = self.ahead, None
        if ahead is None:
            return None
        self.ahead_updates, seconds = ahead.result()
        return seconds

    def updates(self, running: bool) -> dict[Any, Update]:
        """This call's updates: the step run ahead if rows ran before the call (newcomers
        start in the next one); else (an idle server) a step now, so that newcomers get
        their first tokens in their first call."""
        ahead, self.ahead_updates = self.ahead_updates, None
        return ahead if ahead is not None and running else self._step()

    def start_ahead(self) -> None:
        """Step the running rows on the thread while the caller answers."""
        if self.step_ahead and self.rows:
            self.ahead = self.stepper.submit(self._timed_step)

    def _timed_step(self) -> tuple[dict[Any, Update], float]:
        started = time.perf_counter()
        updates = self._step()
        return updates, time.perf_counter() - started

    def _step(self) -> dict[Any, Update]:
        """Both loops step at once: the helper's order goes out before this one's step."""
        if not self.rows:
            return {}
        updates: dict[Any, Update] = {}
        tokens = self.tokens_per_call
        if self.helper is not None:
            updates |= self._guarded(self.helper, lambda: self.helper.start_step(tokens) or {})
        updates |= self._guarded(self.loop, lambda: self.loop.step(tokens) if self.loop else {})
        if self.helper is not None:
            updates |= self._guarded(self.helper, self.helper.finish_step)
        for key, update in updates.items():
            if update.result is not None or update.error is not None:
                self.placed.pop(key, None)
        return updates

    def _guarded(self, loop: Loop, work: Callable[[], dict[Any, Update]]) -> dict[Any, Update]:
        """``work`` on one loop; if the loop itself breaks (not one row), its rows end with an
        error, it is replaced, and the other loop's rows go on."""
        try:
            return work()
        except Exception:
            keys = [key for key, where in self.placed.items() if where is loop]
            logger.exception("decode step failed; ending its %d rows", len(keys))
            if loop is self.helper:
                self._replace_helper()
            else:
                self.loop = self._new_loop()
            return {key: Update(error=INTERNAL_ERROR) for key in keys}

    def _replace_helper(self) -> None:
        """A new helper, loading while this worker's own loop decodes every row."""
        self.helper.close()
        self.helper = DecodeProcess(*self.helper_args, wait=False)

    def reset(self) -> None:
        """Fresh, empty loops (the helper process restarted): after a failure of either."""
        self.placed.clear()
        self.ahead_updates = None
        self.loop = self._new_loop()
        if self.helper is not None:
            self._replace_helper()

    def close(self) -> None:
        if self.helper is not None:
            self.helper.close()
