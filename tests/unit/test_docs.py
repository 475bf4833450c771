"""The docs are true: every generated section is what its command writes now, and every page
names only make targets, modules, files and links that exist (`python -m docsgen --check`)."""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest

from docsgen import references, sections
from docsgen.__main__ import main

README_LINES = 200


def test_the_repository_passes_the_docs_check(capsys):
    assert main(["--check"]) == 0, capsys.readouterr().err


def test_the_readme_stays_a_few_screens():
    assert len(sections.README.read_text().splitlines()) <= README_LINES


@pytest.fixture
def repo(tmp_path: Path) -> Path:
    """A tiny repository: a Makefile with one target, one module, one page with a heading."""
    subprocess.run(["git", "init", "-q"], cwd=tmp_path, check=True)
    (tmp_path / "Makefile").write_text("serve: ## start\n\techo\n")
    (tmp_path / "pkg").mkdir()
    (tmp_path / "pkg" / "tool.py").write_text("")
    (tmp_path / "docs").mkdir()
    (tmp_path / "docs" / "api.md").write_text("# API\n\n## Sessions and scale-out\n")
    return tmp_path


def problems(repo: Path, text: str) -> list[str]:
    page = repo / "docs" / "page.md"
    page.write_text(text)
    targets = references.make_targets(repo / "Makefile")
    return [p.what for p in references.check_page(page, targets, repo)]


def test_what_exists_passes(repo):
    text = (
        "Run `make serve` and `python -m pkg.tool --check`, see `pkg/tool.py`, "
        "[the API](api.md#sessions-and-scale-out), data in `../shared/data`, outputs in "
        "`runs/bench/x`, [a site](https://example.com).\n\n```bash\nmake serve PORT=1\n```\n"
    )
    assert problems(repo, text) == []


@pytest.mark.parametrize(
    "text, problem",
    [
        ("`make bench`", "`make bench`: no such Makefile target"),
        ("```bash\nmake chaos USERS=4\n```", "`make chaos`: no such Makefile target"),
        ("`python -m pkg.missing`", "`python -m pkg.missing`: no such module"),
        ("`pkg/gone.py`", "`pkg/gone.py`: no such file"),
        ("[x](playground.md)", "link playground.md: no such file"),
        ("[x](api.md#sessions)", "link api.md#sessions: no heading #sessions there"),
        ("`../shared/docs/lesson.md`", "`../shared/docs/lesson.md`: outside the repository"),
    ],
)
def test_what_does_not_exist_fails(repo, text, problem):
    assert problems(repo, text) == [problem]


def test_a_stale_generated_section_fails_the_check(monkeypatch, tmp_path, capsys):
    """A hand-edited API table is caught, and the message names the command that rewrites it."""
    page = tmp_path / "api.md"
    page.write_text(sections.SECTIONS[0].page.read_text().replace("| `text` |", "| `txt` |"))
    stale = sections.Section(
        "api tables", page, "python -m handlers.api_docs", sections.SECTIONS[0].render
    )
    monkeypatch.setattr(sections, "SECTIONS", (stale,))
    monkeypatch.setattr(references, "ROOT", tmp_path)
    monkeypatch.setattr(references, "check", lambda: [])
    assert main(["--check"]) == 1
    assert "run `python -m handlers.api_docs`" in capsys.readouterr().err


def test_github_anchors_follow_githubs_rule():
    assert references.github_anchor("Where the goals are missed, and why") == (
        "where-the-goals-are-missed-and-why"
    )
    assert references.github_anchor("Samples of `lm-wd0.01`") == "samples-of-lm-wd001"
    assert references.github_anchor("Continuous batching (generation)") == (
        "continuous-batching-generation"
    )
