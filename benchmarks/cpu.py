"""Where the cores go during a load test: TorchServe's Java frontend, its Python workers, and
everything else (the load generator, mostly), read from /proc before and after.

On 2 cores the load generator and the frontend share the machine with the model, so a served
figure below the bare loop's is partly CPU that serving itself needs; this shows how much.
"""

from __future__ import annotations

import os
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

TICK = os.sysconf("SC_CLK_TCK") if hasattr(os, "sysconf") else 100


def _stat(pid: int) -> list[str] | None:
    try:
        text = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    return text.rsplit(")", 1)[1].split()  # fields after "pid (comm)": state is [0]


def process_ticks(pid: int) -> int:
    fields = _stat(pid)
    return int(fields[11]) + int(fields[12]) if fields else 0  # utime + stime


def descendants(pid: int) -> list[int]:
    """Children, grandchildren...: a worker's own helper processes count as the worker."""
    parents: dict[int, list[int]] = {}
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            fields = _stat(int(entry.name))
            if fields:
                parents.setdefault(int(fields[1]), []).append(int(entry.name))
    found, todo = [], [pid]
    while todo:
        kids = parents.get(todo.pop(), [])
        found += kids
        todo += kids
    return found


def machine_ticks() -> tuple[int, int]:
    """(busy, idle) ticks of all cores since boot."""
    values = [int(v) for v in Path("/proc/stat").read_text().split("\n", 1)[0].split()[1:]]
    idle = values[3] + values[4]  # idle + iowait
    return sum(values[:8]) - idle, idle


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
    before_workers = {pid: process_ticks(pid) for pid in descendants(server_pid)}
    before_frontend = process_ticks(server_pid)
    before_busy, before_idle = machine_ticks()
    started = time.monotonic()
    yield split
    split.seconds = time.monotonic() - started
    workers = 0
    for pid in set(before_workers) | set(descendants(server_pid)):
        workers += process_ticks(pid) - before_workers.get(pid, 0)
    frontend = process_ticks(server_pid) - before_frontend
    busy, idle = machine_ticks()
    scale = TICK * split.seconds
    split.workers = workers / scale
    split.frontend = frontend / scale
    split.other = max(0.0, (busy - before_busy - workers - frontend) / scale)
    split.idle = (idle - before_idle) / scale
