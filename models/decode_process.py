"""A second decode loop in a child process, stepped while the caller steps its own.

At 64 streams the continuous-batching worker decoded on one core while the other sat idle (as
`make bench`'s CPU split, read from `/proc`, showed with one decode loop). A second thread
cannot use it (the step's per-row Python holds the GIL) and TorchServe 0.12 cannot run a second
continuous-batching worker; a child process can. The caller keeps some rows in its own
`DecodeLoop` and hands the others to this one: `start_step` sends the order, the caller runs
its own step, and `finish_step` collects this one's updates, so both cores decode at once.

Answers are the same wherever a row runs: each is decoded row-wise with its own seeded
generator (models/decode_loop.py), from the same archive with the same settings.
"""

from __future__ import annotations

import logging
import multiprocessing as mp
from collections.abc import Hashable, Iterable
from multiprocessing.connection import Connection
from typing import Any

from models.decode_loop import ALONE, INTERNAL_ERROR, DecodeLoop, Turn, Update
from models.requests import GenerationRequest

logger = logging.getLogger(__name__)


class DecodeProcess:
    """The rows given to a child process's `DecodeLoop`; keys as in `DecodeLoop`."""

    def __init__(
        self, artifact: str, quantize: str | None, threads: int = 1, wait: bool = True
    ) -> None:
        """``wait=False`` returns at once: a replacement for a dead helper must not stall the
        running rows for the seconds a new process takes to load torch and the model; it
        takes rows once `ready`."""
        context = mp.get_context("spawn")  # no fork of a process that may hold torch threads
        self.conn, child = context.Pipe()
        self.process = context.Process(
            target=_serve, args=(child, artifact, quantize, threads), daemon=True
        )
        self.process.start()
        child.close()
        self.keys: set[Hashable] = set()
        self.stepping = False
        self.loaded = False
        if wait:
            self._await_loaded()

    def _await_loaded(self) -> None:
        self._reply()  # "ready": the model is loaded
        self.loaded = True

    def ready(self) -> bool:
        """Whether the child has loaded its model, without waiting for it."""
        try:
            if not self.loaded and self.process.is_alive() and self.conn.poll():
                self._await_loaded()
        except (EOFError, OSError):  # it died while loading: `alive` says so, it is replaced
            return False
        return self.loaded

    def __len__(self) -> int:
        return len(self.keys)

    def add(self, key: Hashable, request: GenerationRequest, turn: Turn = ALONE) -> int:
        """Like `DecodeLoop.add`; a refusal in the child is raised here."""
        if not self.loaded:
            self._await_loaded()
        self.conn.send(("add", (key, request, turn)))
        tokens = self._reply()
        self.keys.add(key)
        return tokens

    def drop(self, keys: Iterable[Hashable]) -> None:
        gone = [key for key in keys if key in self.keys]
        if gone:
            self.conn.send(("drop", gone))
            self.keys.difference_update(gone)

    def start_step(self, tokens: int) -> None:
        if self.keys:
            self.conn.send(("step", tokens))
            self.stepping = True

    def finish_step(self) -> dict[Hashable, Update]:
        if not self.stepping:
            return {}
        self.stepping = False
        updates = self._reply()
        for key, update in updates.items():
            if update.result is not None or update.error is not None:
                self.keys.discard(key)
        return updates

    def alive(self) -> bool:
        """False once the child is gone (killed, say): it must be replaced, not used."""
        return self.process.is_alive()

    def close(self) -> None:
        self.keys = set()
        self.conn.close()
        self.process.join(timeout=10 if self.loaded else 0)  # a loading child reads no EOF
        if self.process.is_alive():
            self.process.kill()
            self.process.join()

    def _reply(self) -> Any:
        kind, value = self.conn.recv()
        if kind == "error":
            raise RuntimeError(f"decode process: {value}")
        return value


def _serve(conn: Connection, artifact: str, quantize: str | None, threads: int) -> None:
    """The child: load the model, then answer orders until the parent closes the pipe."""
    import torch

    from models.generation import Generator

    torch.set_num_threads(threads)
    generator = Generator.from_artifact(artifact, quantize=quantize)
    loop = DecodeLoop(generator.step, generator.tokenizer)
    conn.send(("ok", "ready"))
    while True:
        try:
            order, value = conn.recv()
        except EOFError:
            return
        if order == "drop":
            loop.drop(value)
            continue
        try:
            conn.send(("ok", loop.add(*value) if order == "add" else loop.step(value)))
        except Exception as error:
            if order == "add":
                conn.send(("error", repr(error)))
                continue
            logger.exception("decode step failed; ending its %d rows", len(loop))
            keys = list(loop.rows)
            loop = DecodeLoop(generator.step, generator.tokenizer)
            conn.send(("ok", {key: Update(error=INTERNAL_ERROR) for key in keys}))
