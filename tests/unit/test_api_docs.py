"""docs/api.md's API tables are generated from the request declarations and must match them."""

from handlers.api_docs import PAGE, render


def test_api_page_tables_match_the_declared_fields():
    text = PAGE.read_text()
    assert render(text) == text, "run: python -m handlers.api_docs"
