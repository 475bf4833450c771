"""The docs\x27 generated sections and their check: `python -m docsgen --check`."""
