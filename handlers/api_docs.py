"""Write the request-field tables into pages under docs/ (docs/api.md, and docs/scoring.md for
the tokenizer routes) from the endpoint declarations: each table goes where its
``<!-- api:<marker> -->`` markers are.

python -m handlers.api_docs          # rewrite the tables between the api markers
python -m handlers.api_docs --check  # exit 1 if a page is out of date (docsgen --check too)
"""

from __future__ import annotations

import argparse
import re
import sys
from pathlib import Path

from handlers.registry import MODELS
from handlers.schema import markdown_table

PAGES = Path(__file__).resolve().parent.parent / "docs"  # every page there may hold tables
PAGE = PAGES / "api.md"  # the field reference: most tables live here


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


def render(text: str, everywhere: bool = True) -> str:
    """``text`` with its tables rendered; with ``everywhere`` each table must be in it."""
    for name, table in tables().items():
        if everywhere or f"<!-- api:{name} -->" in text:
            text = replace_marked(text, f"api:{name}", table + "\n")
    return text


def pages() -> dict[Path, str]:
    """Each page with tables -> its text as it should be; every table is placed somewhere."""
    files = sorted(PAGES.glob("*.md"))
    texts = {path: path.read_text() for path in files}
    missing = [n for n in tables() if not any(f"<!-- api:{n} -->" in t for t in texts.values())]
    if missing:
        raise ValueError(f"no page holds the markers of the tables {missing}")
    return {path: render(text, everywhere=False) for path, text in texts.items()}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--check", action="store_true")
    args = parser.parse_args()
    wanted = pages()
    stale = [path for path, text in wanted.items() if path.read_text() != text]
    if args.check:
        if stale:
            names = [path.name for path in stale]
            sys.exit(f"API tables are stale in {names}: run python -m handlers.api_docs")
        return
    for path in stale:
        path.write_text(wanted[path])


if __name__ == "__main__":
    main()
