"""A chaos run: mixed load while, in turn, the LM's helper process, a sentiment worker and the
LM worker are killed; then a report of what failed, how fast each model answered again, and
whether the server ended healthy.

    make chaos USERS=16 DURATION=60s
    python -m loadtest.chaos --users 16 --duration 60s --interval 15

Uses the server started from --run-dir (`make serve`) when one is running, else starts one
(and stops it afterwards). The load is `python -m loadtest.run --scenario mixed` (its own
report lands in <out>/load/); the kills come ``--interval`` seconds apart from the start.
Writes <out>/chaos.md and chaos.json. The exit status is 0 only when every failed request was
in flight at a kill and failed visibly (a 5xx, a final error line or a cut connection: never
a 2xx carrying an error, a 4xx or a timeout), each model answered again within
--recovery-bound seconds, the load run ended on time and the server ended healthy.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import signal
import subprocess
import sys
import time
from collections import Counter
from dataclasses import asdict, dataclass, field
from datetime import datetime
from pathlib import Path

import psutil
import requests

from docsgen.markdown import markdown_rows
from loadtest import run as load_run
from loadtest.metrics import ACTIVE_ROWS, ACTIVE_SESSIONS, canonical, parse_counters, scrape
from serving.connection import Connection
from serving.lifecycle import alive, stop
from serving.server_config import DEFAULT_RUN_DIR, ROOT, ServerError, add_server_arguments

VICTIMS = ("lm helper", "sentiment worker", "lm worker")
MODEL_OF_VICTIM = {"lm helper": "lm", "sentiment worker": "sentiment", "lm worker": "lm"}
PROBES = {
    "lm": {"prompt": "ROMEO:", "max_new_tokens": 1, "seed": 1},
    "sentiment": {"text": "a fine film"},
}
HELPER_MARK = "multiprocessing.spawn"  # in a helper decode process's command line
FAILURE_LOG = "failures.jsonl"
VISIBLE = {"5xx status", "final error line", "cut connection"}  # failures a client notices
STATUS = re.compile(r"(?:code=|HTTP )([1-5]\d\d)\b")  # Locust's and serving.client's wording
# Failed requests of these kinds are ones a client notices at once. TorchServe 0.12 also drops,
# unanswered, the jobs a dying worker had gathered but not yet sent to its process
# (docs/faults.md): those run until the end of the load and are counted as NEVER_ANSWERED.
NEVER_ANSWERED = "never answered (cut at the end)"
END_CUT = "cut at the end of the run"  # the locustfile's word for a request Locust stopped
NOTICE_S = 1.0  # a request sent this soon after a kill may still meet the dead worker
# A request that waited for a killed model gets this long, once the model answers again, before
# a cut at the end counts it as dropped: Locust's stop timeout, the time any request running at
# the end gets. One cut sooner merely ran when the load stopped (CI once counted two requests
# sent 0.4 s after the LM's new worker answered, and cut by the run's end, as dropped).
ANSWER_GRACE_S = load_run.STOP_TIMEOUT_S


@dataclass
class Kill:
    victim: str
    pid: int
    at: float  # time.time() of the kill
    answered_after_s: float | None = None  # until the model's first 200 after the kill


@dataclass
class ChaosResult:
    users: int
    duration: str
    interval: float
    kills: list[Kill]
    requests: int
    failures: dict[str, int]  # by kind
    statuses: dict[str, int]  # failed requests by HTTP status ("none": no status line came)
    failures_by_name: dict[str, int]
    not_in_flight: int  # failures that started after a kill had been answered again
    cut_at_end: int
    load_seconds: float  # the load run's wall time, start to exit
    load_bound_s: float
    healthy: dict[str, bool] = field(default_factory=dict)
    notes: list[str] = field(default_factory=list)

    @property
    def passed(self) -> bool:
        visible = set(self.failures) <= VISIBLE | {NEVER_ANSWERED}  # the latter: TorchServe's
        recovered = all(k.answered_after_s is not None for k in self.kills)
        on_time = self.load_seconds <= self.load_bound_s
        loaded = self.requests > 0
        return (
            loaded
            and visible
            and recovered
            and on_time
            and not self.not_in_flight
            and all(self.healthy.values())
        )


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--users", type=int, default=16)
    parser.add_argument("--spawn-rate", type=float, default=8.0)
    parser.add_argument("--duration", default="60s", help="load time, e.g. 60s")
    parser.add_argument("--interval", type=float, default=15.0, help="seconds between kills")
    parser.add_argument("--recovery-bound", type=float, default=60.0)
    parser.add_argument("--run-dir", type=Path, default=DEFAULT_RUN_DIR)
    parser.add_argument("--out", type=Path, default=None)
    add_server_arguments(parser.add_argument_group("when no server is running, start one with"))
    return parser.parse_args(argv)


def children(pid: int) -> list[int]:
    """Processes whose parent is ``pid``."""
    try:
        return [child.pid for child in psutil.Process(pid).children()]
    except psutil.NoSuchProcess:
        return []


def command_line(pid: int) -> str:
    try:
        return " ".join(psutil.Process(pid).cmdline())
    except psutil.Error:
        return ""


def worker_pids(connection: Connection, model: str) -> list[int]:
    workers = connection.model_status(model)[0]["workers"]
    return [int(w["pid"]) for w in workers if w.get("pid")]


def helper_pids(connection: Connection) -> list[int]:
    return [
        child
        for worker in worker_pids(connection, "lm")
        for child in children(worker)
        if HELPER_MARK in command_line(child) and alive(child)
    ]


def victim_pid(connection: Connection, victim: str) -> int:
    if victim == "lm helper":
        helpers = helper_pids(connection)
        if not helpers:
            raise ServerError("the LM worker has no helper process (decode_processes: 2?)")
        return helpers[0]
    return worker_pids(connection, MODEL_OF_VICTIM[victim])[0]


def answered_again(connection: Connection, model: str, since: float, bound: float) -> float | None:
    """Seconds from ``since`` to this model's first 200 to a small request, polled."""
    url = f"{connection.inference_url}/predictions/{model}"
    while time.time() - since < bound:
        try:
            reply = requests.post(
                url, json=PROBES[model], headers=connection.inference_headers(), timeout=10
            )
            if reply.status_code == 200:
                return time.time() - since
        except requests.RequestException:
            pass
        time.sleep(0.2)
    return None


def kind_of(error: str) -> str:
    """A failed request's kind, from Locust's error text."""
    if error == END_CUT:
        return NEVER_ANSWERED
    if "error line" in error:
        return "final error line"
    lowered = error.lower()
    if "timeout" in lowered or "timed out" in lowered:
        return "timeout"
    if "200 without" in error:
        return "2xx carrying an error"
    status = STATUS.search(error)
    if status:
        code = int(status.group(1))
        return "5xx status" if code >= 500 else f"{code // 100}xx status"
    if any(word in lowered for word in ("connection", "chunked", "reset", "broken", "closed")):
        return "cut connection"
    return "other"


def status_of(error: str) -> str:
    """The status line a failed request got (a stream's error line comes after a 200)."""
    if kind_of(error) == "final error line":
        return "200, then an error line"
    status = STATUS.search(error)
    return status.group(1) if status else "none"


def kills_of_its_model(failure: dict, kills: list[Kill]) -> list[Kill]:
    model = "sentiment" if "sentiment" in failure["name"] else "lm"
    return [k for k in kills if MODEL_OF_VICTIM[k.victim] == model]


def in_flight(failure: dict, kills: list[Kill]) -> bool:
    """Started before a kill of its model and ended after it, or started while that model
    recovered."""
    return any(
        failure["start"] <= k.at + (k.answered_after_s or 0.0) + NOTICE_S and failure["end"] >= k.at
        for k in kills_of_its_model(failure, kills)
    )


def dropped(cut: dict, kills: list[Kill]) -> bool:
    """A request cut at the end that TorchServe must have dropped: sent before its model
    answered again after a kill, and still unanswered ANSWER_GRACE_S after it did."""
    return any(
        cut["start"] <= k.at + k.answered_after_s
        and cut["end"] >= k.at + k.answered_after_s + ANSWER_GRACE_S
        for k in kills_of_its_model(cut, kills)
        if k.answered_after_s is not None
    )


def healthy(connection: Connection, helpers_seen: set[int]) -> tuple[dict[str, bool], list[str]]:
    """Every worker READY, no rows or sessions left in the LM, no helper outside a worker."""
    checks: dict[str, bool] = {}
    notes = []
    for model in PROBES:
        states = [w["status"] for w in connection.model_status(model)[0]["workers"]]
        checks[f"{model} workers READY"] = bool(states) and set(states) == {"READY"}
        notes.append(f"{model} workers: {', '.join(states) or 'none'}")
    # A one-token request finishes in its first call, whose gauges then hold what is left.
    requests.post(
        f"{connection.inference_url}/predictions/lm",
        json=PROBES["lm"],
        headers=connection.inference_headers(),
        timeout=30,
    )
    gauges = parse_counters(scrape(connection.metrics_url), kind="gauge")
    for name in (ACTIVE_ROWS, ACTIVE_SESSIONS):
        value = gauges.get((canonical(name), "lm"))
        checks[f"lm {name} 0"] = value == 0
        notes.append(f"lm {name}: {value}")
    current = set(helper_pids(connection))
    orphans = [pid for pid in helpers_seen - current if alive(pid)]
    one_each = len(current) == len(worker_pids(connection, "lm"))
    checks["no orphaned helper"] = not orphans and one_each
    notes.append(f"helpers now {sorted(current)}; seen {sorted(helpers_seen)}; orphans {orphans}")
    return checks, notes


def chaos(args: argparse.Namespace, connection: Connection, out: Path) -> ChaosResult:
    log = out / FAILURE_LOG
    env = {**os.environ, "LOADTEST_FAILURE_LOG": str(log)}
    command = [sys.executable, "-m", "loadtest.run", "--run-dir", str(args.run_dir)]
    command += ["--users", str(args.users), "--spawn-rate", str(args.spawn_rate)]
    command += ["--duration", args.duration, "--scenario", "mixed", "--out", str(out / "load")]
    started = time.time()
    load = subprocess.Popen(command, cwd=ROOT, env=env)
    helpers_seen = set(helper_pids(connection))
    kills = []
    try:
        for number, victim in enumerate(VICTIMS, start=1):
            time.sleep(max(0.0, started + number * args.interval - time.time()))
            pid = victim_pid(connection, victim)
            kill = Kill(victim, pid, time.time())
            os.kill(pid, signal.SIGKILL)
            model = MODEL_OF_VICTIM[victim]
            kill.answered_after_s = answered_again(connection, model, kill.at, args.recovery_bound)
            helpers_seen |= set(helper_pids(connection))
            print(f"killed {victim} (pid {pid}): {model} answered after {kill.answered_after_s} s")
            kills.append(kill)
        bound = load_run.seconds(args.duration) + load_run.STOP_TIMEOUT_S
        bound += load_run.LOCUST_OVERHEAD_S
        load.wait(timeout=bound + 60)
    finally:
        if load.poll() is None:
            load.terminate()
            load.wait()
    load_seconds = time.time() - started
    failures = [json.loads(line) for line in log.read_text().splitlines()] if log.exists() else []
    failures = [f for f in failures if not f["name"].endswith("first chunk")]  # counted twice
    # A request cut at the end is a failure only if a kill explains its wait (then it got no
    # answer from then on); the others simply ran when the load stopped.
    failures = [f for f in failures if f["error"] != END_CUT or dropped(f, kills)]
    cut_file = out / "load" / "locust_cut.json"
    cut = sum(json.loads(cut_file.read_text()).values()) if cut_file.exists() else 0
    checks, notes = healthy(connection, helpers_seen)
    return ChaosResult(
        users=args.users,
        duration=args.duration,
        interval=args.interval,
        kills=kills,
        requests=total_requests(out / "load"),
        failures=dict(Counter(kind_of(f["error"]) for f in failures)),
        statuses=dict(Counter(status_of(f["error"]) for f in failures)),
        failures_by_name=dict(
            Counter(f"{f['name']}: {one_line(f['error'])[:80]}" for f in failures)
        ),
        not_in_flight=sum(not in_flight(f, kills) for f in failures),
        cut_at_end=cut,
        load_seconds=load_seconds,
        load_bound_s=bound,
        healthy=checks,
        notes=[
            *notes,
            *(cut_note(f, kills) for f in failures if f["error"] == END_CUT),
            f"load run exit status {load.returncode}; its report: load/report.md",
        ],
    )


def cut_note(cut: dict, kills: list[Kill]) -> str:
    """How a request counted as dropped waited, for whoever reads a failed run."""
    k = next(k for k in kills_of_its_model(cut, kills) if dropped(cut, [k]))
    answered = k.at + (k.answered_after_s or 0.0)
    return (
        f"{cut['name']}: {NEVER_ANSWERED}: sent {cut['start'] - k.at:+.1f} s from the kill of "
        f"the {k.victim}, cut {cut['end'] - answered:.1f} s after its model answered again"
    )


def one_line(text: str) -> str:
    return " ".join(text.split())


def total_requests(load_dir: Path) -> int:
    """Requests Locust counted (streams once: their first-chunk entry is left out)."""
    from loadtest import report

    try:
        rows = report.read_endpoint_stats(report.stats_file(load_dir))
    except FileNotFoundError:
        return 0
    return sum(
        r.requests for r in rows if r.name != report.AGGREGATED and report.FIRST_CHUNK not in r.name
    )


def render(result: ChaosResult) -> str:
    lines = [
        f"# Chaos run {datetime.now().isoformat(timespec='seconds')}",
        "",
        f"Mixed load, {result.users} users for {result.duration}; a kill every "
        f"{result.interval:g} s. Requests: {result.requests}; failed: "
        f"{sum(result.failures.values())}; cut at the end: {result.cut_at_end}. "
        f"The load run took {result.load_seconds:.1f} s (bound {result.load_bound_s:.0f} s). "
        f"Verdict: {'PASS' if result.passed else 'FAIL'}.",
        "",
    ]
    kills = [
        (k.victim, k.pid, "never" if k.answered_after_s is None else f"{k.answered_after_s:.1f}")
        for k in result.kills
    ]
    lines += markdown_rows(("Killed", "pid", "Answered again after (s)"), kills)
    lines += ["", *markdown_rows(("Failure kind", "Count"), sorted(result.failures.items()))]
    lines += ["", *markdown_rows(("Failed with status", "Count"), sorted(result.statuses.items()))]
    lines += [
        "",
        f"Failures not in flight at a kill: {result.not_in_flight}. '{NEVER_ANSWERED}': a "
        "request sent before its model answered again after a kill and still unanswered "
        f"{ANSWER_GRACE_S:g} s after it did, when the run ended: TorchServe dropped it "
        "(docs/faults.md).",
        "",
    ]
    errors = [(name.replace("|", "/"), n) for name, n in sorted(result.failures_by_name.items())]
    lines += markdown_rows(("Failed request: error", "Count"), errors)
    health = [(name, "yes" if ok else "NO") for name, ok in result.healthy.items()]
    lines += ["", *markdown_rows(("Health at the end", ""), health)]
    lines += ["", *[f"- {note}" for note in result.notes], ""]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    args.run_dir = args.run_dir.resolve()
    out = args.out or ROOT / "runs" / "chaos" / datetime.now().strftime("%Y%m%d-%H%M%S")
    out.mkdir(parents=True, exist_ok=True)
    args.scenario, args.server_option = "mixed", []
    try:
        connection, started_server = load_run.ensure_server(args, tuple(PROBES))
    except ServerError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    try:
        result = chaos(args, connection, out)
    finally:
        if started_server:
            stop(args.run_dir)
    (out / "chaos.json").write_text(
        json.dumps({**asdict(result), "passed": result.passed}, indent=2) + "\n"
    )
    (out / "chaos.md").write_text(render(result))
    print(render(result))
    print(f"report: {out / 'chaos.md'}")
    return 0 if result.passed else 1


if __name__ == "__main__":
    sys.exit(main())
