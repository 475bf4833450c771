"""What the docs name must exist: `make` targets, `python -m` modules, repository files and
relative links (with their #anchors). A reader who copies a command from a page gets one that
runs; a link that a move broke fails the tests instead of a reader.

    python -m docsgen --check     # runs these checks beside the generated sections' checks
"""

from __future__ import annotations

import re
import subprocess
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
# Pages a person reads: every Markdown file git tracks (or would track) outside tests/.
SKIPPED_DIRS = ("tests/", ".venv/", "runs/", "artifacts/", "model_store/")
# Folders that hold a run's outputs (git-ignored): a page may name them, they need not exist.
OUTPUT_DIRS = ("runs/", "artifacts/", "model_store/", ".venv/", "logs/")
# `python -m` modules that come from the environment, not from this repository.
EXTERNAL_MODULES = {"venv", "pip", "pytest", "ruff", "locust", "http.server", "grpc_tools.protoc"}
# The one path outside the repository a page may name: DATA_DIR's default, where CI keeps data.
OUTSIDE_ALLOWED = ("../shared/data",)
FILE_SUFFIXES = (".py", ".md", ".yaml", ".yml", ".json", ".toml", ".txt", ".png", ".properties")

MAKE_TARGET = re.compile(r"\bmake ((?:[a-z][a-z-]*\s?)+)")
PYTHON_MODULE = re.compile(r"\bpython3? -m ([A-Za-z_][\w.]*)")
CODE_SPAN = re.compile(r"`([^`\n]+)`")
LINK = re.compile(r"!?\[[^\]]*\]\(([^)\s]+)\)")
FENCE = re.compile(r"^```.*?^```", re.S | re.M)
REPO_PATH = re.compile(r"^(?:\.\./)*[\w.-]+(?:/[\w.-]+)*/?$")


@dataclass(frozen=True)
class Problem:
    page: Path
    what: str

    def __str__(self) -> str:
        return f"{self.page.relative_to(ROOT)}: {self.what}"


def pages(root: Path = ROOT) -> list[Path]:
    """The Markdown pages of the repository (tracked or new, never ignored ones)."""
    listed = subprocess.run(
        ["git", "ls-files", "--cached", "--others", "--exclude-standard", "*.md"],
        cwd=root,
        capture_output=True,
        text=True,
        check=True,
    ).stdout.split()
    return sorted(
        root / name
        for name in listed
        if not name.startswith(SKIPPED_DIRS) and (root / name).exists()
    )


def make_targets(makefile: Path = ROOT / "Makefile") -> set[str]:
    return set(re.findall(r"^([a-z][a-z-]*):", makefile.read_text(), re.M))


def module_exists(module: str, root: Path = ROOT) -> bool:
    path = root.joinpath(*module.split("."))
    return path.with_suffix(".py").is_file() or (path / "__main__.py").is_file()


def github_anchor(heading: str) -> str:
    """The #fragment GitHub gives a heading: lower case, punctuation dropped, spaces to '-'."""
    text = re.sub(r"[`*_]|\[([^\]]*)\]\([^)]*\)", r"\1", heading.strip()).lower()
    return re.sub(r"[^\w\- ]", "", text).replace(" ", "-")


def anchors(page: Path) -> set[str]:
    text = FENCE.sub("", page.read_text())
    return {github_anchor(h) for h in re.findall(r"^#{1,6} (.+)$", text, re.M)}


def _tracked_top_level(root: Path) -> set[str]:
    return {p.name for p in root.iterdir() if not p.name.startswith(".")} - {
        d.rstrip("/") for d in OUTPUT_DIRS
    }


def _names_a_file(token: str, top_level: set[str]) -> bool:
    """A code span that a reader would take for a repository path: `handlers/registry.py`,
    `docs/`, `Makefile`; not `a/b` prose, placeholders (`handlers/<model>/`) or outputs."""
    if not REPO_PATH.match(token) or token.startswith(OUTPUT_DIRS):
        return False
    first = token.split("/")[0]
    return first == ".." or (first in top_level and ("/" in token or token.endswith(FILE_SUFFIXES)))


def _commands(text: str) -> Iterable[str]:
    """Text where commands appear: code blocks and code spans."""
    yield from FENCE.findall(text)
    yield from CODE_SPAN.findall(FENCE.sub("", text))


def check_page(page: Path, targets: set[str], root: Path = ROOT) -> list[Problem]:
    text = page.read_text()
    problems: list[Problem] = []
    top_level = _tracked_top_level(root)
    for command in _commands(text):
        for words in MAKE_TARGET.findall(command):
            for target in words.split():
                if target not in targets:
                    problems.append(Problem(page, f"`make {target}`: no such Makefile target"))
                break  # only the first word after `make` is a target
        for module in PYTHON_MODULE.findall(command):
            if module not in EXTERNAL_MODULES and not module_exists(module, root):
                problems.append(Problem(page, f"`python -m {module}`: no such module"))
    for token in CODE_SPAN.findall(FENCE.sub("", text)):
        if _names_a_file(token, top_level):
            if token.startswith("../") and not token.startswith(OUTSIDE_ALLOWED):
                problems.append(Problem(page, f"`{token}`: outside the repository"))
            elif not token.startswith("../") and not (root / token).exists():
                problems.append(Problem(page, f"`{token}`: no such file"))
    for target in LINK.findall(FENCE.sub("", text)):
        if re.match(r"^[a-z]+:", target):
            continue  # https:, mailto:
        path, _, fragment = target.partition("#")
        linked = (page.parent / path).resolve() if path else page
        if not linked.exists():
            problems.append(Problem(page, f"link {target}: no such file"))
        elif not linked.resolve().is_relative_to(root.resolve()):
            problems.append(Problem(page, f"link {target}: outside the repository"))
        elif fragment and linked.suffix == ".md" and fragment not in anchors(linked):
            problems.append(Problem(page, f"link {target}: no heading #{fragment} there"))
    return problems


def check(root: Path = ROOT) -> list[Problem]:
    targets = make_targets(root / "Makefile")
    return [problem for page in pages(root) for problem in check_page(page, targets, root)]
