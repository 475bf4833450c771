"""Write docs/benchmarks.md's tables from a `make bench` run, so that no figure is typed by hand.

    python -m benchmarks.readme_tables                                # the newest finished run
    python -m benchmarks.readme_tables runs/bench/20261202-040004     # a given run folder

Rewrites what lies between each `<!-- bench:NAME -->` and `<!-- /bench:NAME -->` in
docs/benchmarks.md (`run`: which run, on what; `classification`, `generation`: the run's
tables of that title) and copies the run's bench.png to docs/bench.png. A goal written in a
row's note ("goal >= 0.9") gets its own column, marked ✓ or ✗ from the row's value.
"""

from __future__ import annotations

import argparse
import re
import shutil
from pathlib import Path

from benchmarks.results import (
    BENCH_RUNS,
    ROOT,
    RUN_INFO,
    RunInfo,
    Table,
    goal_verdict,
    newest_run,
    read_tables,
)
from handlers.api_docs import replace_marked

README = ROOT / "docs" / "benchmarks.md"  # the page the tables live on
FIGURE = ROOT / "docs" / "bench.png"
LONG_INTEGER = re.compile(r"(?<![\d.,])\d{4,}(?![\d,])")  # 14858 but not the 4487 of 1.4487


def marker(title: str) -> str:
    """The README marker of a table: "Classification (sentiment)" -> "classification"."""
    return title.split()[0].lower()


def with_thousands(text: str) -> str:
    """14858 tok/s -> 14,858 tok/s, as the README's prose writes figures."""
    return LONG_INTEGER.sub(lambda m: f"{int(m.group()):,}", text)


def row_cells(measure: str, value: str, note: str) -> list[str]:
    """measure, value, note, goal: a goal moves from the note to its own cell, with whether
    the value meets it (and by how much it misses), and its value is set in bold."""
    verdict = goal_verdict(value, note)
    if verdict is None:
        return [measure, value, note, ""]
    start, goal = verdict
    return [measure, f"**{value}**", note[:start], goal]


def markdown_table(table: Table) -> str:
    heading = table.title[0].lower() + table.title[1:]
    lines = [f"| {heading} | value | note | goal |", "|---|---|---|---|"]
    for row in table.rows:
        cells = [with_thousands(cell) for cell in row_cells(*row)]
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines) + "\n"


def run_caption(run: Path) -> str:
    """Which run the tables come from, and on what (run.json; older runs wrote none)."""
    run = run.resolve()
    shown = run.relative_to(ROOT) if run.is_relative_to(ROOT) else run
    if not (run / RUN_INFO).exists():
        return f"The figures below are from `{shown}` (one run).\n"
    info = RunInfo.load(run)
    return (
        f"The figures below are from `{shown}`: one run, {info.machine()}, {info.minutes:.1f} "
        f"minutes, arguments `{info.arguments or '(defaults)'}`, commit {info.commit}.\n"
    )


def render(text: str, run: Path) -> str:
    """``text`` with every bench section written from ``run``; a run without a table that the
    README shows (a `--only` run) is refused rather than leaving an older table beside it."""
    sections = {"run": run_caption(run)}
    sections |= {marker(t.title): markdown_table(t) for t in read_tables(run)}
    wanted = re.findall(r"<!-- bench:(\w+) -->", text)
    missing = [name for name in wanted if name not in sections]
    if missing:
        raise ValueError(f"{run} has no {', '.join(missing)} table: pass a full `make bench` run")
    for name, body in sections.items():
        text = replace_marked(text, f"bench:{name}", body)
    return text


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawTextHelpFormatter
    )
    parser.add_argument(
        "run", nargs="?", type=Path, help=f"a run folder (default: the newest in {BENCH_RUNS})"
    )
    run = parser.parse_args(argv).run or newest_run()
    README.write_text(render(README.read_text(), run))
    if (run / "bench.png").exists():
        shutil.copyfile(run / "bench.png", FIGURE)
    print(f"{README.relative_to(ROOT)} and {FIGURE.relative_to(ROOT)}: from {run}")


if __name__ == "__main__":
    main()
