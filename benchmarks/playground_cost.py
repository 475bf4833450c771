"""What the playground costs: its own process while idle, and the server's CPU for a 500-token
stream asked for by the page, against the same stream asked for by the Python client.

    python -m benchmarks.playground_cost --model-store model_store --write docs/playground.md

Starts a TorchServe of its own (free ports, token authorization on) and a playground beside it,
drives the page in the system chromium (Playwright), and reads CPU time with psutil: the
server's is TorchServe's frontend plus all its descendants (the workers and their decode
helpers), measured around each stream; the two ways alternate, with the same seeds. With
``--write`` the table replaces what lies between ``<!-- playground:cost -->`` markers.
"""

from __future__ import annotations

import argparse
import os
import statistics
import tempfile
import time
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path

from benchmarks.cpu import descendants, process_seconds
from benchmarks.harness import server
from docsgen.markdown import markdown_table
from handlers.api_docs import replace_marked
from playground import control
from playground.browser import launch, open_playground
from serving.client import Client
from serving.lifecycle import server_pid
from serving.server_config import DEFAULT_MODEL_STORE, free_ports
from training.machine import cpu_model

MARKER = "playground:cost"
TOKENS = 500
PROMPT = "ROMEO:"


def cpu_ms(pids: list[int]) -> float:
    return sum(process_seconds(pid) for pid in pids) * 1000.0


def server_pids(run_dir: Path) -> list[int]:
    frontend = server_pid(run_dir)
    return [frontend, *descendants(frontend)]


def measured(run_dir: Path, playground_pid: int, stream) -> tuple[float, float, float]:
    """(server CPU ms, playground CPU ms, wall s) of one call of ``stream()``'s result (the
    call itself prepares: fills the page's fields)."""
    pids = server_pids(run_dir)
    run = stream()
    before, page_before, started = cpu_ms(pids), cpu_ms([playground_pid]), time.perf_counter()
    run()
    wall = time.perf_counter() - started
    time.sleep(0.3)  # the worker's last call ends just after the client's last byte
    return cpu_ms(pids) - before, cpu_ms([playground_pid]) - page_before, wall


def idle_share(pid: int, seconds: float) -> tuple[float, float]:
    """(percent of one core, CPU ms) that ``pid`` used over ``seconds`` of nothing to do."""
    before = cpu_ms([pid])
    time.sleep(seconds)
    used = cpu_ms([pid]) - before
    return used / 10.0 / seconds, used


def client_stream(client: Client, seed: int) -> Callable[[], None]:
    def run() -> None:
        chunks = list(client.stream(PROMPT, max_new_tokens=TOKENS, temperature=0.8, seed=seed))
        assert chunks[-1]["generated_tokens"] == TOKENS, chunks[-1]

    return run


def page_stream(page, seed: int) -> Callable[[], None]:
    """Fill the page's fields now; the returned call clicks Generate and waits for the end."""
    from playwright.sync_api import expect

    page.get_by_label("Prompt").fill(PROMPT)
    page.get_by_label("Max new tokens").fill(str(TOKENS))
    page.get_by_label("Temperature").fill("0.8")
    page.get_by_label("Seed").fill(str(seed))

    def run() -> None:
        page.get_by_role("button", name="Generate").click()
        expect(page.locator("#generate-status")).to_have_text("Done", timeout=120_000)
        assert page.locator("#tokens").text_content() == str(TOKENS)

    return run


def measure(store: Path, runs: int, idle_seconds: float, about: str) -> str:
    from playwright.sync_api import sync_playwright

    with tempfile.TemporaryDirectory() as folder:
        run_dir = Path(folder)
        with server(store, ("lm", "sentiment"), run_dir):
            state, _ = control.start(run_dir, free_ports(1)[0])
            try:
                time.sleep(2.0)
                idle, idle_ms = idle_share(state.pid, idle_seconds)
                client = Client.from_run_dir(str(run_dir))
                with sync_playwright() as playwright:
                    browser = launch(playwright)
                    page = open_playground(browser, state.url)
                    client_stream(client, 0)()  # warm both paths once
                    page_stream(page, 0)()
                    figures = {"client": [], "page": []}
                    for seed in range(1, runs + 1):
                        for way, stream in (
                            ("client", lambda s=seed: client_stream(client, s)),
                            ("page", lambda s=seed: page_stream(page, s)),
                        ):
                            figures[way].append(measured(run_dir, state.pid, stream))
                    browser.close()
            finally:
                control.stop(run_dir)
    return table(figures, idle, idle_ms, idle_seconds, runs, about)


def table(figures, idle: float, idle_ms: float, idle_seconds: float, runs: int, about: str) -> str:
    def mean(way: str, index: int) -> float:
        return statistics.mean(run[index] for run in figures[way])

    lines = [
        f"Measured {datetime.now(UTC):%Y-%m-%d} on {cpu_model() or 'this machine'} "
        f"({os.cpu_count()} cores), {runs} streams each way, alternating, seeds 1–{runs}, "
        f"{about}:",
        "",
    ]
    lowest = {way: min(run[0] for run in figures[way]) for way in figures}
    rows = [
        (
            f"server CPU per {TOKENS}-token stream (frontend + workers), mean",
            f"{mean('client', 0):.0f} ms",
            f"{mean('page', 0):.0f} ms",
        ),
        ("the same, lowest run", f"{lowest['client']:.0f} ms", f"{lowest['page']:.0f} ms"),
        ("playground process CPU per stream, mean", "–", f"{mean('page', 1):.0f} ms"),
        (
            "wall time per stream (click to the page's Done), mean",
            f"{mean('client', 2):.2f} s",
            f"{mean('page', 2):.2f} s",
        ),
        (
            f"playground process idle, {idle_seconds:.0f} s",
            "–",
            f"{idle:.2f}% of a core ({idle_ms:.0f} ms of CPU)",
        ),
    ]
    header = ("measure", "Python client", "page (through the playground)")
    return "\n".join(lines) + "\n" + markdown_table(header, rows)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--model-store", type=Path, default=DEFAULT_MODEL_STORE)
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--idle", type=float, default=30.0, help="seconds of idle to measure")
    parser.add_argument("--write", type=Path, help="a page with the playground:cost markers")
    parser.add_argument("--about", help="the models, in words (default: the store's path)")
    args = parser.parse_args()
    text = measure(args.model_store, args.runs, args.idle, args.about or f"`{args.model_store}`")
    print(text)
    if args.write:
        args.write.write_text(replace_marked(args.write.read_text(), MARKER, text))


if __name__ == "__main__":
    main()
