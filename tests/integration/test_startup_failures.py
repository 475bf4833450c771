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


def damaged_copies(archive: Path) -> dict[str, bytes]:
    """The archive as an interrupted or corrupted copy leaves it."""
    whole = archive.read_bytes()
    entries = zipfile.ZipFile(archive).infolist()
    weights = next(e for e in entries if e.filename == "weights.pt")
    flipped = bytearray(whole)
    flipped[weights.header_offset + len(weights.FileHeader()) + weights.compress_size // 2] ^= 0xFF
    return {
        # Inside the weights' compressed bytes (TorchServe said: "Unexpected end of ZLIB").
        "cut inside an entry": whole[: weights.header_offset + weights.compress_size // 2],
        # At an entry's boundary (TorchServe said: the handler failed to load, a module missing).
        "cut at an entry boundary": whole[: entries[len(entries) // 2].header_offset],
        "one byte changed": bytes(flipped),
    }


@pytest.mark.parametrize(
    "damage", ["cut inside an entry", "cut at an entry boundary", "one byte changed"]
)
def test_a_damaged_archive_is_named_as_damaged_before_torchserve_starts(
    tiny_model_store, tmp_path, damage
):
    store = tmp_path / "store"
    store.mkdir()
    (store / "lm.mar").write_bytes(damaged_copies(tiny_model_store / "lm.mar")[damage])
    message = start_failing(store, tmp_path / "run", models=("lm",))
    assert message.startswith(f"model lm ({store / 'lm.mar'}) is damaged ("), message
    assert "copy it again, or delete it and run `make models`" in message
    assert not (tmp_path / "run" / "logs").exists(), "TorchServe must not have been started"


def test_a_whole_archive_that_torchserve_cannot_open_is_named_with_its_reason(
    tiny_model_store, tmp_path
):
    """A sound zip with a manifest TorchServe cannot parse: only its log says why."""
    store = tmp_path / "store"
    store.mkdir()
    with (
        zipfile.ZipFile(tiny_model_store / "lm.mar") as source,
        zipfile.ZipFile(store / "lm.mar", "w", zipfile.ZIP_DEFLATED) as target,
    ):
        for entry in source.infolist():
            broken = entry.filename == "MAR-INF/MANIFEST.json"
            target.writestr(entry, b"{ not json" if broken else source.read(entry))
    message = start_failing(store, tmp_path / "run", models=("lm",))
    assert message.startswith(f"model lm ({store / 'lm.mar'}) did not load: the archive"), message
    assert "InvalidModelException" in message, message


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
