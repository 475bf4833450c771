"""The playground's process without a TorchServe: what it serves, whom it refuses, and its
start and stop. The page itself, against a real server, is tested in a real browser in
tests/integration/test_playground.py."""

from __future__ import annotations

import http.client
import json
import threading
from pathlib import Path

import pytest

from handlers.lm.api import FIELDS as LM_FIELDS
from handlers.openapi import field_schema
from handlers.schema import MAX_BODY_BYTES
from handlers.sentiment.api import FIELDS as SENTIMENT_FIELDS
from playground import control
from playground.proxy import PlaygroundServer
from serving.lifecycle import alive
from serving.server_config import free_ports

TOKEN = "secret-token"


@pytest.fixture
def playground(tmp_path):
    """A playground process in this one, for a run folder with no server in it."""
    server = PlaygroundServer(free_ports(1)[0], tmp_path, TOKEN, {"lm": {}, "sentiment": {}})
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield server
    server.shutdown()
    server.server_close()


def ask(server, method: str, path: str, body: bytes = b"", **headers: str):
    connection = http.client.HTTPConnection("127.0.0.1", server.port, timeout=10)
    headers.setdefault("Host", f"127.0.0.1:{server.port}")
    connection.request(method, path, body, headers)
    reply = connection.getresponse()
    return reply, reply.read()


def cookie(server) -> str:
    return f"{server.cookie}={TOKEN}"


def test_the_token_in_the_url_becomes_a_strict_cookie_and_opens_the_page(playground):
    refused, body = ask(playground, "GET", "/")
    assert refused.status == 403 and json.loads(body)["field"] == "token"
    wrong, _ = ask(playground, "GET", "/?token=%C3%A9t%C3%A9")  # not even ASCII
    assert wrong.status == 403
    opened, _ = ask(playground, "GET", f"/?token={TOKEN}")
    assert opened.status == 303 and opened.getheader("Location") == "/"
    set_cookie = opened.getheader("Set-Cookie")
    assert set_cookie.startswith(cookie(playground)) and "HttpOnly" in set_cookie
    assert "SameSite=Strict" in set_cookie
    page, html = ask(playground, "GET", "/", Cookie=cookie(playground))
    assert page.status == 200 and b"<title>rnn-serve playground</title>" in html
    assert "script-src 'self'" in page.getheader("Content-Security-Policy")


def test_other_hosts_origins_paths_and_oversized_bodies_are_refused(playground):
    own = {"Cookie": cookie(playground), "Origin": f"http://127.0.0.1:{playground.port}"}
    host, _ = ask(playground, "GET", f"/?token={TOKEN}", Host="attacker.example")
    assert host.status == 403
    origin, body = ask(playground, "POST", "/predictions/lm", b"{}", **{**own, "Origin": "null"})
    assert origin.status == 403 and json.loads(body)["field"] == "Origin"
    management, _ = ask(playground, "POST", "/models", b"{}", **own)
    assert management.status == 404
    size = str(MAX_BODY_BYTES + 1)
    huge, body = ask(playground, "POST", "/predictions/lm", **own, **{"Content-Length": size})
    assert huge.status == 413 and json.loads(body)["field"] == "body"
    negative, _ = ask(playground, "POST", "/predictions/lm", **own, **{"Content-Length": "-1"})
    assert negative.status == 411
    # No server runs from this run folder: the page is told so, with the reason.
    alone, body = ask(playground, "POST", "/predictions/lm", b'{"prompt": "x"}', **own)
    assert alone.status == 503 and "make serve" in json.loads(body)["error"]


def test_the_started_process_hands_the_page_the_apis_declarations_and_stops(tmp_path: Path):
    """One process started as `make playground` does: its token URL, its state file readable by
    this user only, the fields it serves (the declarations that validate requests), its stop."""
    state, started = control.start(tmp_path, free_ports(1)[0])
    try:
        assert started and alive(state.pid)
        assert control.start(tmp_path, state.port) == (state, False), "one per run folder"
        assert state.url.endswith(f"/?token={state.token}") and len(state.token) >= 32
        assert (tmp_path / control.STATE_FILE).stat().st_mode & 0o077 == 0
        page = http.client.HTTPConnection("127.0.0.1", state.port, timeout=10)
        page.request(
            "GET", "/api/fields", headers={"Cookie": f"playground_{state.port}={state.token}"}
        )
        fields = json.loads(page.getresponse().read())
        assert fields["lm"] == {spec.name: field_schema(spec) for spec in LM_FIELDS}
        assert fields["sentiment"] == {spec.name: field_schema(spec) for spec in SENTIMENT_FIELDS}
        temperature = next(spec for spec in LM_FIELDS if spec.name == "temperature")
        assert fields["lm"]["temperature"]["default"] == temperature.default
    finally:
        assert control.stop(tmp_path)
    assert not alive(state.pid) and control.read_state(tmp_path) is None
    assert state.token not in (tmp_path / control.LOG_FILE).read_text(), "never in the log"
