"""Screenshots of the playground's two panels for the docs, taken in the system chromium.

    python -m playground.screenshots [--run-dir runs/server] [--out docs]

Uses the playground of the server started from ``--run-dir`` (starting one for the duration
if none runs), generates and classifies a fixed example, and writes
``playground-generate.png`` and ``playground-sentiment.png``. Needs the dev group (Playwright).
"""

from __future__ import annotations

import argparse
from pathlib import Path

from playground import control
from playground.browser import launch, open_playground
from serving.server_config import DEFAULT_RUN_DIR, ROOT, free_ports

GENERATE = {
    "Prompt": "ROMEO:",
    "Max new tokens": "160",
    "Temperature": "0.8",
    "Top-k": "20",
    "Seed": "7",
}
NEXT_TURN = "\nJULIET:"
TEXTS = "I don't like this movie , but the acting is great .\na gripping , funny movie"
WAIT_MS = 120_000


def take(url: str, out: Path) -> list[Path]:
    from playwright.sync_api import expect, sync_playwright

    with sync_playwright() as playwright:
        browser = launch(playwright)
        page = open_playground(browser, url, width=1200, height=900)
        for label, value in GENERATE.items():
            page.get_by_label(label, exact=True).fill(value)
        page.get_by_role("button", name="Generate").click()
        expect(page.locator("#generate-status")).to_have_text("Done", timeout=WAIT_MS)
        page.get_by_label("Prompt", exact=True).fill(NEXT_TURN)
        page.get_by_label("Max new tokens", exact=True).fill("80")
        page.get_by_role("button", name="Continue").click()
        expect(page.locator("#generate-status")).to_have_text("Done", timeout=WAIT_MS)
        page.get_by_label("Text", exact=True).fill(TEXTS)
        page.get_by_role("button", name="Classify").click()
        expect(page.locator("#results .result")).to_have_count(2, timeout=WAIT_MS)
        page.locator("#classify-button").focus()
        written = []
        for panel, name in (("generate", "generate"), ("sentiment", "sentiment")):
            path = out / f"playground-{name}.png"
            page.locator(f"#{panel}-panel").screenshot(path=str(path))
            written.append(path)
        browser.close()
    return written


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--run-dir", type=Path, default=DEFAULT_RUN_DIR)
    parser.add_argument("--out", type=Path, default=ROOT / "docs")
    args = parser.parse_args()
    running = control.read_state(args.run_dir)
    state = running or control.start(args.run_dir, free_ports(1)[0])[0]
    try:
        for path in take(state.url, args.out):
            print(f"wrote {path}")
    finally:
        if running is None:
            control.stop(args.run_dir)


if __name__ == "__main__":
    main()
