"""Start and stop the TorchServe process of one run folder, and tell whether it is alive.

    connection = start(ServerConfig.on_free_ports(run_dir=Path("runs/mine")))
    stop("runs/mine")  # drains running requests first

Each server gets its own run folder (TMPDIR, logs, generated config, key file), so several can
run side by side (tests do) and `stop` only ever stops the one started from that folder.
TorchServe's own `--start` returns 0 even when the server dies at once and `/ping` answers
Healthy before any worker is loaded, so `start` returns only when the process is alive and
every worker of every model reports READY, and otherwise raises with the reason it found in
TorchServe's logs (serving/startup_failures.py).
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import signal
import subprocess
import sys
import threading
import time
import zipfile
import zlib
from dataclasses import asdict
from pathlib import Path

import psutil
import requests

from handlers import drain, registry
from serving import startup_failures
from serving.client import Client, ClientError
from serving.connection import KEY_FILE, STATE_FILE, Connection, served_models, worker_states
from serving.server_config import DEFAULT_RUN_DIR, ServerConfig, ServerError, check_ports

PID_FILE = ".model_server.pid"  # TorchServe writes it into $TMPDIR
STARTUP_LOG = "startup.log"
DRAIN_DIR = "drain"  # the graceful-stop protocol's files (handlers/drain.py)
START_TIMEOUT = 300.0  # seconds a start waits for every worker to be READY (models load)
DRAIN_TIMEOUT = 30.0  # seconds a stop waits for running batches; a capped batch takes a few
# A worker lock still held this long after the drain began may be a job nobody awaits: `_nudge`.
NUDGE_AFTER_S = 1.0
# A worker hands its answers to the frontend just after it frees its lock: let them go out.
SETTLE_SECONDS = 0.25


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
        return psutil.Process(pid).status() != psutil.STATUS_ZOMBIE
    except (psutil.NoSuchProcess, psutil.AccessDenied):
        return False


def missing_archives(model_store: Path, models: tuple[str, ...]) -> list[str]:
    """The models of ``models`` that have no ``<name>.mar`` in ``model_store``."""
    return [m for m in models if not (model_store / f"{m}.mar").exists()]


def missing_archives_message(model_store: Path, missing: list[str]) -> str:
    """What a command says when archives are missing (docs/operations.md quotes it)."""
    return f"no {', '.join(missing)} archive in {model_store}: run `make models`"


def damaged_archive(path: Path) -> str | None:
    """Why a .mar cannot be read whole, or None when every entry passes its CRC check.

    TorchServe reads an archive cut short (an interrupted copy) as far as it goes and then
    fails on whatever is missing: a cut at an entry's boundary reads as a handler with a
    missing module. Reading the archive whole first names the real cause, before any start."""
    try:
        with zipfile.ZipFile(path) as archive:
            bad = archive.testzip()
    except (zipfile.BadZipFile, zlib.error, EOFError, OSError) as exc:
        return str(exc) or type(exc).__name__
    return f"{bad} fails its CRC check" if bad else None


def check_archives(model_store: Path, models: tuple[str, ...]) -> None:
    """Raise `ServerError`, naming the fix, when an archive of ``models`` is missing or damaged."""
    missing = missing_archives(model_store, models)
    if missing:
        raise ServerError(missing_archives_message(model_store, missing))
    for model in models:
        archive = model_store / f"{model}.mar"
        reason = damaged_archive(archive)
        if reason:
            raise ServerError(
                f"model {model} ({archive}) is damaged ({reason}): copy it again, or delete it "
                "and run `make models`"
            )


def start(config: ServerConfig, timeout: float = START_TIMEOUT) -> Connection:
    """Start TorchServe and return once every worker of every model is READY."""
    run_dir = Path(config.run_dir).resolve()
    if server_pid(run_dir) is not None:
        raise ServerError(f"a server from {run_dir} is already running: stop it first")
    check_archives(Path(config.model_store), config.models)
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
    if not drain.wait_for_batches(directory, min(deadline, time.monotonic() + NUDGE_AFTER_S)):
        _nudge(run_dir)
    drained = (
        drain.wait_for_batches(directory, deadline)
        and _queues_empty(run_dir, deadline)
        and drain.wait_for_batches(directory, deadline)
    )
    time.sleep(SETTLE_SECONDS)
    return drained


def _nudge(run_dir: Path) -> None:
    """Send each model one request of its own examples, in the background, and forget it.

    TorchServe calls a continuous-batching handler only while it holds jobs, and learns that a
    stream's client hung up only when it sends that client the next chunk. A lone stream whose
    client went away therefore leaves its handler holding the drain lock, with nothing to call
    it again, and the stop would wait out DRAIN_TIMEOUT for a request nobody awaits. A new
    request makes TorchServe call the handler: it forgets the jobs missing from the call, lets
    go of its lock and answers the newcomer 503, as it answers every request during a drain.
    A job whose client is still there is in that call too, and goes on."""
    try:
        client = Client(Connection.from_run_dir(run_dir), timeout=DRAIN_TIMEOUT)
        models = served_models(run_dir)
    except (OSError, KeyError, ValueError, ServerError):
        return
    for model in models:
        try:
            body = registry.get(model).examples[0]
        except (KeyError, IndexError):
            body = {}
        threading.Thread(target=_predict_quietly, args=(client, model, body), daemon=True).start()


def _predict_quietly(client: Client, model: str, body: dict) -> None:
    # Its answer (a 503) does not matter: the handler call it causes does.
    with contextlib.suppress(ClientError, requests.RequestException):
        client.predict(model, body)


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
