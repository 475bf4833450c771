"""Start, find and stop the playground process of a server's run folder.

    python -m playground start [--run-dir runs/server] [--port 8090]   # prints the URL
    python -m playground url                                           # the URL, if running
    python -m playground stop

The process runs in the background beside the TorchServe of the same run folder and leaves a
state file there (``playground.json``, mode 600: it holds the page's token) with its pid and
URL; `make stop` stops both. The URL carries the token (see playground/proxy.py).
"""

from __future__ import annotations

import json
import os
import secrets
import signal
import socket
import subprocess
import sys
import time
from dataclasses import asdict, dataclass
from pathlib import Path

import psutil

from serving.lifecycle import alive
from serving.server_config import ROOT, ServerError

DEFAULT_PORT = 8090
STATE_FILE = "playground.json"
LOG_FILE = "playground.log"  # beside the state: TorchServe's start empties logs/
START_TIMEOUT = 60.0  # the child generates the field declarations (imports torch) first


@dataclass
class PlaygroundState:
    pid: int
    port: int
    token: str

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}/?token={self.token}"


def read_state(run_dir: Path) -> PlaygroundState | None:
    """The playground started from ``run_dir``, if its process is still alive."""
    try:
        state = PlaygroundState(**json.loads((Path(run_dir) / STATE_FILE).read_text()))
    except (OSError, ValueError, TypeError):
        return None
    return state if _is_playground(state.pid) else None


def _is_playground(pid: int) -> bool:
    """Alive and ours (a pid can be reused by another program after a crash)."""
    if not alive(pid):
        return False
    try:
        command = psutil.Process(pid).cmdline()
    except psutil.AccessDenied:
        return True  # not ours to read: trust the state file
    except psutil.NoSuchProcess:
        return False
    return "playground" in command


def write_state(run_dir: Path, state: PlaygroundState) -> None:
    path = Path(run_dir) / STATE_FILE
    path.touch(mode=0o600)  # the token is a secret: readable by this user only
    path.chmod(0o600)
    path.write_text(json.dumps(asdict(state)))


def new_token() -> str:
    return secrets.token_urlsafe(24)


def start(run_dir: Path, port: int = DEFAULT_PORT) -> tuple[PlaygroundState, bool]:
    """The running playground of ``run_dir``, started now if there was none (second: True)."""
    run_dir = Path(run_dir).resolve()
    running = read_state(run_dir)
    if running is not None:
        return running, False
    (run_dir / STATE_FILE).unlink(missing_ok=True)
    _check_port(port)
    run_dir.mkdir(parents=True, exist_ok=True)
    command = [sys.executable, "-m", "playground", "serve", "--run-dir", str(run_dir)]
    with open(run_dir / LOG_FILE, "ab") as log:
        child = subprocess.Popen(
            [*command, "--port", str(port)],
            cwd=ROOT,
            stdin=subprocess.DEVNULL,
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,  # `make playground` returns; the page stays
        )
    deadline = time.monotonic() + START_TIMEOUT
    while time.monotonic() < deadline:
        state = read_state(run_dir)
        if state is not None and state.pid == child.pid:
            return state, True
        if child.poll() is not None:
            break
        time.sleep(0.1)
    child.kill()
    raise ServerError(f"the playground did not start; see {run_dir / LOG_FILE}")


def _check_port(port: int) -> None:
    with socket.socket() as probe:
        try:
            probe.bind(("127.0.0.1", port))
        except OSError as exc:
            raise ServerError(
                f"port {port} on 127.0.0.1 is already in use ({exc.strerror}): "
                "choose another with PLAYGROUND_PORT=..."
            ) from exc


def stop(run_dir: Path, timeout: float = 10.0) -> bool:
    """Stop the playground of ``run_dir``; True if one was running."""
    state = read_state(run_dir)
    (Path(run_dir) / STATE_FILE).unlink(missing_ok=True)
    if state is None:
        return False
    os.kill(state.pid, signal.SIGTERM)
    deadline = time.monotonic() + timeout
    while alive(state.pid) and time.monotonic() < deadline:
        time.sleep(0.05)
    if alive(state.pid):
        os.kill(state.pid, signal.SIGKILL)
    return True


def serve(run_dir: Path, port: int) -> None:
    """The playground process itself (what `start` runs in the background)."""
    from playground.proxy import PlaygroundServer, declared_fields

    def leave(signum: int, frame: object) -> None:
        raise SystemExit(0)

    signal.signal(signal.SIGTERM, leave)
    server = PlaygroundServer(port, Path(run_dir), new_token(), declared_fields())
    write_state(Path(run_dir), PlaygroundState(os.getpid(), server.port, server.token))
    print(f"playground on 127.0.0.1:{server.port} for {run_dir}", flush=True)
    try:
        # Idle, it sleeps in select(): the long poll interval only delays a shutdown() that
        # is never called (SIGTERM ends it), so an idle playground uses no CPU.
        server.serve_forever(poll_interval=3600)
    finally:
        server.server_close()
