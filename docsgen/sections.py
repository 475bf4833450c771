"""The generated sections of the docs: where each lies, which command writes it, and how to
render it from its source now (so that `python -m docsgen --check` can compare)."""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from benchmarks import readme_tables
from benchmarks.results import ROOT as BENCH_ROOT
from docsgen.references import ROOT
from handlers import api_docs
from handlers.api_docs import replace_marked
from training import experiments, model_card

README = ROOT / "README.md"
BENCH_PAGE = readme_tables.README
HEADLINE = "bench:headline"  # the README's short table: the bench rows that carry a goal

# render(current page text) -> (the text its owner would write now, a note or None)
Render = Callable[[str], tuple[str, str | None]]


@dataclass(frozen=True)
class Section:
    name: str
    page: Path
    command: str
    render: Render


def _bench_tables(text: str) -> tuple[str, str | None]:
    """The bench tables from the run their caption names, when that run is in this checkout."""
    named = re.search(r"<!-- bench:run -->\n.*?`(runs/bench/[^`]+)`", text, re.S)
    if not named:
        return text, "no run named in the bench:run caption"
    run = BENCH_ROOT / named.group(1)
    if not (run / "bench.json").exists():
        return text, f"{named.group(1)} is not in this checkout (runs/ is git-ignored): not checked"
    return readme_tables.render(text, run), None


def headline_rows(bench_page: str) -> list[list[str]]:
    """The rows of the bench tables that carry a goal: measure, value, goal."""
    rows = []
    for name in ("classification", "generation"):
        body = re.search(rf"<!-- bench:{name} -->\n(.*?)<!-- /bench:{name} -->", bench_page, re.S)
        for line in body.group(1).splitlines()[2:] if body else []:
            cells = [c.strip() for c in line.strip().strip("|").split("|")]
            measure, value, goal = cells[0], cells[1], cells[-1]  # the goal is the last column
            if goal:
                rows.append([f"{name}: {measure}", value, goal])
    return rows


def _headline(text: str) -> tuple[str, str | None]:
    bench_page = BENCH_PAGE.read_text()
    rows = headline_rows(bench_page)
    caption = re.search(r"<!-- bench:run -->\n(.*?)<!-- /bench:run -->", bench_page, re.S)
    source = (
        caption.group(1).strip().replace("The figures below are from", "From") if caption else ""
    )
    table = [source, "", "| measured by `make bench` | value | goal |", "|---|---|---|"]
    table += ["| " + " | ".join(row) + " |" for row in rows]
    return replace_marked(text, HEADLINE, "\n".join(table) + "\n"), None


def _card(model: str) -> Render:
    def render(text: str) -> tuple[str, str | None]:
        source = model_card.load_source(model)
        note = None if source else "no default model's figures written yet (placeholder)"
        return model_card.render(model, text, source), note

    return render


def _runs(model: str) -> Render:
    def render(text: str) -> tuple[str, str | None]:
        return experiments.render(model, text, experiments.load_recipes(model)), None

    return render


SECTIONS: tuple[Section, ...] = (
    *(
        Section(
            f"api tables in {page.name}",
            page,
            "python -m handlers.api_docs",
            lambda text: (api_docs.render(text, everywhere=False), None),
        )
        for page, text in api_docs.pages().items()
        if "<!-- api:" in text
    ),
    Section("bench tables", BENCH_PAGE, "python -m benchmarks.readme_tables", _bench_tables),
    Section("bench headline", README, "python -m docsgen", _headline),
    Section(
        "sentiment card",
        model_card.CARDS / "sentiment.md",
        "python -m training.model_card sentiment",
        _card("sentiment"),
    ),
    Section("lm card", model_card.CARDS / "lm.md", "python -m training.model_card lm", _card("lm")),
    *(
        Section(
            f"{model} runs",
            experiments.PAGES / f"{model}.md",
            f"python -m training.experiments {model}",
            _runs(model),
        )
        for model in ("sentiment", "lm")
    ),
)
