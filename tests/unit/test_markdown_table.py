"""The one table writer: a plain pipe table, cells as written, alignment per column."""

from __future__ import annotations

from docsgen.markdown import markdown_rows, markdown_table


def test_a_table_is_a_header_a_rule_and_a_line_per_row():
    text = markdown_table(("measure", "value"), [("served", 1687), ("p99", "")])
    assert text == "| measure | value |\n|---|---|\n| served | 1687 |\n| p99 |  |\n"


def test_alignment_is_a_letter_per_column_and_left_where_it_is_short():
    lines = markdown_rows(("token", "id", "norm", "note"), [], "lrc")
    assert lines == ["| token | id | norm | note |", "|---|---:|:---:|---|"]
