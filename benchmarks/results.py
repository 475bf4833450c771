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
import operator
import re
import subprocess
from dataclasses import asdict, dataclass, field
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
BENCH_RUNS = ROOT / "runs" / "bench"
BENCH_MD = "bench.md"
BENCH_JSON = "bench.json"
RUN_INFO = "run.json"
# A goal is written at the end of a row's note: "goal >= 0.9", "...; goal <= 50 ms".
GOAL = re.compile(r"(?:^|;\s*)goal (<=|>=) ([0-9.]+)(.*)$")
COMPARE = {"<=": (operator.le, "≤"), ">=": (operator.ge, "≥")}
NUMBER = re.compile(r"[0-9]+(?:\.[0-9]+)?")


def goal_verdict(value: str, note: str) -> tuple[int, str] | None:
    """Where a row's goal starts in its note, and the goal with its verdict ("≥ 0.9 ✗ (70% of
    the goal)"), or None for a row without one. A missed goal says by how much, so that a
    reader sees how far off it is without doing the arithmetic."""
    goal = GOAL.search(note)
    if goal is None:
        return None
    sign, target, rest = goal.groups()
    compare, symbol = COMPARE[sign]
    stated = f"{symbol} {target}{rest}"
    figure = NUMBER.search(value)
    if figure is None:
        return goal.start(), stated
    got, wanted = float(figure.group()), float(target)
    if compare(got, wanted):
        return goal.start(), f"{stated} ✓"
    missed = f"{got / wanted:.0%} of the goal" if sign == ">=" else f"{got / wanted:.2f}× the limit"
    return goal.start(), f"{stated} ✗ ({missed})"


@dataclass(frozen=True)
class Goal:
    """A row's goal, written at the end of its note as `goal_verdict` reads it back."""

    sign: str  # ">=" or "<="
    target: float

    def note(self) -> str:
        return f"goal {self.sign} {self.target:g}"


@dataclass
class Table:
    """Rows of (measure, value, note) printed and written as markdown."""

    title: str
    rows: list[tuple[str, str, str]] = field(default_factory=list)

    def add(self, measure: str, value: str, note: str = "", goal: Goal | None = None) -> None:
        """A row; a ``goal`` goes at the end of its note, where `goal_verdict` finds it."""
        if goal is not None:
            note = f"{note}; {goal.note()}" if note else goal.note()
        self.rows.append((measure, value, note))
        print(f"  {measure:<58} {value:>14}  {self.note_with_verdict(value, note)}", flush=True)

    @staticmethod
    def note_with_verdict(value: str, note: str) -> str:
        verdict = goal_verdict(value, note)
        return note if verdict is None else f"{note[: verdict[0]]}; goal {verdict[1]}".lstrip("; ")

    def markdown(self) -> str:
        lines = [f"### {self.title}", "", "| measure | value | note |", "|---|---|---|"]
        lines += [f"| {m} | {v} | {self.note_with_verdict(v, n)} |" for m, v, n in self.rows]
        return "\n".join(lines) + "\n"


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


def cpu_model() -> str:
    """The CPU's model name from /proc/cpuinfo ("" where there is none)."""
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return ""


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
    (out / BENCH_JSON).write_text(json.dumps([t.__dict__ for t in tables], indent=2))
    info.save(out)


def read_tables(run: Path) -> list[Table]:
    """A run's tables as bench.json holds them."""
    return [Table(**table) for table in json.loads((run / BENCH_JSON).read_text())]


def newest_run(runs: Path = BENCH_RUNS) -> Path:
    """The newest run folder that got to its end (an interrupted run writes no bench.json)."""
    finished = sorted(folder for folder in runs.glob("*") if (folder / BENCH_JSON).exists())
    if not finished:
        raise FileNotFoundError(f"no finished benchmark run under {runs}: run `make bench`")
    return finished[-1]
