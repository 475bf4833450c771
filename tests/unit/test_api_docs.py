"""The README's API tables are generated from the request declarations and must match them."""

from handlers.api_docs import README, render


def test_readme_api_tables_match_the_declared_fields():
    text = README.read_text()
    assert render(text) == text, "run: python -m handlers.api_docs"
