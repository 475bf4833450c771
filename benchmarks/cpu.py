"""Where the cores go during a load test: TorchServe's Java frontend, its Python workers, and
everything else (the load generator, mostly), read with psutil before and after.

On 2 cores the load generator and the frontend share the machine with the model, so a served
figure below the bare loop's is partly CPU that serving itself needs; this shows how much.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field

import psutil


def process_seconds(pid: int) -> float:
    """CPU seconds (user + system) ``pid`` has used; 0 for a process that is gone."""
    try:
        times = psutil.Process(pid).cpu_times()
    except (psutil.NoSuchProcess, psutil.AccessDenied):
        return 0.0
    return times.user + times.system


def descendants(pid: int) -> list[int]:
    """Children, grandchildren...: a worker's own helper processes count as the worker."""
    try:
        return [child.pid for child in psutil.Process(pid).children(recursive=True)]
    except psutil.NoSuchProcess:
        return []


def machine_seconds() -> tuple[float, float]:
    """(busy, idle) CPU seconds of all cores since boot; waiting for I/O counts as idle."""
    times = psutil.cpu_times()
    idle = times.idle + getattr(times, "iowait", 0.0)
    busy = sum(times) - idle - getattr(times, "guest", 0.0) - getattr(times, "guest_nice", 0.0)
    return busy, idle


@dataclass
class CpuSplit:
    """Average cores used over the block: frontend, workers, the rest, and idle."""

    frontend: float = 0.0
    workers: float = 0.0
    other: float = 0.0
    idle: float = 0.0
    seconds: float = 0.0
    _start: dict = field(default_factory=dict, repr=False)

    @property
    def server(self) -> float:
        """Cores the server's own processes used: its workers (and their helpers) and the
        frontend; what is left of the busy time went to the load generator and the rest."""
        return self.workers + self.frontend

    def describe(self) -> str:
        return (
            f"workers {self.workers:.2f}, Java frontend {self.frontend:.2f}, "
            f"load generator and the rest {self.other:.2f}, idle {self.idle:.2f} cores"
        )


@contextmanager
def cpu_split(server_pid: int) -> Iterator[CpuSplit]:
    """Measure while the block runs; the workers are the frontend's descendants at the end
    (plus any seen at the start), so a worker restarted meanwhile still counts."""
    split = CpuSplit()
    before_workers = {pid: process_seconds(pid) for pid in descendants(server_pid)}
    before_frontend = process_seconds(server_pid)
    before_busy, before_idle = machine_seconds()
    started = time.monotonic()
    yield split
    split.seconds = time.monotonic() - started
    workers = 0.0
    for pid in set(before_workers) | set(descendants(server_pid)):
        workers += process_seconds(pid) - before_workers.get(pid, 0.0)
    frontend = process_seconds(server_pid) - before_frontend
    busy, idle = machine_seconds()
    scale = split.seconds
    split.workers = workers / scale
    split.frontend = frontend / scale
    split.other = max(0.0, (busy - before_busy - workers - frontend) / scale)
    split.idle = (idle - before_idle) / scale
