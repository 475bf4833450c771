"""The Python client and its command line against a real TorchServe: answers, streams,
conversations, and errors as exceptions (never an exit from inside a library call)."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest

from serving.client import KEY_ENV, URL_ENV, Client, ClientError

from .conftest import ROOT

pytestmark = pytest.mark.integration


@pytest.fixture(scope="module")
def client(server) -> Client:
    return Client(server.connection)


def direct(server, text: str) -> dict:
    """The sentiment answer over plain HTTP, what every client path must give back."""
    reply = server.post("sentiment", json={"text": text})
    assert reply.status_code == 200, reply.text
    return reply.json()


def test_classify_generate_and_stream(server, client):
    assert client.classify("a gripping , funny movie") == direct(server, "a gripping , funny movie")
    whole = client.generate("ROMEO:", max_new_tokens=20, temperature=1.0, seed=4)
    chunks = list(client.stream("ROMEO:", max_new_tokens=20, temperature=1.0, seed=4))
    assert "".join(c["text"] for c in chunks) == whole["text"]


def test_a_conversation_keeps_its_session_until_it_ends(client):
    chat = client.conversation(max_new_tokens=10, temperature=0)
    first = chat.say("ROMEO:")
    second = chat.say("\nJULIET:")
    assert first["session"] == second["session"] == chat.session
    # Greedy: the second turn is what one request with the whole conversation so far gets.
    whole = client.generate(
        "ROMEO:" + first["text"] + "\nJULIET:", max_new_tokens=10, temperature=0
    )
    assert second["text"] == whole["text"]
    session = chat.session
    chat.end()
    with pytest.raises(ClientError) as error:
        client.generate("x", session=session)
    assert error.value.status == 404 and error.value.field == "session"


def test_predict_sends_any_body_to_any_model(server, client):
    """The generic call, and its command line with a body or with the registry's example."""
    assert client.predict("sentiment", {"texts": ["fine"]}) == [direct(server, "fine")]
    base = [sys.executable, "-m", "serving.client", "--run-dir", str(server.run_dir), "predict"]
    given = subprocess.run(
        [*base, "sentiment", '{"text": "fine"}'],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert json.loads(given.stdout) == direct(server, "fine"), given.stderr
    example = subprocess.run([*base, "lm"], cwd=ROOT, capture_output=True, text=True, timeout=60)
    assert json.loads(example.stdout)["finish_reason"], example.stderr


def test_errors_are_exceptions_naming_the_field(client):
    with pytest.raises(ClientError) as error:
        client.generate("ROMEO:", max_new_tokens=0)
    assert error.value.status == 400 and error.value.field == "max_new_tokens"


def test_the_command_line_prints_answers_and_one_line_errors(server):
    base = [sys.executable, "-m", "serving.client", "--run-dir", str(server.run_dir)]
    answer = subprocess.run(
        [*base, "generate", "ROMEO:", "--max-new-tokens", "5", "--seed", "1"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        check=True,
        timeout=60,
    )
    assert json.loads(answer.stdout)["generated_tokens"] == 5
    refused = subprocess.run(
        [*base, "generate", "ROMEO:", "--max-new-tokens", "0"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        check=False,
        timeout=60,
    )
    assert refused.returncode != 0 and "Traceback" not in refused.stderr
    assert refused.stderr.startswith("error: HTTP 400: max_new_tokens"), refused.stderr
    url, key = server.connection.inference_url, server.connection.inference_key
    anywhere = [sys.executable, "-m", "serving.client", "--url", url, "--key", key]
    labelled = subprocess.run(
        [*anywhere, "classify", "fine"], cwd=ROOT, capture_output=True, text=True, timeout=60
    )
    assert labelled.returncode == 0, labelled.stderr  # CI saw it fail once with no stdout
    assert json.loads(labelled.stdout) == direct(server, "fine")
    # The same server named by the environment instead of flags.
    env = {**os.environ, URL_ENV: url, KEY_ENV: key}
    by_env = subprocess.run(
        [sys.executable, "-m", "serving.client", "classify", "fine"],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert json.loads(by_env.stdout) == direct(server, "fine"), by_env.stderr


def test_a_client_from_a_url_and_key_gets_the_same_answers(server):
    remote = Client.from_url(server.connection.inference_url, server.connection.inference_key)
    assert remote.classify("a dull , lifeless film") == direct(server, "a dull , lifeless film")
    with pytest.raises(ClientError) as error:
        Client.from_url(server.connection.inference_url, "wrong-key").classify("x")
    assert error.value.status in (400, 401), error.value
