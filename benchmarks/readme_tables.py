"""Write docs/benchmarks.md's tables from a `make bench` run, so that no figure is typed by hand.

    python -m benchmarks.readme_tables                                # the newest finished run
    python -m benchmarks.readme_tables runs/bench/20261202-040004     # a given run folder

Rewrites what lies between each `<!-- bench:NAME -->` and `<!-- /bench:NAME -->` in
docs/benchmarks.md (`run`: which run, on what; `classification`, `generation`: the run's
tables of that marker, which a model's registry entry declares) and copies the run's bench.png
to docs/bench.png. A row's goal (a typed field of the row, benchmarks/goals.py) gets its own
column, marked ✓ or ✗ from the row's figure. The README's `bench:headline` is the rows that
carry a goal, from the same run.
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
    Row,
    RunInfo,
    Table,
    newest_run,
    read_tables,
)
from docsgen.markdown import markdown_table
from handlers.api_docs import replace_marked

BENCH_PAGE = ROOT / "docs" / "benchmarks.md"  # the page the tables live on
FRONT_PAGE = ROOT / "README.md"  # its bench:headline: the rows with a goal
HEADLINE = "bench:headline"
HEADLINE_TABLES = ("classification", "generation")
FIGURE = ROOT / "docs" / "bench.png"
LONG_INTEGER = re.compile(r"(?<![\d.,])\d{4,}(?![\d,])")  # 14858 but not the 4487 of 1.4487


def with_thousands(text: str) -> str:
    """14858 tok/s -> 14,858 tok/s, as the README's prose writes figures."""
    return LONG_INTEGER.sub(lambda m: f"{int(m.group()):,}", text)


def row_cells(row: Row) -> list[str]:
    """measure, value, note, goal: the goal in its own cell, with whether the figure meets it
    (and by how much it misses); a value a goal judges is set in bold."""
    value = f"**{row.value}**" if row.goal is not None else row.value
    cells = [row.measure, value, row.note, row.verdict()]
    return [with_thousands(cell) for cell in cells]


def page_table(table: Table) -> str:
    heading = table.title[0].lower() + table.title[1:]
    return markdown_table((heading, "value", "note", "goal"), map(row_cells, table.rows))


def headline_measure(table: str, measure: str) -> str:
    """A measure named with its table ("generation: ..."), once where it already says it."""
    return measure if measure.startswith(table) else f"{table}: {measure}"


def headline(run: Path) -> str:
    """The README's short table: every row with a goal, under the run's caption."""
    rows = [
        (headline_measure(table.marker, measure), value, goal)
        for table in read_tables(run)
        if table.marker in HEADLINE_TABLES
        for measure, value, _, goal in map(row_cells, table.rows)
        if goal
    ]
    caption = run_caption(run).strip().replace("The figures below are from", "From")
    table = markdown_table(("measured by `make bench`", "value", "goal"), rows)
    return f"{caption}\n\n{table}"


def render_headline(text: str, run: Path) -> str:
    """``text`` (the README) with its bench:headline written from ``run``."""
    return replace_marked(text, HEADLINE, headline(run))


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
    page shows (a `--only` run) is refused rather than leaving an older table beside it."""
    sections = {"run": run_caption(run)}
    sections |= {t.marker: page_table(t) for t in read_tables(run) if t.marker}
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
    BENCH_PAGE.write_text(render(BENCH_PAGE.read_text(), run))
    FRONT_PAGE.write_text(render_headline(FRONT_PAGE.read_text(), run))
    if (run / "bench.png").exists():
        shutil.copyfile(run / "bench.png", FIGURE)
    written = (BENCH_PAGE, FRONT_PAGE, FIGURE)
    print(f"{', '.join(str(p.relative_to(ROOT)) for p in written)}: from {run}")


if __name__ == "__main__":
    main()
