"""Graceful stop, which TorchServe lacks: its stop closes every connection at once
(pytorch/serve#2008), so a request inside a worker is cut off mid-answer.

The protocol is two kinds of file in one folder shared by the stopper and the workers:

- a flag, ``draining``: once it exists, a worker answers each batch it has not begun with a
  503 "stopping" instead of starting the work, so clients learn to go elsewhere;
- a lock file per worker, held (``flock``) while that worker works on a batch: when the
  stopper has taken every lock once after raising the flag, every batch begun before the flag
  is finished, and the server can be stopped without cutting one off.

A worker checks the flag only after taking its lock, so no batch slips between the two.
Pure Python and free of TorchServe: handlers use `DrainGate`, `serving.lifecycle` uses `drain`.
It lives in handlers/ because its busy side runs in the worker: it ships inside each model
archive (a .mar carries handlers/ and models/) and the handler takes the lock around every
batch. serving.lifecycle only raises the flag and waits for the locks, for which the serving
image copies just this file.
"""

from __future__ import annotations

import fcntl
import os
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

DRAIN_DIR_ENV = "RNN_SERVE_DRAIN_DIR"  # set by serving.lifecycle for TorchServe and its workers
FLAG = "draining"
LOCK_GLOB = "worker-*.lock"


class DrainGate:
    """A worker's side: hold the lock while a batch runs, and say whether to refuse it."""

    def __init__(self, directory: str | Path | None) -> None:
        self._flag: Path | None = None
        self._lock_fd: int | None = None
        self._held = False
        if directory:
            directory = Path(directory)
            directory.mkdir(parents=True, exist_ok=True)
            self._flag = directory / FLAG
            self._lock_fd = os.open(
                lock_file(directory, os.getpid()), os.O_RDWR | os.O_CREAT, 0o600
            )

    @classmethod
    def from_environment(cls) -> DrainGate:
        """The gate of the server this worker belongs to; a no-op outside `serving.lifecycle`."""
        return cls(os.environ.get(DRAIN_DIR_ENV))

    @contextmanager
    def batch(self) -> Iterator[bool]:
        """Hold this worker's lock for the batch; yields True when the server is draining."""
        draining = self.enter()
        try:
            yield draining
        finally:
            self.leave()

    def enter(self) -> bool:
        """Take the lock (if not held already); True when the server is draining. A worker
        whose work spans calls (continuous batching) holds it until `leave`, so a stop waits
        for its running rows, not only for the current call."""
        if self._lock_fd is None or self._flag is None:
            return False
        if not self._held:
            fcntl.flock(self._lock_fd, fcntl.LOCK_EX)
            self._held = True
        return self._flag.exists()

    def leave(self) -> None:
        if self._lock_fd is not None and self._held:
            fcntl.flock(self._lock_fd, fcntl.LOCK_UN)
            self._held = False


def begin(directory: Path) -> None:
    """Raise the flag: from now on no worker begins another batch."""
    directory.mkdir(parents=True, exist_ok=True)
    (directory / FLAG).touch()


def is_draining(directory: Path) -> bool:
    return (directory / FLAG).exists()


def reset(directory: Path) -> None:
    """Forget a previous server's flag and lock files (a new server starts serving)."""
    if directory.is_dir():
        for leftover in [directory / FLAG, *directory.glob(LOCK_GLOB)]:
            leftover.unlink(missing_ok=True)


def lock_file(directory: Path, pid: int) -> Path:
    """Worker ``pid``'s lock file in ``directory``."""
    return directory / LOCK_GLOB.replace("*", str(pid))


def is_held(lock: Path) -> bool:
    """Whether a worker holds ``lock`` now: one try that never waits (FileNotFoundError when
    there is no such lock)."""
    fd = os.open(lock, os.O_RDWR)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        return True
    else:
        fcntl.flock(fd, fcntl.LOCK_UN)
        return False
    finally:
        os.close(fd)


def wait_for_batches(directory: Path, deadline: float) -> bool:
    """Take every worker's lock once: True when each batch running at the call has ended
    (False if one was still running at ``deadline``, a `time.monotonic()` value)."""
    for lock in sorted(directory.glob(LOCK_GLOB)):
        while True:
            try:
                if not is_held(lock):
                    break
            except FileNotFoundError:
                break
            if time.monotonic() >= deadline:
                return False
            time.sleep(0.02)
    return True
