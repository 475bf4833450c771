"""Start, watch and stop a TorchServe instance for our model archives.

    python -m serving.server start [--auth off] [--inference-port 8080 ...]
    python -m serving.server status
    python -m serving.server stop

Each server gets its own run folder (TMPDIR, logs, generated config, key file), so several can
run side by side (tests do) and `stop` only ever stops the one started from that folder.
`start` returns once the process is alive and every worker of every model reports READY
(TorchServe's own `--start` and `/ping` say less: see serving/lifecycle.py).
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

from serving.connection import KEY_FILE
from serving.lifecycle import server_pid, start, stop
from serving.server_config import (
    DEFAULT_MODELS,
    DEFAULT_RUN_DIR,
    ServerConfig,
    ServerError,
    add_server_arguments,
)


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawTextHelpFormatter
    )
    parser.add_argument("action", choices=("start", "stop", "status"))
    parser.add_argument("--run-dir", type=Path, default=DEFAULT_RUN_DIR)
    parser.add_argument("--host", default=ServerConfig.host)
    add_server_arguments(parser)
    parser.add_argument("--models", default=",".join(DEFAULT_MODELS))
    args = parser.parse_args()
    if args.action == "stop":
        print("stopped" if stop(args.run_dir) else "no server was running from this checkout")
        return
    if args.action == "status":
        pid = server_pid(args.run_dir)
        print(f"running (pid {pid})" if pid else "not running")
        sys.exit(0 if pid else 1)
    models = tuple(m for m in args.models.split(",") if m)
    config = ServerConfig.from_arguments(args, host=args.host, models=models)
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
