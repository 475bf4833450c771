"""The container's foreground process: start TorchServe, watch it, stop it on SIGTERM.

    python -m serving.entrypoint        # settings from RNN_SERVE_* variables (table below)

TorchServe's own `--start` daemonizes and returns at once, but a container (and Kubernetes)
needs one process that lives exactly as long as the server and reacts to signals. This is it:
it starts the server through serving.lifecycle (the code `make serve` runs, so container and
checkout behave alike), waits until every worker is READY, says where the keys are, then
watches the server's pid. SIGTERM or SIGINT (`docker stop`, a pod deletion, Ctrl-C) stops the
server gracefully and exits 0; a server that dies on its own exits 2, a start that fails
exits 1, so an orchestrator restarts the container instead of keeping a corpse.

Nothing here is Docker-specific: tests run it as a plain subprocess on free loopback ports.

| variable                        | default                    | meaning                        |
|---------------------------------|----------------------------|--------------------------------|
| RNN_SERVE_HOST                  | 127.0.0.1 (image: 0.0.0.0) | address every endpoint binds   |
| RNN_SERVE_INFERENCE_PORT        | 8080                       | inference API                  |
| RNN_SERVE_MANAGEMENT_PORT       | 8081                       | management API                 |
| RNN_SERVE_METRICS_PORT          | 8082                       | Prometheus metrics             |
| RNN_SERVE_GRPC_INFERENCE_PORT   | 7070                       | gRPC inference (bound, unused) |
| RNN_SERVE_GRPC_MANAGEMENT_PORT  | 7071                       | gRPC management                |
| RNN_SERVE_WORKER_PORT           | 9000                       | first worker socket number     |
| RNN_SERVE_AUTH                  | on                         | `off` disables token keys      |
| RNN_SERVE_MODEL_STORE           | model_store/               | folder with the .mar archives  |
| RNN_SERVE_MODELS                | sentiment,lm               | archives to serve              |
| RNN_SERVE_RUN_DIR               | runs/server/               | logs, generated config, keys   |
| RNN_SERVE_START_TIMEOUT         | 300                        | seconds to reach READY         |
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
from collections.abc import Mapping
from pathlib import Path
from types import FrameType

import psutil

from serving.connection import KEY_FILE
from serving.lifecycle import PID_FILE, START_TIMEOUT, log_hint, server_pid, start, stop
from serving.server_config import DEFAULT_MODELS, DEFAULT_RUN_DIR, ServerConfig, ServerError

PREFIX = "RNN_SERVE_"
RUN_DIR_VARIABLE = PREFIX + "RUN_DIR"
# Environment variable suffix -> ServerConfig field, for the six numbers a server binds.
PORTS = {
    "INFERENCE_PORT": "inference_port",
    "MANAGEMENT_PORT": "management_port",
    "METRICS_PORT": "metrics_port",
    "GRPC_INFERENCE_PORT": "grpc_inference_port",
    "GRPC_MANAGEMENT_PORT": "grpc_management_port",
    "WORKER_PORT": "initial_worker_port",
}
EXIT_START_FAILED = 1
EXIT_SERVER_DIED = 2


class SettingsError(ValueError):
    """An RNN_SERVE_* variable holds a value we refuse to guess about."""


def run_dir_from_env(env: Mapping[str, str] = os.environ) -> Path:
    """The run folder, shared with the health check (it reads the keys and state there)."""
    return Path(env.get(RUN_DIR_VARIABLE, str(DEFAULT_RUN_DIR)))


def config_from_env(env: Mapping[str, str] = os.environ) -> ServerConfig:
    """A ServerConfig from RNN_SERVE_* variables; unset ones keep ServerConfig's defaults.

    Auth is on unless the variable says exactly `off`: a typo must not open the server.
    """
    defaults = ServerConfig()
    ports = {field: _port(PREFIX + name, env) for name, field in PORTS.items()}
    auth = env.get(PREFIX + "AUTH", "on").strip().lower()
    if auth not in ("on", "off"):
        raise SettingsError(f"{PREFIX}AUTH must be 'on' or 'off', not {auth!r}")
    models = tuple(
        m.strip() for m in env.get(PREFIX + "MODELS", ",".join(DEFAULT_MODELS)).split(",")
    )
    if not all(models):
        raise SettingsError(f"{PREFIX}MODELS must list model names separated by commas")
    return ServerConfig(
        host=env.get(PREFIX + "HOST", defaults.host),
        model_store=Path(env.get(PREFIX + "MODEL_STORE", str(defaults.model_store))),
        run_dir=run_dir_from_env(env),
        auth=auth == "on",
        models=models,
        **{field: port for field, port in ports.items() if port is not None},
    )


def _port(variable: str, env: Mapping[str, str]) -> int | None:
    if variable not in env:
        return None
    try:
        port = int(env[variable])
    except ValueError:
        port = -1
    if not 0 < port < 65536:
        raise SettingsError(f"{variable} must be a port number, not {env[variable]!r}")
    return port


def start_timeout_from_env(env: Mapping[str, str] = os.environ) -> float:
    value = env.get(PREFIX + "START_TIMEOUT", str(START_TIMEOUT))
    try:
        return float(value)
    except ValueError:
        raise SettingsError(f"{PREFIX}START_TIMEOUT must be seconds, not {value!r}") from None


def clear_stale_pid_file(run_dir: Path) -> bool:
    """Remove a pid file left by a server that died with its container; True if removed.

    A container restarted in place (`docker restart`, a restart policy) keeps its files but
    not its processes, and pids start again from 1: the old TorchServe pid may now belong to
    another process, which would make the start refuse ("already running"). Only a pid
    whose command line is TorchServe's counts as a running server.
    """
    pid = server_pid(run_dir)
    if pid is None:
        return False
    try:
        command = psutil.Process(pid).cmdline()
    except psutil.Error:
        return False  # not ours to ask: leave the decision to serving.lifecycle
    if any("org.pytorch.serve" in part for part in command):
        return False
    (Path(run_dir) / "tmp" / PID_FILE).unlink(missing_ok=True)
    return True


class _Interrupted(Exception):
    """Raised by the signal handler while the server is starting, to abandon the start."""


class _Signals:
    """SIGTERM/SIGINT handling. During start-up a signal interrupts the (blocking) start;
    afterwards it only sets an event that the watch loop waits on."""

    def __init__(self) -> None:
        self.stop_requested = threading.Event()
        self.interrupt_start = False
        for signum in (signal.SIGTERM, signal.SIGINT):
            signal.signal(signum, self._handle)

    def _handle(self, signum: int, _frame: FrameType | None) -> None:
        say(f"{signal.Signals(signum).name} received: stopping TorchServe")
        self.stop_requested.set()
        if self.interrupt_start:
            self.interrupt_start = False
            raise _Interrupted


def say(message: str) -> None:
    print(f"[entrypoint] {message}", flush=True)


def serve(config: ServerConfig, start_timeout: float, poll_seconds: float = 1.0) -> int:
    """Start, announce, watch, stop: the whole life of the container. Returns the exit code."""
    run_dir = Path(config.run_dir).resolve()
    signals = _Signals()
    if clear_stale_pid_file(run_dir):
        say("removed a pid file left by an earlier TorchServe (not running any more)")
    say(f"starting TorchServe on {config.host}: models {', '.join(config.models)}")
    try:
        signals.interrupt_start = True
        connection = start(config, timeout=start_timeout)
        signals.interrupt_start = False
    except _Interrupted:
        stop(run_dir)
        return 0
    except (ServerError, subprocess.CalledProcessError) as exc:
        say(f"error: {exc}")
        return EXIT_START_FAILED
    say(f"ready: inference {connection.inference_url}, management {connection.management_url}")
    say(f"metrics {connection.metrics_url}/metrics")
    if config.auth:
        # The keys themselves never go to the log: logs are shipped and kept, keys are secrets.
        say(f"keys (inference, management) in {run_dir / KEY_FILE}, readable by this user only")
    else:
        say("token authorization is OFF: anyone who reaches the ports can call every API")
    while not signals.stop_requested.wait(poll_seconds):
        if server_pid(run_dir) is None:
            say(f"TorchServe exited on its own; see {log_hint(run_dir)}")
            stop(run_dir)  # clears the state file, so the health check reports it down
            return EXIT_SERVER_DIED
    stop(run_dir)
    say("stopped")
    return 0


def main() -> None:
    try:
        config = config_from_env()
        timeout = start_timeout_from_env()
    except SettingsError as exc:
        say(f"error: {exc}")
        sys.exit(EXIT_START_FAILED)
    sys.exit(serve(config, timeout))


if __name__ == "__main__":
    main()
