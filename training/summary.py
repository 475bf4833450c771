"""One line per trained model: the quality it reached and what it cost (read from metrics.json),
in the words its registry entry declares (`handlers.registry.ServedModel.summary`).

python -m training.summary            # what `make models` prints at the end
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from string import Formatter
from typing import Any

from handlers import registry

# A trained folder that no served model names (an old run, a renamed model): its cost alone.
UNKNOWN_MODEL = ("trained in {minutes:.1f} min",)


def describe(name: str, metrics: dict[str, Any], kind: str | None = None) -> str:
    """``name: <pieces>``: each summary piece whose figures metrics.json holds, in order, in
    the words of the model ``kind`` (the artifact's config.json says; else the folder's name,
    so that runs/first-start/sentiment-13 reads as a sentiment model)."""
    try:
        pieces = registry.get(kind or name).summary
    except KeyError:
        pieces = UNKNOWN_MODEL
    figures = dict(metrics)
    if "seconds" in figures:
        figures.setdefault("minutes", figures["seconds"] / 60)
    kept = [piece for piece in pieces if set(_fields(piece)) <= set(figures)]
    text = "".join(piece.format(**figures) for piece in kept).lstrip(", ")
    return f"{name}: {text or 'no figures in its metrics.json'}"


def _fields(piece: str) -> list[str]:
    return [field for _, field, _, _ in Formatter().parse(piece) if field]


def main(folder: str = "artifacts") -> None:
    for path in sorted(Path(folder).glob("*/metrics.json")):
        config = path.with_name("config.json")
        kind = json.loads(config.read_text()).get("kind") if config.exists() else None
        print(describe(path.parent.name, json.loads(path.read_text()), kind))


if __name__ == "__main__":
    main(*sys.argv[1:])
