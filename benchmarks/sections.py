"""`make bench`'s plan: one section (one table of bench.md) per served model, of the kind its
registry entry declares (`handlers.registry.Bench`), so that a model added by one folder and
one entry gets its table without an edit here.

A kind is a module of this folder with a ``measure(args, out, section)`` that fills a
`Table`: "classification" (benchmarks/classification_table.py: served requests/s, held to the
bare predictor where the entry names ceilings) and "generation"
(benchmarks/generation_table.py: the language model's tokens/s against its raw loops).
Planning imports neither torch nor TorchServe: a test reads the plan in milliseconds.
"""

from __future__ import annotations

import argparse
import importlib
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from benchmarks.results import Table
from handlers import registry

KINDS = {
    "classification": "benchmarks.classification_table",
    "generation": "benchmarks.generation_table",
}


@dataclass(frozen=True)
class Section:
    """One model's table: what its ``measure`` needs, read from the registry entry."""

    model: str  # the served name: its archive, its route, its server
    kind: str
    title: str
    marker: str  # docs/benchmarks.md's bench:<marker> section; "": bench.md only
    scenario: str  # the Locust scenario that loads it
    ceilings: tuple[str | None, ...]  # the bare predictor's quantize modes (None: fp32)
    data: str  # a `training.data` source; "": none
    data_name: str
    examples: tuple[dict[str, Any], ...]

    def table(self) -> Table:
        return Table(self.title, marker=self.marker)


def section(model: registry.ServedModel) -> Section:
    """``model``'s section as its entry declares it (a kind this folder has no module for is
    refused here, before minutes of measuring)."""
    bench = model.bench
    if bench.kind not in KINDS:
        raise ValueError(f"{model.name}: bench kind {bench.kind!r} is not one of {sorted(KINDS)}")
    return Section(
        model=model.name,
        kind=bench.kind,
        title=bench.title or f"{bench.kind.capitalize()} ({model.name})",
        marker=bench.marker,
        scenario=model.layout_scenario,
        ceilings=tuple(None if mode == "fp32" else mode for mode in bench.ceilings),
        data=bench.data,
        data_name=bench.data_name or bench.data,
        examples=model.examples,
    )


def plan(
    models: Iterable[registry.ServedModel] = registry.MODELS, only: Sequence[str] = ()
) -> list[Section]:
    """The run's sections in registry order; ``only`` keeps the models it names."""
    return [section(model) for model in models if not only or model.name in only]


def measure(args: argparse.Namespace, out: Path, planned: Section) -> Table:
    """Run one section: its kind's module fills its table."""
    print(planned.title, flush=True)
    return importlib.import_module(KINDS[planned.kind]).measure(args, out, planned)
