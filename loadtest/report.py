"""Write a load run's report.md and plot from the files the run left in its folder.

    python -m loadtest.report runs/loadtest/20261124-101500    # (re)write report.md and the plot

The inputs are plain files (Locust's CSVs, two raw Prometheus scrapes, run.json), so a report
can be rewritten, compared or tested without a server or Locust running.
"""

from __future__ import annotations

import csv
import json
import sys
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

from docsgen.markdown import markdown_rows
from loadtest.metrics import ModelLoad, parse_counters, summarize

# The files of one run folder (loadtest/run.py writes them, this module reads them).
CSV_PREFIX = "locust"  # Locust adds _stats.csv, _stats_history.csv, _failures.csv, ...
FINAL_STATS = "_final_stats.csv"  # written by the locustfile once all users stopped
FINAL_FAILURES = "_final_failures.csv"
CUT = "_cut.json"  # requests still running when the stop timeout ran out, by entry name
HTML = "locust.html"
RUN_INFO = "run.json"
METRICS_BEFORE = "metrics_before.prom"
METRICS_AFTER = "metrics_after.prom"
REPORT = "report.md"
PLOT = "latency_throughput.png"
AGGREGATED = "Aggregated"
FIRST_CHUNK = "lm first chunk"  # the locustfile's entry for time to a stream's first chunk
RATE_WINDOW_S = 5  # history rows come once a second; smooth throughput over this many
CLIENT_COLUMNS = ["Endpoint", "Requests", "Failures", "Req/s", "Mean ms", "p50 ms", "p95 ms"]
CLIENT_COLUMNS += ["p99 ms", "Max ms"]
SERVER_COLUMNS = ["Model", "Requests", "Batches", "Mean batch size", "Mean queue ms"]
SERVER_COLUMNS += ["Mean inference ms", "Mean handler batch ms", "Bad", "Failed"]
SERVER_COLUMNS += ["Generated tokens", "Tokens/s"]

if TYPE_CHECKING:  # pandas and matplotlib load only when a plot is drawn
    import pandas as pd
    from matplotlib.axes import Axes


@dataclass
class RunInfo:
    """How the run was set up, and what the machine was doing (2 shared cores: it matters)."""

    scenario: str
    user_classes: list[str]
    users: int
    spawn_rate: float
    duration: str
    host: str
    server_started: bool
    started_at: str
    load_seconds: float  # from Locust's first stats row to its exit
    weights: str = ""
    locust_exit_code: int = 0
    cpu_count: int = 0
    load_average_before: list[float] = field(default_factory=list)
    load_average_after: list[float] = field(default_factory=list)
    locust_env: dict[str, str] = field(default_factory=dict)  # the LOADTEST_* settings used
    stop_timeout: float = 0.0  # seconds running requests got at the end before being cut
    locust_killed: bool = False  # Locust outlived its deadline and was killed (loadtest/run.py)

    def save(self, folder: Path) -> None:
        (folder / RUN_INFO).write_text(json.dumps(asdict(self), indent=2) + "\n")

    @classmethod
    def load(cls, folder: Path) -> RunInfo:
        return cls(**json.loads((folder / RUN_INFO).read_text()))


@dataclass(frozen=True)
class EndpointStats:
    """One row of Locust's *_stats.csv: client-side figures for one endpoint (or all)."""

    kind: str
    name: str
    requests: int
    failures: int
    requests_per_s: float
    mean_ms: float
    p50_ms: float | None
    p95_ms: float | None
    p99_ms: float | None
    max_ms: float


def _number(text: str) -> float | None:
    """Locust writes "N/A" for percentiles of an entry without requests."""
    try:
        return float(text)
    except ValueError:
        return None


def read_endpoint_stats(stats_csv: Path) -> list[EndpointStats]:
    with open(stats_csv, newline="") as handle:
        return [
            EndpointStats(
                kind=row["Type"],
                name=row["Name"],
                requests=int(row["Request Count"]),
                failures=int(row["Failure Count"]),
                requests_per_s=float(row["Requests/s"]),
                mean_ms=float(row["Average Response Time"]),
                p50_ms=_number(row["50%"]),
                p95_ms=_number(row["95%"]),
                p99_ms=_number(row["99%"]),
                max_ms=float(row["Max Response Time"]),
            )
            for row in csv.DictReader(handle)
        ]


def read_failures(failures_csv: Path) -> list[dict[str, str]]:
    if not failures_csv.exists():
        return []
    with open(failures_csv, newline="") as handle:
        return list(csv.DictReader(handle))


def first_history_timestamp(history_csv: Path) -> float | None:
    """When Locust's test began (its first stats row), to time the load without start-up."""
    try:
        with open(history_csv, newline="") as handle:
            first = next(csv.DictReader(handle), None)
    except FileNotFoundError:
        return None
    return float(first["Timestamp"]) if first else None


def _fmt(value: float | None, digits: int = 1) -> str:
    return "n/a" if value is None else f"{value:,.{digits}f}"


def _table(header: list[str], rows: list[list[str]]) -> list[str]:
    return markdown_rows(header, rows)


def render(
    info: RunInfo,
    endpoints: list[EndpointStats],
    loads: list[ModelLoad],
    failures: list[dict[str, str]],
    plot_name: str | None,
    cut: dict[str, int] | None = None,
) -> str:
    """The Markdown report: client side (Locust), server side (counter differences), plot."""
    lines = _setup_section(info) + _client_section(endpoints) + _server_section(loads)
    lines += _failures_section(failures) + _cut_section(info, cut)
    if plot_name:
        lines += ["", "## Over time", "", f"![latency and throughput]({plot_name})"]
    lines += [
        "",
        f"Also here: `{HTML}` (Locust's own report), `{CSV_PREFIX}_*.csv` (the tables above "
        f"come from `{CSV_PREFIX}{FINAL_STATS}`: Locust's periodic `{CSV_PREFIX}_stats.csv` can "
        "miss the last second), "
        f"`{METRICS_BEFORE}` / `{METRICS_AFTER}` (the raw scrapes), `{RUN_INFO}`.",
        "",
    ]
    return "\n".join(lines)


def _setup_section(info: RunInfo) -> list[str]:
    """The title, how the load was set up, and how busy the machine was around it."""
    server = "started by this run" if info.server_started else "already running"
    weights = f"; weights {info.weights}" if info.weights else ""
    settings = " ".join(f"{k}={v}" for k, v in sorted(info.locust_env.items()))
    load = "/".join(f"{x:.1f}" for x in info.load_average_before) or "n/a"
    load_after = "/".join(f"{x:.1f}" for x in info.load_average_after) or "n/a"
    return [
        f"# Load test {info.started_at}",
        "",
        f"Scenario **{info.scenario}** ({', '.join(info.user_classes)}{weights}): "
        f"{info.users} users spawned at {info.spawn_rate:g}/s for {info.duration} against "
        f"{info.host} (server {server}); load ran {info.load_seconds:.1f} s, "
        f"Locust exit code {info.locust_exit_code}."
        + (f" Settings: `{settings}`." if settings else ""),
        "",
        f"Machine: {info.cpu_count} CPU cores, load average (1/5/15 min) {load} before and "
        f"{load_after} after. Locust runs on the same cores as the server, and anything else "
        "running (training, other tests) competes with both: compare runs only with this in view.",
        "",
    ]


def _client_section(endpoints: list[EndpointStats]) -> list[str]:
    """What Locust saw per endpoint: rate, latency percentiles, failures."""
    rows = [
        [
            f"{e.kind} {e.name}".strip(),
            str(e.requests),
            str(e.failures),
            _fmt(e.requests_per_s, 2),
            _fmt(e.mean_ms),
            _fmt(e.p50_ms, 0),
            _fmt(e.p95_ms, 0),
            _fmt(e.p99_ms, 0),
            _fmt(e.max_ms, 0),
        ]
        for e in endpoints
    ]
    return [
        "## Client side (Locust)",
        "",
        *_table(CLIENT_COLUMNS, rows),
        "",
        "Percentiles are Locust's (rounded to two significant digits above 100 ms). "
        f"`STREAM {FIRST_CHUNK}` is the time to the first streamed chunk, `STREAM lm whole "
        "stream` the time to its last; Locust's Aggregated row counts each stream under both.",
        "",
    ]


def _server_section(loads: list[ModelLoad]) -> list[str]:
    """What TorchServe's counters say per model (queue, inference, batch size, tokens/s)."""
    title = ["## Server side (TorchServe counters, after minus before)", ""]
    if not loads:
        return [
            *title,
            "No model counters changed between the two scrapes (or the server could not be "
            "scraped after the run).",
        ]
    rows = [
        [
            m.model,
            _fmt(m.requests, 0),
            _fmt(m.batches, 0),
            _fmt(m.mean_batch_size, 2),
            _fmt(m.mean_queue_ms),
            _fmt(m.mean_inference_ms),
            _fmt(m.mean_batch_latency_ms),
            _fmt(m.bad_requests, 0),
            _fmt(m.failed_requests, 0),
            _fmt(m.generated_tokens, 0) if m.generated_tokens else "",
            _fmt(m.tokens_per_s) if m.generated_tokens else "",
        ]
        for m in loads
    ]
    return [
        *title,
        *_table(SERVER_COLUMNS, rows),
        "",
        "Queue: arrival until a worker took the request (ts_queue_latency_microseconds). "
        "Inference: from then until the last byte of the answer "
        "(ts_inference_latency_microseconds minus queue). Means are per request that "
        "reached the handler (HandlerBatchRequests); batch size is HandlerBatchRequests / "
        "HandlerBatches and handler batch time HandlerBatchLatencyMs / HandlerBatches. "
        "Tokens/s is GeneratedTokens over the load time.",
    ]


def _failures_section(failures: list[dict[str, str]]) -> list[str]:
    """Locust's failures by kind (error text shortened and kept out of the table's pipes)."""
    title = ["", "## Failures", ""]
    if not failures:
        return [*title, "None."]
    rows = [
        [f["Method"], f["Name"], f["Error"].replace("|", "/")[:160], f["Occurrences"]]
        for f in failures
    ]
    return [*title, *_table(["Type", "Name", "Error", "Count"], rows)]


def _cut_section(info: RunInfo, cut: dict[str, int] | None) -> list[str]:
    """Requests that were still running when the run ended: in no table above."""
    title = ["", "## Cut at the end", ""]
    if info.locust_killed:
        return [*title, "Locust did not exit by its deadline and was killed: no count."]
    if cut is None:
        return [*title, "Not recorded (no cut count was written)."]
    total = sum(cut.values())
    lines = [
        *title,
        f"{total} request(s) were still running when the run ended and were cut (stop "
        f"timeout {info.stop_timeout:g} s; Locust stops their users, so they are in no table "
        "above).",
    ]
    rows = [[name, str(count)] for name, count in sorted(cut.items()) if count]
    return lines + (["", *_table(["Name", "Count"], rows)] if rows else [])


def read_cut(folder: Path) -> dict[str, int] | None:
    path = folder / f"{CSV_PREFIX}{CUT}"
    return json.loads(path.read_text()) if path.exists() else None


def plot_history(history_csv: Path, png: Path) -> bool:
    """Per-endpoint latency percentiles and throughput over the run; False if no history.

    Locust's history has one row per entry and second: percentiles over its last 10 s, and
    running totals (throughput is their rolling difference).
    """
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import pandas as pd

    if not history_csv.exists():
        return False
    history = pd.read_csv(history_csv, na_values=["N/A"])
    if history.empty:
        return False
    history["t"] = history["Timestamp"] - history["Timestamp"].min()
    history["entry"] = (history["Type"].fillna("") + " " + history["Name"]).str.strip()
    entries = [e for e in _per_entry(history, "Total Request Count").columns if e != AGGREGATED]
    figure, (latency, throughput) = plt.subplots(2, 1, figsize=(9, 7), sharex=True)
    _plot_latency(latency, history, entries)
    _plot_throughput(throughput, history, entries)
    figure.tight_layout()
    figure.savefig(png, dpi=110)
    plt.close(figure)
    return True


def _per_entry(history: pd.DataFrame, column: str) -> pd.DataFrame:
    """One column of Locust's history as a table: a row per second, a column per entry."""
    return history.pivot_table(index="t", columns="entry", values=column)


def _plot_latency(axis: Axes, history: pd.DataFrame, entries: list[str]) -> None:
    """p50 (solid) and p95 (dashed) per entry, on a log scale."""
    p50, p95 = _per_entry(history, "50%"), _per_entry(history, "95%")
    for index, entry in enumerate(entries):
        color = f"C{index}"
        # Locust writes 0 until an entry's window fills: that is no measurement, not 0 ms.
        axis.plot(p50.index, p50[entry].where(p50[entry] > 0), color=color, label=entry)
        axis.plot(p95.index, p95[entry].where(p95[entry] > 0), color=color, linestyle="--")
    axis.plot([], [], color="grey", label="solid p50, dashed p95 (last 10 s)")
    axis.set_ylabel("latency, ms")
    axis.set_yscale("log")
    axis.legend(loc="best", fontsize=8)
    axis.grid(alpha=0.3)


def _plot_throughput(axis: Axes, history: pd.DataFrame, entries: list[str]) -> None:
    """Requests/s per entry and in all (rolling differences of Locust's running totals), with
    the user count on a second scale."""
    totals = _per_entry(history, "Total Request Count").ffill().fillna(0)
    # A stream's first chunk is not a request of its own, so "all" leaves it out.
    requests = [e for e in entries if not e.endswith(FIRST_CHUNK)]
    totals["all requests"] = totals[requests].sum(axis=1)
    window = min(RATE_WINDOW_S, max(len(totals) - 1, 1))
    rates = totals.diff(window).div(totals.index.to_series().diff(window), axis=0)
    for index, entry in enumerate(entries):
        if entry in requests:
            axis.plot(rates.index, rates[entry], color=f"C{index}", label=entry)
    axis.plot(rates.index, rates["all requests"], color="black", label="all requests")
    users = _per_entry(history, "User Count").max(axis=1)
    scale = axis.twinx()
    scale.step(users.index, users, where="post", color="grey", linestyle=":", label="users")
    scale.set_ylabel("users")
    axis.set_ylabel(f"requests/s (over {window} s)")
    axis.set_xlabel("seconds since start")
    axis.grid(alpha=0.3)
    handles, labels = axis.get_legend_handles_labels()
    more_handles, more_labels = scale.get_legend_handles_labels()
    axis.legend(handles + more_handles, labels + more_labels, loc="upper left", fontsize=8)


def stats_file(folder: Path) -> Path:
    """The run's complete per-endpoint statistics (Locust's periodic file if no final one)."""
    return _final_or_periodic(folder, FINAL_STATS, "_stats.csv")


def _final_or_periodic(folder: Path, final: str, periodic: str) -> Path:
    path = folder / f"{CSV_PREFIX}{final}"
    return path if path.exists() else folder / f"{CSV_PREFIX}{periodic}"


def write_report(folder: Path) -> Path:
    """Read a run folder's files and write its report.md (and plot); returns the report path."""
    folder = Path(folder)
    info = RunInfo.load(folder)
    endpoints = read_endpoint_stats(stats_file(folder))
    before = parse_counters((folder / METRICS_BEFORE).read_text())
    after_file = folder / METRICS_AFTER
    after = parse_counters(after_file.read_text()) if after_file.exists() else before
    loads = summarize(before, after, info.load_seconds)
    failures = read_failures(_final_or_periodic(folder, FINAL_FAILURES, "_failures.csv"))
    plotted = plot_history(folder / f"{CSV_PREFIX}_stats_history.csv", folder / PLOT)
    report = folder / REPORT
    plot = PLOT if plotted else None
    report.write_text(render(info, endpoints, loads, failures, plot, read_cut(folder)))
    return report


if __name__ == "__main__":
    if len(sys.argv) != 2:
        sys.exit(__doc__)
    print(write_report(Path(sys.argv[1])))
