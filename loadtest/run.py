"""One load run, one folder: server up if needed, Locust headless, metrics scraped, report written.

    make loadtest USERS=32 DURATION=60s SCENARIO=mixed
    python -m loadtest.run --users 32 --spawn-rate 8 --duration 60s --scenario stream

Uses the server started from --run-dir (`make serve`) when one is running; otherwise starts one
with the models the scenario needs and stops it afterwards, also after a failure or Ctrl-C.
A server it did not start is never stopped. Everything lands in runs/loadtest/<timestamp>/.
The exit status is Locust's: 0 only when no request failed.
"""

from __future__ import annotations

import argparse
import os
import re
import signal
import subprocess
import sys
import time
from datetime import datetime
from pathlib import Path

import requests

from handlers import registry
from loadtest import report
from loadtest.metrics import scrape, settled_counters
from serving.connection import Connection
from serving.lifecycle import server_pid, start, stop
from serving.server_config import (
    DEFAULT_RUN_DIR,
    ROOT,
    ServerConfig,
    ServerError,
    add_server_arguments,
)

LOCUSTFILE = ROOT / "loadtest" / "locustfile.py"
# Each model's scenarios as its registry entry declares them, and "mixed": every model at once.
SCENARIOS = {
    **{name: users for model in registry.MODELS for name, users in model.load_scenarios.items()},
    "mixed": tuple(user for model in registry.MODELS for user in model.mixed_users),
}
MODEL_OF = {user: model.name for model in registry.MODELS for user in model.users}
# At the end of the run time, running requests get this long before Locust cuts them: the run
# ends within its duration plus about this, whatever the server does (a stream TorchServe
# never closes included: docs/faults.md). The report counts what was cut.
STOP_TIMEOUT_S = 10.0
# Locust's own start (reading the request data) and its files at the end: past the duration,
# the stop timeout and this, Locust is stopped, then killed.
LOCUST_OVERHEAD_S = 30.0


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--users", type=int, default=32, help="concurrent Locust users")
    parser.add_argument("--spawn-rate", type=float, default=8.0, help="users started per second")
    parser.add_argument("--duration", default="60s", help="Locust run time, e.g. 60s, 5m")
    parser.add_argument("--scenario", choices=sorted(SCENARIOS), default="mixed")
    parser.add_argument(
        "--weights", default="", help='user mix for "mixed", e.g. "classify=3,generate=1,stream=1"'
    )
    parser.add_argument(
        "--stop-timeout",
        type=float,
        default=STOP_TIMEOUT_S,
        help="seconds running requests get at the end before they are cut (and counted)",
    )
    parser.add_argument("--run-dir", type=Path, default=DEFAULT_RUN_DIR, help="server run folder")
    parser.add_argument("--out", type=Path, default=None, help="run folder for the results")
    started = parser.add_argument_group("when no server is running, start one with")
    add_server_arguments(started)
    started.add_argument(
        "--server-option",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="extra config.properties line, e.g. job_queue_size=50 (repeatable)",
    )
    return parser.parse_args(argv)


def ensure_server(args: argparse.Namespace, models: tuple[str, ...]) -> tuple[Connection, bool]:
    """The server from ``args.run_dir`` (started here if none runs) and whether we started it."""
    if server_pid(args.run_dir) is not None:
        connection = Connection.from_run_dir(args.run_dir)
        for model in models:
            try:
                connection.model_status(model)
            except requests.RequestException as exc:
                raise ServerError(f"the server from {args.run_dir} lacks {model}: {exc}") from exc
        return connection, False
    print(f"no server running from {args.run_dir}: starting one with {', '.join(models)}")
    overrides = dict(option.split("=", 1) for option in args.server_option)
    config = ServerConfig.from_arguments(args, models=models, overrides=overrides)
    return start(config), True


def locust_command(args: argparse.Namespace, out: Path, host: str) -> list[str]:
    prefix = out / report.CSV_PREFIX
    return [
        sys.executable,
        "-m",
        "locust",
        "-f",
        str(LOCUSTFILE),
        "--headless",
        "--only-summary",
        "--users",
        str(args.users),
        "--spawn-rate",
        str(args.spawn_rate),
        "--run-time",
        args.duration,
        "--stop-timeout",
        f"{args.stop_timeout:g}",
        "--host",
        host,
        "--csv",
        str(prefix),
        "--csv-full-history",
        "--html",
        str(out / report.HTML),
        *SCENARIOS[args.scenario],
    ]


def seconds(duration: str) -> float:
    """Locust's --run-time syntax ("90", "60s", "5m", "1h30m") in seconds."""
    if duration.strip().isdigit():
        return float(duration)
    found = re.findall(r"(\d+)\s*([hms])", duration.lower())
    if not found:
        raise ValueError(f"not a duration: {duration!r} (e.g. 60s, 5m, 1h30m)")
    return float(sum(int(n) * {"h": 3600, "m": 60, "s": 1}[unit] for n, unit in found))


def run_locust(
    command: list[str], env: dict[str, str], grace: float, deadline: float
) -> tuple[int, bool, bool]:
    """Run Locust; when interrupted, let it write its files first, then report what we have.
    Returns its exit code, whether we were interrupted, and whether it had to be killed.

    Ctrl-C reaches Locust by itself (same process group); a SIGTERM sent to this process only
    is passed on, so neither leaves an orphaned Locust or skips stopping our server. Past
    ``deadline`` seconds Locust gets a SIGTERM (it writes its files), ``grace`` later a kill.
    """
    process = subprocess.Popen(command, env=env)

    def on_term(signum: int, frame: object) -> None:
        process.send_signal(signal.SIGTERM)  # Locust's handler writes its files and exits
        raise KeyboardInterrupt

    previous = signal.signal(signal.SIGTERM, on_term)
    try:
        return process.wait(timeout=deadline), False, False
    except subprocess.TimeoutExpired:
        print(f"Locust still running after {deadline:.0f} s: stopping it")
        process.terminate()
        try:
            return process.wait(timeout=grace), False, False
        except subprocess.TimeoutExpired:
            process.kill()
            return process.wait(), False, True
    except KeyboardInterrupt:
        print("\ninterrupted: waiting for Locust to write its files (Ctrl-C again to abandon)")
        try:
            return process.wait(timeout=grace), True, False
        except (KeyboardInterrupt, subprocess.TimeoutExpired):
            process.kill()
            return process.wait(), True, True
    finally:
        signal.signal(signal.SIGTERM, previous)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    args.run_dir = args.run_dir.resolve()
    classes = SCENARIOS[args.scenario]
    models = tuple(sorted({MODEL_OF[name] for name in classes}))
    started_at = datetime.now()
    out = args.out or ROOT / "runs" / "loadtest" / started_at.strftime("%Y%m%d-%H%M%S")
    out.mkdir(parents=True, exist_ok=True)
    started_server = False
    try:
        try:
            connection, started_server = ensure_server(args, models)
        except ServerError as exc:
            print(f"error: {exc}", file=sys.stderr)
            return 2
        (out / report.METRICS_BEFORE).write_text(scrape(connection.metrics_url))
        env = {**os.environ, "LOADTEST_RUN_DIR": str(args.run_dir)}
        if args.weights:
            env["LOADTEST_WEIGHTS"] = args.weights
        load_before = list(os.getloadavg())
        launched = time.time()
        command = locust_command(args, out, connection.inference_url)
        deadline = seconds(args.duration) + args.stop_timeout + LOCUST_OVERHEAD_S
        code, interrupted, killed = run_locust(command, env, 15.0, deadline)
        ended = time.time()
        try:
            after_text, _ = settled_counters(connection.metrics_url)
            (out / report.METRICS_AFTER).write_text(after_text)
        except (requests.RequestException, TimeoutError) as exc:  # e.g. Ctrl-C reached it too
            print(f"no metrics after the run ({exc}): the report has the client side only")
        first = report.first_history_timestamp(out / f"{report.CSV_PREFIX}_stats_history.csv")
        report.RunInfo(
            scenario=args.scenario,
            user_classes=list(classes),
            users=args.users,
            spawn_rate=args.spawn_rate,
            duration=args.duration,
            host=connection.inference_url,
            server_started=started_server,
            started_at=started_at.isoformat(timespec="seconds"),
            load_seconds=ended - (first if first is not None else launched),
            weights=env.get("LOADTEST_WEIGHTS", ""),
            locust_exit_code=code,
            cpu_count=os.cpu_count() or 0,
            load_average_before=load_before,
            load_average_after=list(os.getloadavg()),
            locust_env={k: v for k, v in env.items() if k.startswith("LOADTEST_")},
            stop_timeout=args.stop_timeout,
            locust_killed=killed,
        ).save(out)
        if report.stats_file(out).exists():
            print(f"report: {report.write_report(out)}")
        else:
            print(f"Locust wrote no statistics (exit code {code}); see its output above")
        return 130 if interrupted else code
    finally:
        if started_server:
            print("stopping the server this run started")
            stop(args.run_dir)


if __name__ == "__main__":
    sys.exit(main())
