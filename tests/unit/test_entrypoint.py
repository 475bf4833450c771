"""The entrypoint's settings and its stale-pid handling (the running entrypoint is tested in
tests/integration/test_container.py)."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from serving.entrypoint import SettingsError, clear_stale_pid_file, config_from_env
from serving.lifecycle import PID_FILE
from serving.server_config import DEFAULT_MODELS, ServerConfig


def test_defaults_keep_keys_on_and_loopback_outside_the_image():
    config = config_from_env({})
    assert config.auth is True
    assert config.host == "127.0.0.1"
    assert config.models == DEFAULT_MODELS
    assert config.inference_port == ServerConfig().inference_port


def test_settings_come_from_the_environment():
    config = config_from_env(
        {
            "RNN_SERVE_HOST": "0.0.0.0",
            "RNN_SERVE_INFERENCE_PORT": "9080",
            "RNN_SERVE_WORKER_PORT": "9900",
            "RNN_SERVE_AUTH": "off",
            "RNN_SERVE_MODELS": "sentiment",
            "RNN_SERVE_MODEL_STORE": "/srv/store",
            "RNN_SERVE_RUN_DIR": "/srv/run",
        }
    )
    assert (config.host, config.inference_port, config.initial_worker_port) == (
        "0.0.0.0",
        9080,
        9900,
    )
    assert config.auth is False
    assert config.models == ("sentiment",)
    assert config.model_store == Path("/srv/store") and config.run_dir == Path("/srv/run")


@pytest.mark.parametrize(
    "variable, value",
    [
        ("RNN_SERVE_AUTH", "of"),
        ("RNN_SERVE_AUTH", ""),
        ("RNN_SERVE_METRICS_PORT", "80a"),
        ("RNN_SERVE_INFERENCE_PORT", "70000"),
        ("RNN_SERVE_MODELS", "sentiment,,lm"),
    ],
)
def test_unclear_settings_are_refused_not_guessed(variable, value):
    with pytest.raises(SettingsError, match=variable.removeprefix("RNN_SERVE_")):
        config_from_env({variable: value})


def test_a_pid_file_naming_another_process_is_stale(tmp_path):
    pid_file = tmp_path / "tmp" / PID_FILE
    pid_file.parent.mkdir()
    pid_file.write_text(str(os.getpid()))  # alive, but not TorchServe
    assert clear_stale_pid_file(tmp_path) is True
    assert not pid_file.exists()
    assert clear_stale_pid_file(tmp_path) is False
