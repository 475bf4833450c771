"""Write the request-field tables into docs/api.md from the endpoint declarations.

python -m handlers.api_docs          # rewrite the tables between the api markers
python -m handlers.api_docs --check  # exit 1 if docs/api.md is out of date (docsgen --check too)
"""

from __future__ import annotations

import argparse
import re
import sys
from pathlib import Path

from handlers.registry import MODELS
from handlers.schema import markdown_table

PAGE = Path(__file__).resolve().parent.parent / "docs" / "api.md"


def tables() -> dict[str, str]:
    """Page marker -> the field table of every served model's endpoints with fields."""
    endpoints = [endpoint for model in MODELS for endpoint in model.endpoints()]
    return {e.marker: markdown_table(e.fields) for e in endpoints if e.fields}


def replace_marked(text: str, tag: str, body: str) -> str:
    """``body`` in place of what lies between the lines ``<!-- tag -->`` and ``<!-- /tag -->``
    (the docs' generated parts: these API tables, and the others `python -m docsgen` lists)."""
    name = re.escape(tag)
    pattern = re.compile(rf"(<!-- {name} -->\n).*?(<!-- /{name} -->)", re.S)
    if not pattern.search(text):
        raise ValueError(f"the page lacks the markers <!-- {tag} --> ... <!-- /{tag} -->")
    return pattern.sub(lambda m: m.group(1) + body + m.group(2), text)


def render(text: str) -> str:
    for name, table in tables().items():
        text = replace_marked(text, f"api:{name}", table + "\n")
    return text


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--check", action="store_true")
    args = parser.parse_args()
    current = PAGE.read_text()
    wanted = render(current)
    if args.check:
        sys.exit(
            0
            if wanted == current
            else "docs/api.md API tables are stale: run python -m handlers.api_docs"
        )
    PAGE.write_text(wanted)


if __name__ == "__main__":
    main()
