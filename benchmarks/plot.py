"""Bar charts of a benchmark run's throughput figures, one panel per unit.

    python -m benchmarks.plot runs/bench/20261126-064015      # (re)writes bench.png there

`make bench` calls this at the end of its run; `python -m benchmarks.readme_tables` copies the
PNG of the run that docs/benchmarks.md's tables come from to docs/bench.png.
"""

from __future__ import annotations

import sys
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt

from benchmarks.results import Table, read_tables

PANELS = (("/s", "sentences per second (classification)"), ("tok/s", "tokens per second"))


def throughputs(tables: list[Table]) -> dict[str, list[tuple[str, float]]]:
    """(measure, figure) pairs per unit, from the rows that are rates of a plotted unit."""
    found: dict[str, list[tuple[str, float]]] = {unit: [] for unit, _ in PANELS}
    for table in tables:
        for row in table.rows:
            if row.unit in found and row.figure is not None:
                found[row.unit].append((row.measure, row.figure))
    return found


def plot(run: Path) -> Path:
    """Write ``run``/bench.png from ``run``/bench.json; returns its path."""
    found = throughputs(read_tables(run))
    panels = [(unit, title) for unit, title in PANELS if found[unit]]
    heights = [max(2.0, 0.45 * len(found[unit]) + 1.0) for unit, _ in panels]
    figure, axes = plt.subplots(
        len(panels), 1, figsize=(10, sum(heights)), gridspec_kw={"height_ratios": heights}
    )
    for axis, (unit, title) in zip(axes if len(panels) > 1 else [axes], panels, strict=True):
        labels, values = zip(*found[unit], strict=True)
        axis.barh(range(len(values)), values, color="tab:blue")
        axis.set_yticks(range(len(values)), labels, fontsize=8)
        axis.invert_yaxis()
        axis.set_title(title, fontsize=10)
        for index, value in enumerate(values):
            axis.text(value, index, f" {value:,.0f}", va="center", fontsize=8)
        axis.set_xlim(0, max(values) * 1.15)
    figure.suptitle(f"Benchmark {run.name} (one run, side by side)", fontsize=11)
    figure.tight_layout()
    out = run / "bench.png"
    figure.savefig(out, dpi=110)
    plt.close(figure)
    return out


if __name__ == "__main__":
    print(plot(Path(sys.argv[1])))
