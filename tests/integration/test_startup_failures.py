"""A model that cannot load, or a port that is taken, stops the start within seconds with
the cause in one line (issue #16), instead of a timeout minutes later."""

from __future__ import annotations

import socket
import time
import zipfile
from pathlib import Path

import pytest
import yaml

from serving.lifecycle import server_pid, start
from serving.server_config import ServerConfig, ServerError
from training.archive import build_archive, model_config_path

pytestmark = pytest.mark.integration

TIMEOUT = 120  # what a timeout would say is "not READY after 120s": never the message below
# "Within seconds": the JVM starting and the worker failing on a busy 2-core machine, far
# inside the timeout a hang would run into.
FAILS_WITHIN = 60.0


def start_failing(store: Path, run_dir: Path, **settings) -> str:
    config = ServerConfig.on_free_ports(model_store=store, run_dir=run_dir, **settings)
    started = time.monotonic()
    with pytest.raises(ServerError) as error:
        start(config, timeout=TIMEOUT)
    took = time.monotonic() - started
    assert took < FAILS_WITHIN, f"the start took {took:.0f} s to fail: {error.value}"
    assert server_pid(run_dir) is None, "a failed start must not leave TorchServe running"
    return str(error.value)


def test_a_truncated_archive_is_named_with_torchserves_reason(tiny_model_store, tmp_path):
    store = tmp_path / "store"
    store.mkdir()
    whole = (tiny_model_store / "lm.mar").read_bytes()
    # Cut inside the weights' compressed bytes, as an interrupted copy leaves it: half of the
    # file lands wherever the code's sizes put it, and a cut at an entry's boundary is read as
    # a shorter archive whose handler is missing (another message).
    weights = zipfile.ZipFile(tiny_model_store / "lm.mar").getinfo("weights.pt")
    (store / "lm.mar").write_bytes(whole[: weights.header_offset + weights.compress_size // 2])
    message = start_failing(store, tmp_path / "run", models=("lm",))
    assert "model lm" in message and str(store / "lm.mar") in message
    assert "could not be read" in message and "ZLIB" in message, message


def test_a_handler_that_fails_to_load_is_named_with_its_exception(tiny_model_store, tmp_path):
    artifact = tmp_path / "artifact"
    with zipfile.ZipFile(tiny_model_store / "lm.mar") as archive:
        archive.extractall(artifact)
    settings = yaml.safe_load(model_config_path("lm").read_text())
    settings["handler"]["quantize"] = "int4"  # a typo in the model config
    config_file = tmp_path / "lm-config.yaml"
    config_file.write_text(yaml.safe_dump(settings))
    store = tmp_path / "store"
    build_archive("lm", artifact, store, config_file)
    message = start_failing(store, tmp_path / "run", models=("lm",))
    assert "model lm" in message and "handler failed to load" in message
    assert "ValueError: quantize must be 'auto', 'int8' or None, got 'int4'" in message, message


def test_a_port_in_use_is_named(tiny_model_store, tmp_path):
    with socket.socket() as holder:
        holder.bind(("127.0.0.1", 0))
        holder.listen()
        port = holder.getsockname()[1]
        config = ServerConfig.on_free_ports(
            model_store=tiny_model_store, run_dir=tmp_path / "run", models=("sentiment",)
        )
        config.metrics_port = port
        with pytest.raises(ServerError) as error:
            start(config, timeout=TIMEOUT)
    assert f"port {port} (metrics)" in str(error.value) and "already in use" in str(error.value)
