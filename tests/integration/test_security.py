"""Authorization and exposure defaults of a running server (see SECURITY.md)."""

from __future__ import annotations

import contextlib
import json
import socket
from datetime import UTC, datetime, timedelta

import pytest
import requests

from serving.connection import KEY_FILE

pytestmark = pytest.mark.integration


def management(server, path: str, key: str | None, method: str = "GET") -> requests.Response:
    headers = {"Authorization": f"Bearer {key}"} if key else {}
    return requests.request(
        method, f"{server.connection.management_url}{path}", headers=headers, timeout=30
    )


def test_management_needs_the_management_key(server):
    keys = server.connection
    assert management(server, "/models/sentiment", None).status_code == 400
    assert management(server, "/models/sentiment", keys.inference_key).status_code == 400
    described = management(server, "/models/sentiment", keys.management_key)
    assert described.status_code == 200
    assert described.json()[0]["modelName"] == "sentiment"


def test_inference_key_is_for_inference_only(server):
    assert server.post("sentiment", json={"text": "fine"}).status_code == 200
    refused = server.post("sentiment", key=server.connection.management_key, json={"text": "x"})
    assert refused.status_code == 400
    assert refused.json()["type"] == "InvalidKeyException"


def test_model_registration_is_off(server):
    key = server.connection.management_key
    for method, path in (("POST", "/models?url=sentiment.mar"), ("DELETE", "/models/sentiment")):
        reply = management(server, path, key, method)
        assert reply.status_code in (400, 403, 405), (method, reply.status_code, reply.text)
    assert server.post("sentiment", json={"text": "still served"}).status_code == 200


def test_keys_do_not_expire_during_a_long_run_and_are_private(server):
    key_file = server.run_dir / KEY_FILE
    assert key_file.stat().st_mode & 0o077 == 0, "key file must be readable by its owner only"
    keys = json.loads(key_file.read_text())
    for kind in ("inference", "management"):
        expires = datetime.fromisoformat(keys[kind]["expiration time"].replace("Z", "+00:00")[:26])
        expires = expires.replace(tzinfo=UTC)
        assert expires - datetime.now(UTC) > timedelta(days=365)


def external_address() -> str | None:
    """An address of this machine that is not loopback, if it has one."""
    probe = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    try:
        probe.connect(("192.0.2.1", 9))  # TEST-NET-1: no packet is sent for a UDP connect
        address = probe.getsockname()[0]
    except OSError:
        return None
    finally:
        probe.close()
    return None if address.startswith("127.") else address


def server_ports(server) -> tuple[int, int, int]:
    config = server.config
    return config.inference_port, config.management_port, config.metrics_port


def test_all_endpoints_answer_on_loopback(server):
    for port in server_ports(server):
        with socket.create_connection(("127.0.0.1", port), timeout=5):
            pass


def test_no_endpoint_answers_on_another_address(server):
    address = external_address()
    if address is None:
        pytest.skip("this machine has no non-loopback address to try the ports on")
    for port in server_ports(server):
        with pytest.raises(OSError), socket.create_connection((address, port), timeout=5):
            pass


def test_a_server_with_keys_off_answers_without_one(tiny_model_store, tmp_path):
    """`make serve AUTH=off` (docs/serving.md): no key needed, and no key file written."""
    from .conftest import launch

    open_server = launch(tiny_model_store, tmp_path / "open", auth=False, models=("sentiment",))
    with contextlib.closing(open_server):  # closing the generator stops the server
        running = next(open_server)
        assert running.connection.inference_key is None
        assert running.post("sentiment", key=None, json={"text": "fine"}).status_code == 200
        assert not (running.run_dir / KEY_FILE).exists()
