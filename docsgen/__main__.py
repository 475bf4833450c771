"""Every generated section of the docs, and the check that they and their references are true.

    python -m docsgen            # rewrite every section whose source is in this checkout
    python -m docsgen --check    # exit 1 if a section is stale or a page names what is not
                                 # there (`make test` runs it before pytest)

A section is what lies between `<!-- NAME -->` and `<!-- /NAME -->`; its owner is the one
command that writes it (the table in CONTRIBUTING.md). `--check` renders each section as its
owner would now and compares; a section whose source is not in the checkout (a `make bench`
run under runs/, which git ignores) is checked when that source is present and skipped, with
a note, when not.
"""

from __future__ import annotations

import argparse
import sys

from docsgen import references, sections


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawTextHelpFormatter
    )
    parser.add_argument("--check", action="store_true")
    args = parser.parse_args(argv)
    problems: list[str] = []
    for section in sections.SECTIONS:
        current = section.page.read_text()
        wanted, note = section.render(current)
        if note:
            print(f"note: {section.name}: {note}")
        if wanted == current:
            continue
        if args.check:
            problems.append(
                f"{section.page.relative_to(references.ROOT)}: {section.name} is stale; "
                f"run `{section.command}`"
            )
        else:
            section.page.write_text(wanted)
            print(f"wrote {section.name} in {section.page.relative_to(references.ROOT)}")
    if args.check:
        problems += [str(problem) for problem in references.check()]
    for problem in problems:
        print(f"error: {problem}", file=sys.stderr)
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main())
