"""Is the server in this run folder able to answer? Exit 0 only if every worker is READY.

    python -m serving.healthcheck            # run folder from RNN_SERVE_RUN_DIR (or runs/server)
    python -m serving.healthcheck --run-dir runs/server

The image's HEALTHCHECK runs this. TorchServe's /ping says Healthy before any worker has
loaded and while a model has none left, so it cannot tell a container that serves from one that
only listens. This asks the management API (with the management key from the run folder) for
every model the server was started with, and passes only if each has at least one worker and
all of them are READY; it fails while the server drains for a stop, so that an orchestrator
routes new requests elsewhere. Prints one line either way, for `docker inspect` and the pod's
events.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import requests

from handlers import drain
from serving.connection import Connection, served_models, worker_states
from serving.entrypoint import run_dir_from_env
from serving.lifecycle import DRAIN_DIR, server_pid
from serving.server_config import ServerError


def check(run_dir: Path) -> tuple[bool, str]:
    """(healthy, one-line reason) for the server started from ``run_dir``."""
    run_dir = Path(run_dir)
    if server_pid(run_dir) is None:
        return False, f"no TorchServe running from {run_dir}"
    if drain.is_draining(run_dir / DRAIN_DIR):
        return False, "draining for a stop: new requests get 503"
    try:
        connection = Connection.from_run_dir(run_dir)
        workers = {model: worker_states(connection, model) for model in served_models(run_dir)}
    except (OSError, KeyError, ValueError, ServerError, requests.RequestException) as exc:
        return False, f"management API did not answer: {exc}"
    report = ", ".join(
        f"{model} {states.count('READY')}/{len(states)} READY" for model, states in workers.items()
    )
    healthy = all(states and all(s == "READY" for s in states) for states in workers.values())
    return healthy, report


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawTextHelpFormatter
    )
    parser.add_argument("--run-dir", type=Path, default=None)
    args = parser.parse_args()
    healthy, report = check(args.run_dir or run_dir_from_env())
    print(f"{'healthy' if healthy else 'unhealthy'}: {report}")
    sys.exit(0 if healthy else 1)


if __name__ == "__main__":
    main()
