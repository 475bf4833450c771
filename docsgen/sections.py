"""The generated sections of the docs: where each lies, which command writes it, and how to
render it from its source now (so that `python -m docsgen --check` can compare)."""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from benchmarks import readme_tables
from benchmarks.results import BENCH_JSON
from benchmarks.results import ROOT as BENCH_ROOT
from handlers import api_docs
from training import experiments, model_card

README = readme_tables.FRONT_PAGE
BENCH_PAGE = readme_tables.BENCH_PAGE

# render(current page text) -> (the text its owner would write now, a note or None)
Render = Callable[[str], tuple[str, str | None]]


@dataclass(frozen=True)
class Section:
    name: str
    page: Path
    command: str
    render: Render


def _named_run(bench_page: str) -> tuple[Path | None, str | None]:
    """The run the bench page's caption names, when that run is in this checkout."""
    named = re.search(r"<!-- bench:run -->\n.*?`(runs/bench/[^`]+)`", bench_page, re.S)
    if not named:
        return None, "no run named in the bench:run caption"
    run = BENCH_ROOT / named.group(1)
    if not (run / BENCH_JSON).exists():
        return None, f"{named.group(1)} is not in this checkout (runs/ is git-ignored): not checked"
    return run, None


def _bench_tables(text: str) -> tuple[str, str | None]:
    """The bench tables from the run their caption names."""
    run, note = _named_run(text)
    return (text, note) if run is None else (readme_tables.render(text, run), None)


def _headline(text: str) -> tuple[str, str | None]:
    """The README's rows with a goal, from the run the bench page's caption names."""
    run, note = _named_run(BENCH_PAGE.read_text())
    return (text, note) if run is None else (readme_tables.render_headline(text, run), None)


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
    Section("bench headline", README, "python -m benchmarks.readme_tables", _headline),
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
