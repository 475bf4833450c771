"""The one markdown-table writer of the project's reports and generated docs sections.

Every generated table is the same plain pipe table (`| a | b |` over `|---|---|`), so a
diff of a regenerated page shows changed figures, not changed padding. Standard library only:
the trainers, the load test and the benchmarks all import it.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence

ALIGN = {"l": "---", "r": "---:", "c": ":---:"}


def markdown_rows(
    header: Sequence[object], rows: Iterable[Sequence[object]], align: str = ""
) -> list[str]:
    """The lines of a table: the header, the rule, then one line per row. ``align`` has a
    letter per column, ``l``, ``r`` or ``c`` (left where it is short or empty)."""
    rule = [ALIGN[align[i]] if i < len(align) else ALIGN["l"] for i in range(len(header))]
    lines = [_line(header), "|" + "|".join(rule) + "|"]
    return lines + [_line(row) for row in rows]


def markdown_table(
    header: Sequence[object], rows: Iterable[Sequence[object]], align: str = ""
) -> str:
    """`markdown_rows` joined, ending in a newline."""
    return "\n".join(markdown_rows(header, rows, align)) + "\n"


def _line(cells: Sequence[object]) -> str:
    return "| " + " | ".join(str(cell) for cell in cells) + " |"
