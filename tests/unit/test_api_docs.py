"""The API tables (docs/api.md and other pages under docs/) are generated from the request
declarations and must match them."""

from handlers.api_docs import pages


def test_api_tables_match_the_declared_fields():
    stale = [path.name for path, text in pages().items() if path.read_text() != text]
    assert not stale, "run: python -m handlers.api_docs"
