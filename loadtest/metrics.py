"""Scrape TorchServe's Prometheus endpoint and turn two scrapes into per-model means.

    python -m loadtest.metrics                          # counters of the server from runs/server
    python -m loadtest.metrics http://127.0.0.1:8082    # or of any TorchServe metrics address

TorchServe exports counters (running sums), not histograms, so the only honest per-run figure
is a difference: (sum after - sum before) / (count after - count before). The metrics endpoint
answers without a key even when token authorization is on (checked against TorchServe 0.12).
"""

from __future__ import annotations

import sys
import time
from dataclasses import dataclass

import requests
from prometheus_client.parser import text_string_to_metric_families

from serving.polling import poll_until

# TorchServe's own frontend counters, per model (labels model_name, model_version, hostname).
# ts_inference_latency runs from arrival to the last byte of the answer, so it *includes* the
# queue time; the time spent in the worker is the difference of the two.
QUEUE_US = "ts_queue_latency_microseconds"
LATENCY_US = "ts_inference_latency_microseconds"
REQUESTS = "ts_inference_requests_total"
# Our handlers' counters (names as in handlers/torchserve.py and handlers/lm/handler.py; a unit test
# checks they agree, so this module need not import torch and TorchServe to know them).
BATCHES = "HandlerBatches"
BATCH_REQUESTS = "HandlerBatchRequests"
BATCH_LATENCY_MS = "HandlerBatchLatencyMs"
BAD_REQUESTS = "HandlerBadRequests"
FAILED_REQUESTS = "HandlerFailedRequests"
GENERATED_TOKENS = "GeneratedTokens"
SESSION_EVICTIONS = "SessionEvictions"
# ... and its gauges (values now, not sums).
ACTIVE_ROWS = "ActiveRows"
ACTIVE_SESSIONS = "ActiveSessions"

MODEL_LABELS = ("ModelName", "model_name")  # handler metrics use the first, TorchServe the second

Counters = dict[tuple[str, str], float]  # (metric name without "_total", model) -> value


def canonical(name: str) -> str:
    """Counter names without the "_total" that the exposition format may or may not append."""
    return name.removesuffix("_total")


def scrape(metrics_url: str, timeout: float = 10.0) -> str:
    """The raw Prometheus text of ``<metrics_url>/metrics``."""
    reply = requests.get(f"{metrics_url.rstrip('/')}/metrics", timeout=timeout)
    reply.raise_for_status()
    return reply.text


def parse_counters(text: str, kind: str = "counter") -> Counters:
    """Every per-model counter (or ``kind="gauge"``: gauge) in a scrape, summed over the other
    labels (version, host)."""
    counters: Counters = {}
    for family in text_string_to_metric_families(text):
        if family.type != kind:
            continue
        for sample in family.samples:
            if sample.name.endswith("_created"):
                continue
            model = next((sample.labels[k] for k in MODEL_LABELS if k in sample.labels), None)
            if model is None:
                continue
            key = (canonical(family.name), model)
            counters[key] = counters.get(key, 0.0) + sample.value
    return counters


def deltas(before: Counters, after: Counters) -> Counters:
    """after - before per counter; a counter that went down means a restart, so count from 0."""
    out: Counters = {}
    for key, value in after.items():
        previous = before.get(key, 0.0)
        out[key] = value - previous if value >= previous else value
    return out


def settled_counters(
    metrics_url: str, interval: float = 0.5, timeout: float = 15.0
) -> tuple[str, Counters]:
    """Scrape until two scrapes agree: handler counters reach the frontend a moment late.
    TimeoutError if they still move after ``timeout`` seconds (the load has not stopped)."""
    last = [parse_counters(scrape(metrics_url))]

    def agreeing() -> tuple[str, Counters] | None:
        text = scrape(metrics_url)
        counters = parse_counters(text)
        same, last[0] = counters == last[0], counters
        return (text, counters) if same else None

    time.sleep(interval)
    return poll_until(agreeing, timeout, "the server's counters kept moving", interval=interval)


@dataclass(frozen=True)
class ModelLoad:
    """What one model's server side did during a load run (means per request or per batch)."""

    model: str
    requests: float  # arrived at TorchServe (includes any it turned away with 503)
    handled: float  # reached our handler
    batches: float
    mean_queue_ms: float | None
    mean_inference_ms: float | None  # from leaving the queue to the last byte sent
    mean_server_ms: float | None  # queue + inference
    mean_batch_size: float | None
    mean_batch_latency_ms: float | None  # our handler's time per batch
    bad_requests: float
    failed_requests: float
    generated_tokens: float
    tokens_per_s: float | None


def _ratio(numerator: float, denominator: float, scale: float = 1.0) -> float | None:
    return numerator * scale / denominator if denominator > 0 else None


def summarize(before: Counters, after: Counters, seconds: float) -> list[ModelLoad]:
    """Per-model means over the run, for every model that saw traffic between the scrapes.

    Latency sums are divided by the requests that reached the handler: requests TorchServe
    rejects itself (queue full) add to ts_inference_requests_total but to no latency sum.
    """
    change = deltas(before, after)
    traffic = (canonical(REQUESTS), BATCH_REQUESTS)
    models = sorted({model for (name, model), n in change.items() if name in traffic and n > 0})
    loads = []
    for model in models:

        def get(name: str, model: str = model) -> float:
            return change.get((canonical(name), model), 0.0)

        requests_seen = get(REQUESTS)
        handled = get(BATCH_REQUESTS)
        answered = handled if handled > 0 else requests_seen
        queue_ms = _ratio(get(QUEUE_US), answered, 1e-3)
        server_ms = _ratio(get(LATENCY_US), answered, 1e-3)
        inference_ms = None if queue_ms is None or server_ms is None else server_ms - queue_ms
        loads.append(
            ModelLoad(
                model=model,
                requests=requests_seen,
                handled=handled,
                batches=get(BATCHES),
                mean_queue_ms=queue_ms,
                mean_inference_ms=inference_ms,
                mean_server_ms=server_ms,
                mean_batch_size=_ratio(handled, get(BATCHES)),
                mean_batch_latency_ms=_ratio(get(BATCH_LATENCY_MS), get(BATCHES)),
                bad_requests=get(BAD_REQUESTS),
                failed_requests=get(FAILED_REQUESTS),
                generated_tokens=get(GENERATED_TOKENS),
                tokens_per_s=_ratio(get(GENERATED_TOKENS), seconds),
            )
        )
    return loads


def _main() -> None:
    if len(sys.argv) > 1:
        url = sys.argv[1]
    else:
        from serving.connection import Connection

        url = Connection.from_run_dir().metrics_url
    for (name, model), value in sorted(parse_counters(scrape(url)).items()):
        print(f"{model:12} {name:40} {value:,.3f}")


if __name__ == "__main__":
    _main()
