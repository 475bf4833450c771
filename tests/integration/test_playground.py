"""The playground in a real browser: Debian's chromium driven by Playwright, the page served by
`make playground` against a real TorchServe with the tiny models and token authorization on.

Every answer the page shows is compared with the API's own answer to the same request."""

from __future__ import annotations

import re
import subprocess
from pathlib import Path

import pytest
import requests

from handlers.lm.api import FIELDS as LM_FIELDS
from handlers.lm.api import MAX_STOP_STRINGS
from loadtest.metrics import ACTIVE_ROWS, parse_counters, scrape
from playground import control
from playground.browser import launch, open_playground
from serving.connection import read_keys
from serving.polling import poll_until
from serving.server_config import free_ports

pytestmark = pytest.mark.integration
sync_api = pytest.importorskip("playwright.sync_api")
expect = sync_api.expect

ROOT = Path(__file__).resolve().parents[2]
URL = re.compile(r"http://127\.0\.0\.1:\d+/\?token=\S+")
SEEDED = {"temperature": 1.0, "top_p": 0.9, "seed": 5}
WAIT_MS = 60_000  # generous: the machine may be busy with other tests
CONTROLS = {  # label -> the API's field
    "Temperature": "temperature",
    "Top-k": "top_k",
    "Top-p": "top_p",
    "Max new tokens": "max_new_tokens",
    "Seed": "seed",
}
DECLARED = {spec.name: spec for spec in LM_FIELDS}


@pytest.fixture(scope="module")
def playground_url(server) -> str:
    """`make playground` against the session's server (its run folder), on a free port."""
    port = free_ports(1)[0]
    settings = [f"RUN_DIR={server.run_dir}", f"PLAYGROUND_PORT={port}"]
    made = subprocess.run(
        ["make", "--no-print-directory", "-C", str(ROOT), "playground", *settings],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert made.returncode == 0, made.stdout + made.stderr
    found = URL.search(made.stdout)
    assert found and f":{port}/" in found.group(), made.stdout
    yield found.group()
    control.stop(server.run_dir)


@pytest.fixture(scope="module")
def browser():
    with sync_api.sync_playwright() as playwright:
        chromium = launch(playwright)
        yield chromium
        chromium.close()


@pytest.fixture
def page(browser, playground_url):
    page = open_playground(browser, playground_url)
    yield page
    page.context.close()


def fill(page, **values) -> None:
    """Type into the controls named as a user sees them."""
    for label, value in values.items():
        page.get_by_label(label.replace("_", " "), exact=True).fill(str(value))


def settings(page, prompt: str, max_new_tokens: int, temperature: float, **extra) -> None:
    fill(page, Prompt=prompt, Max_new_tokens=max_new_tokens, Temperature=temperature)
    if "top_p" in extra:
        fill(page, **{"Top-p": extra["top_p"]})
    if "seed" in extra:
        fill(page, Seed=extra["seed"])


def api_answer(server, **payload) -> dict:
    reply = server.post("lm", json=payload)
    assert reply.status_code == 200, reply.text
    return reply.json()


def generated(page) -> str:
    return page.locator("#answer .generated").last.text_content()


def wait_status(page, text: str) -> None:
    expect(page.locator("#generate-status")).to_have_text(text, timeout=WAIT_MS)


def active_rows(server) -> float:
    values = parse_counters(scrape(server.connection.metrics_url), kind="gauge")
    return values.get((ACTIVE_ROWS, "lm"), 0.0)


def settled_rows(server, expected: float, timeout: float = 20.0) -> float:
    """The worker reports its gauges through its log after a call: read until they match;
    fails after ``timeout``."""
    return poll_until(
        lambda: active_rows(server),
        timeout,
        f"the LM's active rows never read {expected}",
        until=lambda now: now == expected,
    )


def record_updates(page) -> None:
    """Keep every text the answer's live region shows, as the browser renders it."""
    page.evaluate(
        """() => {
        window.updates = [];
        const answer = document.getElementById("answer");
        new MutationObserver(() => {
            const spans = answer.querySelectorAll(".generated");
            if (spans.length) window.updates.push(spans[spans.length - 1].textContent);
        }).observe(answer, {subtree: true, childList: true, characterData: true});
    }"""
    )


def test_the_page_needs_its_token_and_origin_and_never_holds_the_key(server, playground_url):
    base = playground_url.split("?")[0]
    assert requests.get(base, timeout=10).status_code == 403  # no token, no cookie
    assert requests.get(base + "?token=wrong", timeout=10).status_code == 403
    port = base.rsplit(":", 1)[1].strip("/")
    rebound = requests.get(playground_url, headers={"Host": f"evil.example:{port}"}, timeout=10)
    assert rebound.status_code == 403 and rebound.json()["field"] == "Host"
    browser_like = requests.Session()
    opened = browser_like.get(playground_url, timeout=10)  # sets the cookie, drops the token
    assert opened.status_code == 200 and opened.url == base, opened.url
    payload = {"prompt": "ROMEO:", "max_new_tokens": 8, "temperature": 0}
    foreign = browser_like.post(
        base + "predictions/lm", json=payload, headers={"Origin": "http://evil.example"}
    )
    assert foreign.status_code == 403 and foreign.json()["field"] == "Origin"
    own = browser_like.post(base + "predictions/lm", json=payload, headers={"Origin": base[:-1]})
    assert own.status_code == 200, own.text
    assert own.json() == api_answer(server, **payload)
    served = [browser_like.get(base + path, timeout=10).text for path in control_paths()]
    keys = read_keys(server.run_dir).values()
    assert all(key not in text for key in keys for text in [*served, opened.text])


def control_paths() -> list[str]:
    return ["", "playground.js", "playground.css", "api/fields"]


def test_the_controls_start_at_the_apis_declared_defaults_and_limits(page):
    for label, name in CONTROLS.items():
        spec = DECLARED[name]
        control = page.get_by_label(label, exact=True)
        shown = control.input_value()
        assert (float(shown) if shown else None) == spec.default, label
        assert control.get_attribute("max") == str(spec.maximum), label  # 2^63 - 1 exactly
    assert f"at most {MAX_STOP_STRINGS}," in page.locator("#stop-hint").text_content()


def test_the_answer_streams_into_the_page_and_ends_as_the_apis_answer(server, page):
    settings(page, "ROMEO:", max_new_tokens=400, **SEEDED)
    record_updates(page)
    page.get_by_role("button", name="Generate").click()
    wait_status(page, "Done")
    request = {"prompt": "ROMEO:", "max_new_tokens": 400, **SEEDED}
    answer = api_answer(server, **request)
    assert generated(page) == answer["text"]
    partial = {text for text in page.evaluate("() => window.updates") if text != answer["text"]}
    assert len(partial - {""}) >= 2, "the answer should grow at least twice before it ends"
    assert page.locator("#answer .prompt").last.text_content() == "ROMEO:"
    assert page.locator("#tokens").text_content() == str(answer["generated_tokens"])
    assert page.locator("#finish").text_content() == answer["finish_reason"]
    assert re.fullmatch(r"\d+ ms", page.locator("#ttfc").text_content())
    assert float(page.locator("#rate").text_content()) > 0
    assert page.locator("#session").text_content() not in ("", "none")


def test_stop_cuts_the_stream_and_the_server_frees_its_row(server, page):
    api_answer(server, prompt="settle", max_new_tokens=4)  # rows earlier tests left go now
    baseline = settled_rows(server, 0.0)
    # Greedy: the tiny model samples control characters, which a prompt may not hold, and
    # Continue below sends the stopped text back as one.
    request = {"prompt": "KING:", "max_new_tokens": 1000, "temperature": 0}
    settings(page, "KING:", max_new_tokens=1000, temperature=0)
    page.get_by_role("button", name="Generate").click()
    expect(page.locator("#answer .generated")).not_to_have_text("", timeout=WAIT_MS)
    page.get_by_role("button", name="Stop").click()
    wait_status(page, "Stopped")
    stopped = generated(page)
    # Before any other request: one would make TorchServe call the handler, which frees the
    # rows of cut streams then (the page's process makes that call itself).
    assert settled_rows(server, baseline) == baseline
    whole = api_answer(server, **request)["text"]
    assert whole.startswith(stopped) and len(stopped) < len(whole), "cut before its end"
    assert page.locator("#finish").text_content() == "stopped"
    assert generated(page) == stopped, "nothing arrives after Stop"
    # Continue after a stop sends what the page shows, which the server never kept.
    fill(page, Prompt="\nQUEEN:", Max_new_tokens=30)
    page.get_by_role("button", name="Continue").click()
    wait_status(page, "Done")
    again = {**request, "prompt": "KING:" + stopped + "\nQUEEN:", "max_new_tokens": 30}
    assert generated(page) == api_answer(server, **again)["text"]


def test_continue_reads_the_next_turn_like_one_request_with_the_whole_text(server, page):
    greedy = {"max_new_tokens": 20, "temperature": 0}
    settings(page, "ROMEO:", **greedy)
    page.get_by_role("button", name="Generate").click()
    wait_status(page, "Done")
    first = generated(page)
    session = page.locator("#session").text_content()
    fill(page, Prompt="\nJULIET:")
    page.get_by_role("button", name="Continue").click()
    wait_status(page, "Done")
    whole = api_answer(server, prompt="ROMEO:" + first + "\nJULIET:", **greedy)
    assert generated(page) == whole["text"]
    assert page.locator("#session").text_content() == session, "the same session went on"
    shown = page.locator("#answer").text_content()
    assert shown == "ROMEO:" + first + "\nJULIET:" + whole["text"]
    page.get_by_role("button", name="Reset").click()
    expect(page.locator("#session")).to_have_text("none")
    assert page.locator("#answer").text_content() == ""


def test_an_out_of_range_field_shows_the_apis_own_message(server, page):
    settings(page, "ROMEO:", max_new_tokens=20, temperature=0.8, top_p=2)
    page.get_by_role("button", name="Generate").click()
    refused = server.post("lm", json={"prompt": "ROMEO:", "max_new_tokens": 20, "top_p": 2})
    assert refused.status_code == 400 and refused.json()["field"] == "top_p"
    expect(page.get_by_role("alert").first).to_have_text(refused.json()["error"])
    expect(page.get_by_label("Top-p", exact=True)).to_have_attribute("aria-invalid", "true")
    assert page.get_by_label("Prompt").input_value() == "ROMEO:", "the prompt is kept"


def test_the_gate_view_shows_each_gate_per_token_as_the_api_explains_it(server, page):
    texts = ["I don't like it .", "a gripping , funny movie"]
    page.get_by_label("Text", exact=True).fill("\n".join(texts))
    page.get_by_role("button", name="Classify").click()
    results = page.locator("#results .result")
    expect(results).to_have_count(2, timeout=WAIT_MS)
    answers = server.post("sentiment", json={"texts": texts, "explain": True}).json()
    assert [t["piece"] for t in answers[0]["explanation"]["tokens"]][1:3] == ["do", "n't"]
    for index, answer in enumerate(answers):
        result = results.nth(index)
        explanation = answer["explanation"]
        assert result.locator(".label").text_content().startswith(answer["label"])
        pieces = result.locator("thead th[scope=col]").all_text_contents()
        assert pieces == [token["piece"] for token in explanation["tokens"]]
        rows = result.locator("tbody tr")
        assert rows.count() == len(explanation["directions"]) * len(explanation["gates"]) == 6
        for row in rows.all():
            direction, gate = row.get_attribute("data-direction"), row.get_attribute("data-gate")
            values = [float(v) for v in row.locator("td").evaluate_all(VALUES)]
            assert values == [token[direction][gate] for token in explanation["tokens"]]
            titles = row.locator("td").evaluate_all("cells => cells.map(c => c.title)")
            assert all(t.endswith(str(v)) for t, v in zip(titles, values, strict=True))
        expect(result.locator(".legend")).to_contain_text("closed")


VALUES = "cells => cells.map(c => c.dataset.value)"


def tab_to(page, locator, presses: int = 40) -> None:
    """Press Tab (only Tab) until ``locator`` has the focus."""
    for _ in range(presses):
        if locator.evaluate("element => element === document.activeElement"):
            return
        page.keyboard.press("Tab")
    raise AssertionError(f"Tab never reached {locator}")


def test_the_keyboard_alone_runs_both_panels(server, page):
    tab_to(page, page.get_by_label("Prompt"))
    page.keyboard.type("ROMEO:")
    tab_to(page, page.get_by_label("Temperature"))
    page.keyboard.press("Control+A")
    page.keyboard.type("0")
    tab_to(page, page.get_by_label("Max new tokens"))
    page.keyboard.press("Control+A")
    page.keyboard.type("12")
    page.keyboard.press("Shift+Tab")  # back to the buttons, the keyboard's way
    tab_to(page, page.get_by_role("button", name="Generate"))
    page.keyboard.press("Enter")
    wait_status(page, "Done")
    greedy = api_answer(server, prompt="ROMEO:", max_new_tokens=12, temperature=0)
    assert generated(page) == greedy["text"]
    tab_to(page, page.get_by_label("Text", exact=True))
    page.keyboard.type("a gripping , funny movie")
    tab_to(page, page.get_by_role("button", name="Classify"))
    page.keyboard.press("Enter")
    expect(page.locator("#results .result")).to_have_count(1, timeout=WAIT_MS)
