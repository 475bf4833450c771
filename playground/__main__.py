"""python -m playground start|url|status|stop [--run-dir runs/server] [--port 8090]"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from playground import control
from serving.connection import STATE_FILE as SERVER_STATE
from serving.server_config import DEFAULT_RUN_DIR, ServerError


def main() -> None:
    parser = argparse.ArgumentParser(description=control.__doc__.split("\n\n")[0])
    parser.add_argument("action", choices=("start", "url", "status", "stop", "serve"))
    parser.add_argument("--run-dir", type=Path, default=DEFAULT_RUN_DIR)
    parser.add_argument("--port", type=int, default=control.DEFAULT_PORT)
    args = parser.parse_args()
    if args.action == "serve":
        control.serve(args.run_dir, args.port)
    elif args.action == "start":
        try:
            state, started = control.start(args.run_dir, args.port)
        except ServerError as exc:
            sys.exit(f"error: {exc}")
        if not (args.run_dir / SERVER_STATE).exists():
            print("note: no server runs from this run folder yet: start it with `make serve`")
        print(f"playground {'started' if started else 'already running'}: open {state.url}")
        print("  stop with: make stop")
    elif args.action == "url":
        state = control.read_state(args.run_dir)
        if state is not None:
            print(f"  playground {state.url}")
        else:
            print(f"  playground: `make playground` serves it at http://127.0.0.1:{args.port}/")
    elif args.action == "status":
        state = control.read_state(args.run_dir)
        print(f"running (pid {state.pid}): {state.url}" if state else "not running")
        sys.exit(0 if state else 1)
    else:
        stopped = control.stop(args.run_dir)
        print("playground stopped" if stopped else "no playground was running")


if __name__ == "__main__":
    main()
