"""The bench's fair figure: what a server core serves against what a core of the bare model does.

Served throughput on this 2-core machine shares the cores with the load generator (Locust),
while the bare model's ceiling has them to itself, so "served / ceiling" measures the load
generator as much as the server. Per core of the server's own processes (TorchServe's Java
frontend, its Python workers and their helper processes: `benchmarks.cpu.CpuSplit.server`)
against the bare model's rate per core it ran on, the figure is the server's alone:

    efficiency = (served rate / server cores) / (bare rate / bare cores)

1.0 means serving costs no CPU beyond the model's own work; the rest is what the frontend, the
handler and the protocol spend. Imports nothing heavy: the unit tests feed it recorded numbers.
"""

from __future__ import annotations

from benchmarks.cpu import CpuSplit
from benchmarks.results import Goal, Row


def per_core_efficiency(
    served: float, server_cores: float, bare: float, bare_cores: float
) -> float:
    """(served / server_cores) / (bare / bare_cores); 0 where a rate or a core count is 0."""
    if min(served, server_cores, bare, bare_cores) <= 0:
        return 0.0
    return (served / server_cores) / (bare / bare_cores)


def efficiency_row(
    what: str,
    unit: str,
    served: float,
    split: CpuSplit,
    bare: float,
    bare_cores: float,
    goal: Goal | None = None,
) -> Row:
    """A table row for ``served`` against ``bare``, judged by ``goal``."""
    ratio = per_core_efficiency(served, split.server, bare, bare_cores)
    note = (
        f"{served:.0f} {unit} on {split.server:.2f} server cores (workers + frontend) against "
        f"{bare:.0f} {unit} on {bare_cores:g} cores"
    )
    measure = f"{what}: served per server core / bare per core"
    return Row(measure, f"{ratio:.2f}", note, goal, ratio)
