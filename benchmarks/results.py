"""A benchmark's results: tables of figures, and the files of one `make bench` run folder.

    runs/bench/<time>/bench.md     the tables for a reader, headed by what was measured
    runs/bench/<time>/bench.json   the same tables as data (benchmarks/plot.py draws from it)
    runs/bench/<time>/run.json     cores, torch, minutes, arguments, commit and archives

benchmarks/run.py writes them; `python -m benchmarks.readme_tables` reads them into the docs,
so that no figure there is typed by hand. Imports neither torch nor TorchServe: reading a run
must stay cheap.
"""

from __future__ import annotations

import hashlib
import json
import subprocess
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Literal

from docsgen.markdown import markdown_table

ROOT = Path(__file__).resolve().parent.parent
BENCH_RUNS = ROOT / "runs" / "bench"
BENCH_MD = "bench.md"
BENCH_JSON = "bench.json"
RUN_INFO = "run.json"


@dataclass(frozen=True)
class Goal:
    """What a measure must reach: its figure compared with ``target`` by ``sign``. ``unit``
    follows the number as the value writes it ("ms"; "x" for a ratio, written 40x) and
    ``meaning`` says in a word what the target stands for ("flat")."""

    sign: Literal[">=", "<="]
    target: float
    unit: str = ""
    meaning: str = ""

    def stated(self) -> str:
        """The goal as the tables write it: "≥ 0.9", "≤ 50 ms", "≤ 1.2x (flat)"."""
        number = f"{self.target:g}"
        if self.unit:
            number += self.unit if self.unit == "x" else f" {self.unit}"
        meaning = f" ({self.meaning})" if self.meaning else ""
        return f"{SYMBOLS[self.sign]} {number}{meaning}"

    def met(self, figure: float) -> bool:
        return figure >= self.target if self.sign == ">=" else figure <= self.target

    def verdict(self, figure: float) -> str:
        """The goal with whether ``figure`` meets it; a missed goal says by how much, so that
        a reader sees how far off it is without doing the arithmetic."""
        if self.met(figure):
            return f"{self.stated()} ✓"
        ratio = figure / self.target
        missed = f"{ratio:.0%} of the goal" if self.sign == ">=" else f"{ratio:.2f}× the limit"
        return f"{self.stated()} ✗ ({missed})"


SYMBOLS = {">=": "≥", "<=": "≤"}


@dataclass(frozen=True)
class Row:
    """One measure: its value as a reader sees it, a note, and where it has a goal, the goal
    and the unformatted figure the goal judges."""

    measure: str
    value: str
    note: str = ""
    goal: Goal | None = None
    figure: float | None = None
    unit: str = ""  # the figure's unit where the row is a rate ("/s", "tok/s"): bench.png's

    def __post_init__(self) -> None:
        if self.goal is not None and self.figure is None:
            raise ValueError(f"{self.measure}: a row with a goal needs the figure it judges")

    def verdict(self) -> str:
        """The goal and whether the figure meets it ("≥ 0.9 ✗ (73% of the goal)"), or ""."""
        return "" if self.goal is None else self.goal.verdict(self.figure)

    def note_with_verdict(self) -> str:
        """The note, then the goal and its verdict: bench.md's and the console's note cell."""
        goal = f"goal {self.verdict()}" if self.goal is not None else ""
        return "; ".join(part for part in (self.note, goal) if part)

    @classmethod
    def from_json(cls, row: dict) -> Row:
        if not isinstance(row, dict):
            raise ValueError(
                "a bench.json written before rows had typed goals (a row is a list): "
                "run `make bench` again"
            )
        goal = row.get("goal")
        return cls(**{**row, "goal": Goal(**goal) if goal else None})


@dataclass
class Table:
    """Rows of (measure, value, note, goal) printed and written as markdown; ``marker`` names
    the docs/benchmarks.md section it fills ("" for none: bench.md only)."""

    title: str
    rows: list[Row] = field(default_factory=list)
    marker: str = ""

    def add(
        self,
        measure: str,
        value: str,
        note: str = "",
        goal: Goal | None = None,
        figure: float | None = None,
    ) -> None:
        """A row; one with a ``goal`` gives the ``figure`` the goal judges."""
        self.put(Row(measure, value, note, goal, figure))

    def rate(self, measure: str, figure: float, unit: str, note: str = "") -> None:
        """A row whose value is a rate ("1687 /s"): bench.png plots it by its unit."""
        self.put(Row(measure, f"{figure:.0f} {unit}", note, figure=figure, unit=unit))

    def put(self, row: Row) -> None:
        self.rows.append(row)
        print(f"  {row.measure:<58} {row.value:>14}  {row.note_with_verdict()}", flush=True)

    def markdown(self) -> str:
        return f"### {self.title}\n\n" + markdown_table(
            ("measure", "value", "note"),
            [(row.measure, row.value, row.note_with_verdict()) for row in self.rows],
        )

    @classmethod
    def from_json(cls, table: dict) -> Table:
        """A table of bench.json; one written before tables had markers is marked by its
        title's first word ("Classification (sentiment)": classification), as it was then."""
        marker = table.get("marker", table["title"].split()[0].lower())
        return cls(table["title"], [Row.from_json(row) for row in table["rows"]], marker)


@dataclass
class RunInfo:
    """What one run measured and where: only ratios within one run mean much on this machine,
    so a figure is worth as much as what is known of its run."""

    name: str  # the run folder's name, its start time
    cpu_cores: int | None
    torch: str
    minutes: float
    arguments: str  # as typed after `python -m benchmarks.run`; "" for the defaults
    commit: str
    archives: dict[str, str]  # archive file name -> the start of its sha256
    # The same project has run on different CPUs (AMD EPYC, Intel Xeon with AMX), whose
    # fp32 and int8 kernels differ in speed by up to 2x: ratios to them move with the CPU.
    cpu_model: str = ""

    def machine(self) -> str:
        model = f" ({self.cpu_model})" if self.cpu_model else ""
        return f"{self.cpu_cores} CPU cores{model}, torch {self.torch}"

    def header(self) -> str:
        """bench.md's opening: the run, the machine, its length, and its provenance."""
        lines = [
            f"# Benchmark {self.name}",
            "",
            f"One run, {self.machine()}, {self.minutes:.1f} min.",
            "",
            f"Arguments: `{self.arguments or '(defaults)'}`; commit {self.commit}.",
            "",
        ]
        lines += [f"- `{name}` sha256 {digest}…" for name, digest in self.archives.items()]
        return "\n".join(lines) + "\n\n"

    def save(self, folder: Path) -> None:
        (folder / RUN_INFO).write_text(json.dumps(asdict(self), indent=2) + "\n")

    @classmethod
    def load(cls, folder: Path) -> RunInfo:
        return cls(**json.loads((folder / RUN_INFO).read_text()))


def git_commit() -> str:
    """The checkout's commit, and whether it had uncommitted changes."""
    try:
        commit = subprocess.run(
            ["git", "rev-parse", "--short", "HEAD"],
            cwd=ROOT,
            capture_output=True,
            text=True,
            check=True,
        ).stdout.strip()
        dirty = subprocess.run(["git", "diff", "--quiet"], cwd=ROOT, check=False).returncode
        return commit + (" (with uncommitted changes)" if dirty else "")
    except (OSError, subprocess.CalledProcessError):
        return "unknown (not a git checkout)"


def archive_digests(model_store: Path) -> dict[str, str]:
    """Each archive of the store by the start of its sha256: which models were measured."""
    return {
        archive.name: hashlib.sha256(archive.read_bytes()).hexdigest()[:16]
        for archive in sorted(Path(model_store).glob("*.mar"))
    }


def write_run(out: Path, info: RunInfo, tables: list[Table]) -> None:
    """bench.md, bench.json and run.json of one run."""
    (out / BENCH_MD).write_text(info.header() + "\n".join(t.markdown() for t in tables))
    (out / BENCH_JSON).write_text(json.dumps([asdict(t) for t in tables], indent=2))
    info.save(out)


def read_tables(run: Path) -> list[Table]:
    """A run's tables as bench.json holds them."""
    return [Table.from_json(table) for table in json.loads((run / BENCH_JSON).read_text())]


def newest_run(runs: Path = BENCH_RUNS) -> Path:
    """The newest run folder that got to its end (an interrupted run writes no bench.json)."""
    finished = sorted(folder for folder in runs.glob("*") if (folder / BENCH_JSON).exists())
    if not finished:
        raise FileNotFoundError(f"no finished benchmark run under {runs}: run `make bench`")
    return finished[-1]
