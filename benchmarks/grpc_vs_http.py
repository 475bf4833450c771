"""The sentiment model over TorchServe's gRPC API against the same model over HTTP, one server.

    python -m benchmarks.grpc_vs_http [--model-store model_store] [--seconds 20] [--clients 32]

Starts one server (sentiment only, auth on, free ports), then sends the same request mix (the
872 SST-2 dev sentences, one per request, each client starting at its own offset) from N
client threads: over HTTP with one requests.Session per thread, over gRPC with one channel
per thread. The two protocols take turns in rounds (HTTP then gRPC, then gRPC then HTTP, ...)
so that a drift of the machine's load hits both alike. Prints requests/s, p50 and p99 latency
of each, and the ratios gRPC / HTTP; writes them to <out>/result.json.

Read the figures with care: on a 2-core machine the client threads, the Java frontend and the
workers share the cores (and other jobs may run), so what the client itself costs per request
(requests is heavier than grpc in Python) moves the served rate too; the CPU split per phase
says where the cores went. Only the ratio within one run means much.
"""

from __future__ import annotations

import argparse
import json
import statistics
import threading
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from datetime import datetime
from pathlib import Path

import requests

from benchmarks.cpu import cpu_split
from benchmarks.harness import server
from serving.connection import Connection
from serving.grpc_client import GrpcClient, GrpcError
from serving.lifecycle import server_pid
from serving.server_config import DEFAULT_MODEL_STORE
from training.data import load_sentiment

ROOT = Path(__file__).resolve().parent.parent
PROTOCOLS = ("http", "grpc")
# A request: (index of the sentence) -> whether the answer was a 200 with a body.
Sender = Callable[[int], bool]
RESULTS_LOCK = threading.Lock()  # client threads add their latencies to their phase under it


@dataclass
class Phase:
    """One protocol's share of one round: what the clients saw, and where the cores went."""

    protocol: str
    seconds: float
    latencies_ms: list[float] = field(default_factory=list)
    failures: int = 0
    cpu: str = ""

    @property
    def rate(self) -> float:
        return len(self.latencies_ms) / self.seconds


def percentile(values: list[float], q: float) -> float:
    """The q-th percentile (0-100) of ``values``, interpolated; nan when there are none."""
    if len(values) < 2:
        return values[0] if values else float("nan")
    return statistics.quantiles(values, n=1000, method="inclusive")[round(q * 10) - 1]


def http_sender(connection: Connection, bodies: list[bytes]) -> tuple[Sender, Callable]:
    """A request function for one thread (its own Session: one keep-alive connection)."""
    session = requests.Session()
    session.headers.update(connection.inference_headers())
    url = f"{connection.inference_url}/predictions/sentiment"

    def send(index: int) -> bool:
        reply = session.post(url, data=bodies[index], timeout=60)
        return reply.status_code == 200 and bool(reply.content)

    return send, session.close


def grpc_sender(run_dir: Path, bodies: list[bytes]) -> tuple[Sender, Callable]:
    """A request function for one thread (its own channel: one HTTP/2 connection)."""
    client = GrpcClient.from_run_dir(run_dir, timeout=60)

    def send(index: int) -> bool:
        # Our handler's errors come back as gRPC OK with a JSON error: look at the body.
        return b'"code"' not in client.predict("sentiment", bodies[index])

    return send, client.close


def client_loop(
    send: Sender, start: int, count: int, gate: threading.Barrier, phase: Phase
) -> None:
    """One client thread: requests back to back, from sentence ``start`` on, until the end."""
    gate.wait()
    deadline = time.perf_counter() + phase.seconds
    index = start
    mine: list[float] = []
    failures = 0
    while time.perf_counter() < deadline:
        began = time.perf_counter()
        try:
            ok = send(index % count)
        except (requests.RequestException, GrpcError):
            ok = False
        if ok:
            mine.append((time.perf_counter() - began) * 1000.0)
        else:
            failures += 1
        index += 1
    with RESULTS_LOCK:
        phase.latencies_ms.extend(mine)
        phase.failures += failures


def run_phase(protocol: str, run_dir: Path, bodies: list[bytes], args: argparse.Namespace) -> Phase:
    """All client threads on one protocol for ``args.seconds``; connections are made (and
    warmed with one request each) before the clock starts."""
    phase = Phase(protocol, args.seconds)
    connection = Connection.from_run_dir(run_dir)
    senders = [
        http_sender(connection, bodies) if protocol == "http" else grpc_sender(run_dir, bodies)
        for _ in range(args.clients)
    ]
    for send, _ in senders:
        send(0)
    gate = threading.Barrier(args.clients + 1)
    offsets = [i * len(bodies) // args.clients for i in range(args.clients)]
    threads = [
        threading.Thread(target=client_loop, args=(send, start, len(bodies), gate, phase))
        for (send, _), start in zip(senders, offsets, strict=True)
    ]
    for thread in threads:
        thread.start()
    with cpu_split(server_pid(run_dir) or 0) as cpu:
        client_cpu = time.process_time()
        gate.wait()
        for thread in threads:
            thread.join()
        client_cpu = time.process_time() - client_cpu
    phase.cpu = f"{cpu.describe()}; of the rest, this client {client_cpu / cpu.seconds:.2f}"
    for _, close in senders:
        close()
    return phase


def check_same_answers(run_dir: Path, bodies: list[bytes], count: int = 16) -> None:
    """Before timing anything: both protocols give the same labels for the first sentences."""
    connection = Connection.from_run_dir(run_dir)
    url = f"{connection.inference_url}/predictions/sentiment"
    headers = connection.inference_headers()
    with GrpcClient.from_run_dir(run_dir) as client:
        for body in bodies[:count]:
            http = requests.post(url, data=body, headers=headers, timeout=60).json()
            over_grpc = json.loads(client.predict("sentiment", body))
            if http["label"] != over_grpc["label"]:
                raise SystemExit(f"gRPC and HTTP disagree on {body!r}: {over_grpc} vs {http}")


def summary(phases: list[Phase]) -> dict[str, dict[str, float]]:
    """Per protocol over all its rounds: requests/s, p50 and p99 ms, failures, rounds' rates."""
    result = {}
    for protocol in PROTOCOLS:
        mine = [p for p in phases if p.protocol == protocol]
        latencies = [ms for p in mine for ms in p.latencies_ms]
        result[protocol] = {
            "requests_per_s": len(latencies) / sum(p.seconds for p in mine),
            "p50_ms": percentile(latencies, 50),
            "p99_ms": percentile(latencies, 99),
            "failures": sum(p.failures for p in mine),
            "round_rates": [round(p.rate, 1) for p in mine],
        }
    return result


def report(result: dict[str, dict[str, float]], phases: list[Phase]) -> None:
    for phase in phases:
        print(f"  {phase.protocol:<4} {phase.rate:8.1f} /s   cpu: {phase.cpu}", flush=True)
    print(f"\n{'':6}{'requests/s':>12}{'p50 ms':>10}{'p99 ms':>10}{'failures':>10}")
    for protocol in PROTOCOLS:
        row = result[protocol]
        print(
            f"{protocol:<6}{row['requests_per_s']:12.1f}{row['p50_ms']:10.1f}"
            f"{row['p99_ms']:10.1f}{row['failures']:10d}"
        )
    grpc, http = result["grpc"], result["http"]
    print(
        f"gRPC / HTTP: requests/s {grpc['requests_per_s'] / http['requests_per_s']:.2f}, "
        f"p50 {grpc['p50_ms'] / http['p50_ms']:.2f}, p99 {grpc['p99_ms'] / http['p99_ms']:.2f}"
    )


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--model-store", type=Path, default=DEFAULT_MODEL_STORE)
    parser.add_argument("--seconds", type=float, default=20.0, help="per protocol and round")
    parser.add_argument("--clients", type=int, default=32, help="client threads")
    parser.add_argument("--rounds", type=int, default=2, help="turns of each protocol")
    parser.add_argument("--out", type=Path, help="default: runs/grpc-vs-http/<time>")
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> None:
    args = parse_args(argv)
    out = args.out or ROOT / "runs" / "grpc-vs-http" / datetime.now().strftime("%Y%m%d-%H%M%S")
    out.mkdir(parents=True, exist_ok=True)
    sentences = load_sentiment("sst2")["dev"]["sentence"]
    bodies = [json.dumps({"text": text}).encode() for text in sentences]
    run_dir = out / "server"
    phases: list[Phase] = []
    with server(args.model_store, ("sentiment",), run_dir):
        check_same_answers(run_dir, bodies)
        for round_number in range(args.rounds):
            order = PROTOCOLS if round_number % 2 == 0 else PROTOCOLS[::-1]
            for protocol in order:
                phases.append(run_phase(protocol, run_dir, bodies, args))
    result = summary(phases)
    report(result, phases)
    settings = {k: str(v) if isinstance(v, Path) else v for k, v in vars(args).items()}
    record = {"settings": settings, "result": result, "phases": [asdict(p) for p in phases]}
    for phase in record["phases"]:
        phase.pop("latencies_ms")
    (out / "result.json").write_text(json.dumps(record, indent=2))
    print(f"wrote {out / 'result.json'}")


if __name__ == "__main__":
    main()
