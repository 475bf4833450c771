"""The serving code stays readable in pieces: no module of handlers/ or models/ over 400 lines,
no function there over 60 (CONTRIBUTING's small modules with self-explaining names)."""

from __future__ import annotations

import ast
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
MAX_FILE_LINES = 400
MAX_FUNCTION_LINES = 60


def test_no_long_file_or_function_in_handlers_and_models():
    files = [path for folder in ("handlers", "models") for path in (ROOT / folder).rglob("*.py")]
    assert len(files) > 20
    long = []
    for path in files:
        text = path.read_text()
        if len(text.splitlines()) > MAX_FILE_LINES:
            long.append(f"{path.relative_to(ROOT)}: {len(text.splitlines())} lines")
        for node in ast.walk(ast.parse(text)):
            if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
                lines = node.end_lineno - node.lineno + 1
                if lines > MAX_FUNCTION_LINES:
                    long.append(f"{path.relative_to(ROOT)}: {node.name} is {lines} lines")
    assert long == []
