"""Record a recipe's runs on its experiments page, from the runs' own files.

    python -m training.experiments sentiment NAME runs/exp17/X-s13 runs/exp17/X-s14 ...
    python -m training.experiments lm NAME runs/exp17/lm-x --note "what changed, and why"

Each run folder is an artifact folder a trainer wrote (`metrics.json`, `config.json`). The
recipe's row (its name, the date and machine, the seeds, the minutes and the result of each
run, their mean) goes into the table between `<!-- runs:<model> -->` markers on
docs/experiments/<model>.md, and what was read is kept as docs/experiments/<model>.runs.json,
from which `python -m docsgen --check` renders the table again. A recipe recorded again under
the same name replaces its row. Runs done before this command existed are in the hand-kept
tables of the same page.
"""

from __future__ import annotations

import argparse
import json
import statistics
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from docsgen.markdown import markdown_table
from training.machine import machine

ROOT = Path(__file__).resolve().parent.parent
PAGES = ROOT / "docs" / "experiments"
# Per model: the metrics.json key of its result, how to write it, and where its minutes are.
RESULTS = {
    "sentiment": ("dev_accuracy", "{:.1%}", lambda m: m["seconds"] / 60),
    "lm": ("val_nats_per_char", "{:.4f}", lambda m: m["train_minutes"]),
}


def source_file(model: str, pages: Path = PAGES) -> Path:
    return pages / f"{model}.runs.json"


def read_run(model: str, run: Path) -> dict[str, Any]:
    """One run's seed, date, minutes and result, from the files its trainer wrote."""
    metrics = json.loads((run / "metrics.json").read_text())
    config = json.loads((run / "config.json").read_text())
    key, _, minutes = RESULTS[model]
    finished = datetime.fromtimestamp((run / "metrics.json").stat().st_mtime, UTC)
    return {
        "run": run.name,
        "seed": config["training"]["seed"],
        "date": finished.strftime("%Y-%m-%d"),
        "minutes": round(minutes(metrics), 1),
        "result": metrics[key],
    }


def recipe_row(model: str, recipe: dict[str, Any]) -> list[str]:
    _, style, _ = RESULTS[model]
    runs = recipe["runs"]
    results = " / ".join(style.format(r["result"]) for r in runs)
    if len(runs) > 1:
        results += f", mean {style.format(statistics.mean(r['result'] for r in runs))}"
    cells = [
        f"`{recipe['name']}`",
        ", ".join(sorted({r["date"] for r in runs})),
        recipe["machine"],
        " / ".join(str(r["seed"]) for r in runs),
        " / ".join(f"{r['minutes']:.1f}" for r in runs),
        results,
        recipe.get("note", ""),
    ]
    return cells


def table(model: str, recipes: list[dict[str, Any]] | None) -> str:
    if not recipes:
        return f"_No runs recorded yet: `python -m training.experiments {model} NAME RUN...`._\n"
    header = ("recipe", "date", "machine", "seeds", "minutes", "result", "note")
    return markdown_table(header, [recipe_row(model, recipe) for recipe in recipes])


def load_recipes(model: str, pages: Path = PAGES) -> list[dict[str, Any]] | None:
    path = source_file(model, pages)
    return json.loads(path.read_text()) if path.exists() else None


def render(model: str, text: str, recipes: list[dict[str, Any]] | None) -> str:
    from handlers.api_docs import replace_marked

    return replace_marked(text, f"runs:{model}", table(model, recipes))


def record(
    model: str, name: str, runs: list[Path], note: str = "", pages: Path = PAGES
) -> list[dict[str, Any]]:
    """Add (or replace) recipe ``name`` with ``runs`` and rewrite the page's table."""
    recipe = {
        "name": name,
        "machine": machine(),
        "runs": [read_run(model, run) for run in runs],
        "note": note,
    }
    recipes = [r for r in load_recipes(model, pages) or [] if r["name"] != name] + [recipe]
    source_file(model, pages).write_text(json.dumps(recipes, indent=2) + "\n")
    page = pages / f"{model}.md"
    page.write_text(render(model, page.read_text(), recipes))
    return recipes


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawTextHelpFormatter
    )
    parser.add_argument("model", choices=sorted(RESULTS))
    parser.add_argument("name", help="the recipe's name: what it is, never 'the new default'")
    parser.add_argument("runs", nargs="+", type=Path, help="run (artifact) folders")
    parser.add_argument("--note", default="", help="what it changed, and what came of it")
    parser.add_argument("--pages", type=Path, default=PAGES)
    args = parser.parse_args(argv)
    record(args.model, args.name, args.runs, args.note, args.pages)
    print(f"{args.pages / args.model}.md: {args.name} from {len(args.runs)} run(s)")


if __name__ == "__main__":
    main()
