"""Start, watch and stop a TorchServe instance for our model archives.

    python -m serving.server start [--auth off] [--inference-port 8080 ...]
    python -m serving.server status
    python -m serving.server stop

Each server gets its own run folder (TMPDIR, logs, generated config, key file), so several can
run side by side (tests do) and `stop` only ever stops the one started from that folder.
TorchServe's own `--start` returns 0 even when the server dies at once and `/ping` answers
Healthy before any worker is loaded, so readiness here means: the process is alive and every
worker of every model reports READY.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import requests

from handlers import drain, registry
from serving import startup_failures

ROOT = Path(__file__).resolve().parent.parent
CONFIG_TEMPLATE = ROOT / "serving" / "config.properties"
DEFAULT_RUN_DIR = ROOT / "runs" / "server"
DEFAULT_MODELS = registry.names()  # every model handlers/registry.py declares
STATE_FILE = "server.json"
KEY_FILE = "key_file.json"
PID_FILE = ".model_server.pid"  # TorchServe writes it into $TMPDIR
STARTUP_LOG = "startup.log"
DRAIN_DIR = "drain"  # the graceful-stop protocol's files (handlers/drain.py)
DRAIN_TIMEOUT = 30.0  # seconds a stop waits for running batches; a capped batch takes a few
# A worker hands its answers to the frontend just after it frees its lock: let them go out.
SETTLE_SECONDS = 0.25


class ServerError(RuntimeError):
    """The server did not come up, or is not there."""


@dataclass
class ServerConfig:
    """Where and how one TorchServe instance runs. Defaults are the documented ones."""

    model_store: Path = ROOT / "model_store"
    run_dir: Path = DEFAULT_RUN_DIR
    host: str = "127.0.0.1"
    inference_port: int = 8080
    management_port: int = 8081
    metrics_port: int = 8082
    grpc_inference_port: int = 7070
    grpc_management_port: int = 7071
    initial_worker_port: int = 9000
    auth: bool = True
    models: tuple[str, ...] = DEFAULT_MODELS
    job_queue_size: int = 100
    token_expiration_min: int = 5_256_000
    netty_threads: int = 2
    overrides: dict[str, str] = field(default_factory=dict)  # extra config.properties lines

    @classmethod
    def on_free_ports(cls, **settings: Any) -> ServerConfig:
        """A config whose six ports are free right now (tests and benchmarks run side by side
        with a user's server)."""
        names = (
            "inference_port",
            "management_port",
            "metrics_port",
            "grpc_inference_port",
            "grpc_management_port",
            "initial_worker_port",
        )
        return cls(**dict(zip(names, free_ports(len(names)), strict=True)), **settings)

    def render(self) -> str:
        text = CONFIG_TEMPLATE.read_text().format(
            host=self.host,
            inference_port=self.inference_port,
            management_port=self.management_port,
            metrics_port=self.metrics_port,
            grpc_inference_port=self.grpc_inference_port,
            grpc_management_port=self.grpc_management_port,
            initial_worker_port=self.initial_worker_port,
            model_store=Path(self.model_store).resolve(),
            load_models=",".join(f"{m}={m}.mar" for m in self.models),
            disable_token_authorization=str(not self.auth).lower(),
            token_expiration_min=self.token_expiration_min,
            job_queue_size=self.job_queue_size,
            netty_threads=self.netty_threads,
        )
        extra = "".join(f"{key}={value}\n" for key, value in self.overrides.items())
        return text + extra


@dataclass
class Connection:
    """How clients reach a running server: URLs and (when auth is on) the keys."""

    inference_url: str
    management_url: str
    metrics_url: str
    inference_key: str | None = None
    management_key: str | None = None
    grpc_address: str | None = None  # host:port of the gRPC inference API

    def inference_headers(self) -> dict[str, str]:
        return _bearer(self.inference_key)

    def management_headers(self) -> dict[str, str]:
        return _bearer(self.management_key)

    def model_status(self, model: str) -> list[dict[str, Any]]:
        reply = requests.get(
            f"{self.management_url}/models/{model}", headers=self.management_headers(), timeout=5
        )
        reply.raise_for_status()
        return reply.json()

    @classmethod
    def from_run_dir(cls, run_dir: str | Path = DEFAULT_RUN_DIR) -> Connection:
        """Find the server started from ``run_dir`` (what client, tests and load tests use)."""
        run_dir = Path(run_dir)
        state_file = run_dir / STATE_FILE
        if not state_file.exists():
            raise ServerError(f"no server state in {run_dir}: start one with `make serve`")
        state = json.loads(state_file.read_text())
        keys = read_keys(run_dir) if state["auth"] else {}
        host = state["host"]
        return cls(
            inference_url=f"http://{host}:{state['inference_port']}",
            management_url=f"http://{host}:{state['management_port']}",
            metrics_url=f"http://{host}:{state['metrics_port']}",
            inference_key=keys.get("inference"),
            management_key=keys.get("management"),
            # gRPC listens on loopback only, whatever the HTTP host (serving/config.properties)
            grpc_address=f"127.0.0.1:{state['grpc_inference_port']}",
        )


def free_ports(count: int) -> list[int]:
    """Ports the kernel considers free right now (held open together so they differ)."""
    sockets = [socket.socket() for _ in range(count)]
    try:
        for sock in sockets:
            sock.bind(("127.0.0.1", 0))
        return [sock.getsockname()[1] for sock in sockets]
    finally:
        for sock in sockets:
            sock.close()


def _bearer(key: str | None) -> dict[str, str]:
    return {"Authorization": f"Bearer {key}"} if key else {}


def read_keys(run_dir: Path) -> dict[str, str]:
    """The keys TorchServe wrote into its working folder: {"inference": ..., "management": ...}."""
    data = json.loads((Path(run_dir) / KEY_FILE).read_text())
    return {kind: entry["key"] for kind, entry in data.items() if isinstance(entry, dict)}


def _environment(run_dir: Path) -> dict[str, str]:
    tmp = run_dir / "tmp"
    tmp.mkdir(parents=True, exist_ok=True)
    env = dict(os.environ)
    env.update(
        TMPDIR=str(tmp),  # TorchServe's pid file lives here: one per server
        LOG_LOCATION=str(run_dir / "logs"),
        METRICS_LOCATION=str(run_dir / "logs"),
        PYTHONUNBUFFERED="1",
    )
    env[drain.DRAIN_DIR_ENV] = str(run_dir / DRAIN_DIR)
    # Workers must run with this venv's Python and see neither stale nor foreign packages.
    env["PATH"] = f"{Path(sys.executable).parent}{os.pathsep}{env.get('PATH', '')}"
    env.pop("PYTHONPATH", None)
    return env


def server_pid(run_dir: Path) -> int | None:
    """The pid of the server started from ``run_dir``, if that process is still alive."""
    pid_file = Path(run_dir) / "tmp" / PID_FILE
    try:
        pid = int(pid_file.read_text().strip())
    except (FileNotFoundError, ValueError):
        return None
    return pid if alive(pid) else None


def alive(pid: int) -> bool:
    """Whether ``pid`` is a running process; a zombie (exited, not yet reaped) is not."""
    try:
        os.kill(pid, 0)
    except (ProcessLookupError, PermissionError):
        return False
    try:
        # /proc/<pid>/stat: "pid (comm) state ...", comm may hold spaces or parentheses.
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0] != "Z"
    except (OSError, IndexError):
        return True  # no /proc here: kill(0) is all we can ask


def missing_archives(model_store: Path, models: tuple[str, ...]) -> list[str]:
    """The models of ``models`` that have no ``<name>.mar`` in ``model_store``."""
    return [m for m in models if not (model_store / f"{m}.mar").exists()]


def start(config: ServerConfig, timeout: float = 300.0) -> Connection:
    """Start TorchServe and return once every worker of every model is READY."""
    run_dir = Path(config.run_dir).resolve()
    if server_pid(run_dir) is not None:
        raise ServerError(f"a server from {run_dir} is already running: stop it first")
    missing = missing_archives(Path(config.model_store), config.models)
    if missing:
        raise ServerError(f"no archive for {missing} in {config.model_store}: run `make models`")
    check_ports(config)
    for stale in (run_dir / KEY_FILE, run_dir / STATE_FILE):
        stale.unlink(missing_ok=True)
    drain.reset(run_dir / DRAIN_DIR)
    shutil.rmtree(run_dir / "logs", ignore_errors=True)
    run_dir.mkdir(parents=True, exist_ok=True)
    config_file = run_dir / "config.properties"
    config_file.write_text(config.render())
    command = [
        str(Path(sys.executable).parent / "torchserve"),
        "--start",
        "--ncs",
        "--ts-config",
        str(config_file),
        "--model-store",
        str(Path(config.model_store).resolve()),
    ]
    if not config.auth:
        command.append("--disable-token-auth")
    (run_dir / "logs").mkdir(parents=True, exist_ok=True)
    with open(run_dir / "logs" / STARTUP_LOG, "wb") as startup:  # bind errors land here
        subprocess.run(
            command,
            cwd=run_dir,
            env=_environment(run_dir),
            check=True,
            stdout=startup,
            stderr=subprocess.STDOUT,
        )
    state = {k: v for k, v in asdict(config).items() if k not in ("model_store", "run_dir")}
    (run_dir / STATE_FILE).write_text(json.dumps(state, indent=2))
    try:
        connection = wait_ready(run_dir, config.models, timeout, Path(config.model_store))
    except ServerError:
        stop(run_dir)
        raise
    if config.auth:  # the keys are secrets: readable by this user only
        (run_dir / KEY_FILE).chmod(0o600)
    return connection


PORT_ROLES = (
    "inference_port",
    "management_port",
    "metrics_port",
    "grpc_inference_port",
    "grpc_management_port",
)


def check_ports(config: ServerConfig) -> None:
    """Name a port that is already taken before TorchServe fails on it less clearly."""
    for role in PORT_ROLES:
        port = getattr(config, role)
        with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
            try:
                probe.bind((config.host, port))
            except OSError as exc:
                what = role.removesuffix("_port").replace("_", " ")
                raise ServerError(
                    f"port {port} ({what}) on {config.host} is already in use ({exc.strerror}): "
                    "stop what holds it or choose another port"
                ) from exc


def wait_ready(
    run_dir: Path, models: tuple[str, ...], timeout: float, model_store: Path
) -> Connection:
    """Until every worker of every model is READY; stops early, with TorchServe's reason,
    when a model failed to load (TorchServe itself would keep retrying)."""
    deadline = time.monotonic() + timeout
    last = "no answer yet"
    while time.monotonic() < deadline:
        time.sleep(0.5)
        _raise_load_failure(run_dir, models, model_store)
        if server_pid(run_dir) is None:
            taken = startup_failures.port_taken(run_dir / "logs")
            cause = "a port it needs is already in use" if taken else "TorchServe exited"
            raise ServerError(f"{cause} during start-up; see {log_hint(run_dir)}")
        try:
            connection = Connection.from_run_dir(run_dir)
            statuses = {m: worker_states(connection, m) for m in models}
        except (OSError, KeyError, ValueError, requests.RequestException) as exc:
            last = str(exc)
            continue
        if all(states and all(s == "READY" for s in states) for states in statuses.values()):
            return connection
        last = json.dumps(statuses)
    raise ServerError(f"models not READY after {timeout:.0f}s ({last}); see {log_hint(run_dir)}")


def _raise_load_failure(run_dir: Path, models: tuple[str, ...], store: Path) -> None:
    failures = startup_failures.load_failures(run_dir / "logs", models)
    if failures:
        model, reason = sorted(failures.items())[0]
        raise ServerError(f"model {model} ({store / f'{model}.mar'}) did not load: {reason}")


def served_models(run_dir: Path) -> list[str]:
    """The models the server in ``run_dir`` was started with (from its state file)."""
    return json.loads((Path(run_dir) / STATE_FILE).read_text())["models"]


def worker_states(connection: Connection, model: str) -> list[str]:
    """The status ("READY", ...) of each worker of ``model``."""
    described = connection.model_status(model)
    return [worker["status"] for entry in described for worker in entry.get("workers", [])]


def log_hint(run_dir: Path) -> str:
    logs = Path(run_dir) / "logs"
    return f"{logs / STARTUP_LOG} and {logs / 'model_log.log'}"


def stop(
    run_dir: str | Path = DEFAULT_RUN_DIR,
    timeout: float = 60.0,
    drain_timeout: float = DRAIN_TIMEOUT,
) -> bool:
    """Stop the server started from ``run_dir``; True if one was running. Leaves no pid file.

    Drains first: TorchServe's own stop cuts off every request it holds, so the workers are
    told to refuse new batches (503) and the stop waits until the batches they run are done.
    """
    run_dir = Path(run_dir).resolve()
    pid = server_pid(run_dir)
    if pid is not None:
        if not drain_requests(run_dir, drain_timeout):
            print(
                f"requests still running after {drain_timeout:.0f}s: stopping anyway",
                file=sys.stderr,
            )
        subprocess.run(
            [str(Path(sys.executable).parent / "torchserve"), "--stop"],
            cwd=run_dir,
            env=_environment(run_dir),
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
            check=False,
        )
        # `torchserve --stop` removes the pid file at once, while the process still shuts
        # down: wait for the process itself.
        deadline = time.monotonic() + timeout
        while alive(pid) and time.monotonic() < deadline:
            time.sleep(0.2)
        if alive(pid):
            os.kill(pid, signal.SIGKILL)
    (run_dir / "tmp" / PID_FILE).unlink(missing_ok=True)
    (run_dir / STATE_FILE).unlink(missing_ok=True)
    return pid is not None


def drain_requests(run_dir: Path, timeout: float) -> bool:
    """Let every request the server holds finish, or get its 503, before the server stops.
    True when that happened within ``timeout`` seconds."""
    directory = run_dir / DRAIN_DIR
    drain.begin(directory)
    deadline = time.monotonic() + timeout
    drained = (
        drain.wait_for_batches(directory, deadline)
        and _queues_empty(run_dir, deadline)
        and drain.wait_for_batches(directory, deadline)
    )
    time.sleep(SETTLE_SECONDS)
    return drained


def _queues_empty(run_dir: Path, deadline: float) -> bool:
    """Wait until TorchServe's queues are empty: queued requests reach a draining worker,
    which answers them at once."""
    try:
        connection = Connection.from_run_dir(run_dir)
        models = served_models(run_dir)
    except (OSError, KeyError, ValueError, ServerError):
        return True  # no state to ask with: nothing to wait for
    while time.monotonic() < deadline:
        try:
            pending = sum(
                entry.get("jobQueueStatus", {}).get("pendingRequests", 0)
                for model in models
                for entry in connection.model_status(model)
            )
        except (requests.RequestException, ValueError):
            return True  # the server no longer answers: nothing left to wait for
        if pending == 0:
            return True
        time.sleep(0.05)
    return False


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawTextHelpFormatter
    )
    parser.add_argument("action", choices=("start", "stop", "status"))
    parser.add_argument("--run-dir", type=Path, default=DEFAULT_RUN_DIR)
    parser.add_argument("--model-store", type=Path, default=ServerConfig.model_store)
    parser.add_argument("--host", default=ServerConfig.host)
    parser.add_argument("--inference-port", type=int, default=ServerConfig.inference_port)
    parser.add_argument("--management-port", type=int, default=ServerConfig.management_port)
    parser.add_argument("--metrics-port", type=int, default=ServerConfig.metrics_port)
    parser.add_argument("--auth", choices=("on", "off"), default="on")
    parser.add_argument("--models", default=",".join(DEFAULT_MODELS))
    args = parser.parse_args()
    if args.action == "stop":
        print("stopped" if stop(args.run_dir) else "no server was running from this checkout")
        return
    if args.action == "status":
        pid = server_pid(args.run_dir)
        print(f"running (pid {pid})" if pid else "not running")
        sys.exit(0 if pid else 1)
    config = ServerConfig(
        model_store=args.model_store,
        run_dir=args.run_dir,
        host=args.host,
        inference_port=args.inference_port,
        management_port=args.management_port,
        metrics_port=args.metrics_port,
        auth=args.auth == "on",
        models=tuple(m for m in args.models.split(",") if m),
    )
    started = time.monotonic()
    try:
        connection = start(config)
    except ServerError as exc:
        sys.exit(f"error: {exc}")
    print(
        f"TorchServe ready in {time.monotonic() - started:.0f}s: models {', '.join(config.models)}"
    )
    print(f"  inference  {connection.inference_url}   management {connection.management_url}")
    print(f"  metrics    {connection.metrics_url}/metrics")
    if config.auth:
        print(f"  keys in {Path(config.run_dir) / KEY_FILE} (the client reads them)")
    print("  stop with: make stop")


if __name__ == "__main__":
    main()
