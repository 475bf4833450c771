"""The system Chromium, driven by Playwright (the dev group): for the playground's browser
tests, its screenshots and its cost measurement.

Playwright's own browser download (`playwright install`) is never used: it is unreachable on
offline machines. Debian's ``chromium`` package is launched by its path instead; `make setup`
installs it where missing (scripts/ensure-chromium.sh). ``CHROMIUM=/path`` picks another.
"""

from __future__ import annotations

import os
import shutil
from typing import Any

CHROMIUM_ENV = "CHROMIUM"


def chromium_path() -> str:
    path = os.environ.get(CHROMIUM_ENV) or shutil.which("chromium")
    if not path:
        raise FileNotFoundError(
            "no chromium on PATH: run `make setup` (scripts/ensure-chromium.sh installs it) "
            f"or set {CHROMIUM_ENV}=/path/to/chromium"
        )
    return path


def launch(playwright: Any) -> Any:
    """A headless Chromium from ``sync_playwright()``'s object."""
    return playwright.chromium.launch(executable_path=chromium_path())


def open_playground(browser: Any, url: str, width: int = 1280, height: int = 900) -> Any:
    """A fresh page (own cookies) on the playground's URL, once its fields have loaded."""
    page = browser.new_context(viewport={"width": width, "height": height}).new_page()
    page.goto(url)
    page.locator("body[data-ready=true]").wait_for()
    return page
