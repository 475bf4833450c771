"""Serving under load for a benchmark: a TorchServe of its own, and Locust against it.

    with server(store, ("sentiment",), run_dir):
        result = locust(run_dir, out / "locust", "classify", 48, 30, {"LOADTEST_MAX_WAIT": "0"})

Shared by `make bench` (benchmarks/run.py), benchmarks/layout.py and benchmarks/grpc_vs_http.py,
so that each measures the server the same way: free ports, the model config packed in the
archive, and the CPU split read from /proc while Locust runs.
"""

from __future__ import annotations

import os
import re
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import yaml

from benchmarks.cpu import cpu_split
from loadtest import metrics, report
from loadtest import run as loadtest
from serving.connection import Connection
from serving.lifecycle import server_pid, start, stop
from serving.server_config import ServerConfig
from training.archive import archive_info, model_config_path


def served_settings(name: str, model_store: Path | None = None) -> dict[str, Any]:
    """The model config packed in ``<model_store>/<name>.mar`` (what the server will run), or,
    without a store, the one in serving/ (what a new archive would get)."""
    if model_store is not None:
        return archive_info(model_store / f"{name}.mar")[1]
    return yaml.safe_load(model_config_path(name).read_text())


@contextmanager
def server(
    store: Path,
    models: tuple[str, ...],
    run_dir: Path,
    overrides: dict[str, str] | None = None,
) -> Iterator[Connection]:
    """A TorchServe serving ``models`` from ``store`` on free ports, stopped on leaving (so a
    failed measurement leaves no server behind to slow the next one); ``overrides`` are extra
    config.properties lines."""
    config = ServerConfig.on_free_ports(
        model_store=store, run_dir=run_dir, models=models, overrides=overrides or {}
    )
    connection = start(config)
    try:
        yield connection
    finally:
        stop(run_dir)


def locust(run_dir: Path, out: Path, scenario: str, users: int, seconds: int, env: dict) -> dict:
    """One headless Locust run against the server of ``run_dir``; client and server figures."""
    previous = {k: os.environ.get(k) for k in env}
    os.environ.update(env)
    try:
        with cpu_split(server_pid(run_dir) or 0) as cpu:
            code = loadtest.main(
                [
                    "--scenario",
                    scenario,
                    "--users",
                    str(users),
                    "--spawn-rate",
                    str(max(users, 8)),
                    "--duration",
                    f"{seconds}s",
                    "--run-dir",
                    str(run_dir),
                    "--out",
                    str(out),
                    "--stop-timeout",
                    "30",
                ]
            )
    finally:
        for key, value in previous.items():
            if value is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = value
    stats = {s.name: s for s in report.read_endpoint_stats(report.stats_file(out))}
    info = report.RunInfo.load(out)
    before = metrics.parse_counters((out / report.METRICS_BEFORE).read_text())
    after = metrics.parse_counters((out / report.METRICS_AFTER).read_text())
    loads = {m.model: m for m in metrics.summarize(before, after, info.load_seconds)}
    return {"code": code, "stats": stats, "loads": loads, "seconds": info.load_seconds, "cpu": cpu}


# TorchServe's access log ends each line with the milliseconds from receiving a request to
# answering it: `... "POST /predictions/sentiment HTTP/1.1" 200 12`.
ACCESS_LINE = re.compile(r'"POST (\S+) HTTP/[0-9.]+" \d+ (\d+)$')


def server_percentiles(run_dir: Path, path: str, shares: tuple[float, ...]) -> list[int]:
    """Percentiles of the server's own time for POSTs to ``path``, from its access log: set
    beside Locust's, they tell a tail made in the server from one made in the load generator."""
    log = run_dir / "logs" / "access_log.log"
    times = sorted(
        int(match.group(2))
        for line in log.read_text().splitlines()
        if (match := ACCESS_LINE.search(line)) and match.group(1) == path
    )
    if not times:
        return []
    return [times[min(len(times) - 1, int(share * len(times)))] for share in shares]


def half_saturation(saturated: float) -> tuple[int, float]:
    """Users and think time for about half the saturated rate: each user sends one request
    per (mean think time + latency), so rate ~ users / (wait / 2 + 0.02 s)."""
    wait = 0.2
    users = max(1, round(0.5 * saturated * (wait / 2 + 0.02)))
    return users, wait
