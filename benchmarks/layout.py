"""Choose the worker layout by measurement: workers x threads, batchSize, maxBatchDelay.

    python -m benchmarks.layout --model sentiment
    python -m benchmarks.layout --model lm --repeats 3
    python -m benchmarks.layout --model sentiment --users 107 --wait 0.2   # tails at part load
    python -m benchmarks.layout --model lm --list     # the candidates only, nothing is run

Each candidate is archived with its own model-config, served, and saturated by Locust for the
same time (or, with ``--wait``, loaded by users who think up to that many seconds between
requests: the same offered load for every candidate, to compare their tails), in ``--repeats``
interleaved rounds (median and spread reported, since this
machine's runs differ by tens of percent); the table goes to runs/layout/<time>/layout.md.
The candidates are the served settings of handlers/<model>/model-config.yaml, then the changes
its registry entry declares (`handlers.registry.Layout`), which also names the load scenario
and what is counted. The winner is then written by hand into that model-config.yaml (the one
source of truth).
"""

from __future__ import annotations

import argparse
import statistics
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

import yaml

from benchmarks.harness import locust, served_settings, server
from benchmarks.results import ROOT, Table
from handlers import registry
from loadtest.report import FIRST_CHUNK
from serving.server_config import DEFAULT_MODEL_STORE
from training.archive import build_archive, unpack_archive

FRONTEND = ("workers", "threads", "batchSize", "maxBatchDelay")  # the rest are handler options


def as_served(config: dict[str, Any], options: tuple[str, ...]) -> dict[str, Any]:
    """A model-config.yaml in the candidates' terms: the frontend's four settings, then the
    handler ``options`` the model's layout search varies."""
    handler = config.get("handler") or {}
    served = {
        "workers": config["minWorkers"],
        "threads": handler.get("torch_threads", 1),
        "batchSize": config["batchSize"],
        "maxBatchDelay": config["maxBatchDelay"],
    }
    return {**served, **{option: handler[option] for option in options}}


def candidates(model: registry.ServedModel, config: dict[str, Any]) -> list[dict[str, Any]]:
    """The model as served (``config``), changed one way at a time as its entry declares."""
    served = as_served(config, model.layout.options)
    return [{**served, **change} for change in model.layout.changes]


def model_config(base: dict, candidate: dict) -> dict:
    config = {**base, "batchSize": candidate["batchSize"]}
    config.update(minWorkers=candidate["workers"], maxWorkers=candidate["workers"])
    config["maxBatchDelay"] = candidate["maxBatchDelay"]
    handler = {key: value for key, value in candidate.items() if key not in FRONTEND}
    config["handler"] = {**base.get("handler", {}), "torch_threads": candidate["threads"]}
    config["handler"].update(handler)
    return config


@dataclass
class Measured:
    rate: float  # tokens/s (lm) or requests/s (sentiment)
    note: str
    p99_ms: float


def archive_candidate(args, out: Path, artifact: Path, base: dict, index: int, candidate) -> Path:
    config_file = out / f"config-{index}.yaml"
    config_file.write_text(yaml.safe_dump(model_config(base, candidate)))
    store = out / f"store-{index}"
    build_archive(args.model, artifact, store, config_file)
    return store


def measure(args, out: Path, store: Path, name: str) -> Measured:
    """One saturation run of one candidate's archive."""
    run_dir = out / f"server-{name}"
    env = {"LOADTEST_MAX_WAIT": str(args.wait), "LOADTEST_MAX_NEW_TOKENS": "128"}
    model = registry.get(args.model)
    with server(store, (args.model,), run_dir):
        result = locust(
            run_dir, out / f"locust-{name}", model.layout_scenario, args.users, args.duration, env
        )
    load = result["loads"][args.model]
    stats = result["stats"][f"/predictions/{args.model}"]
    tokens = model.layout.throughput == "tokens"
    rate = (load.tokens_per_s or 0.0) if tokens else stats.requests_per_s
    first = result["stats"].get(FIRST_CHUNK)
    first_note = f", first chunk p99 {first.p99_ms:.0f} ms" if first and first.p99_ms else ""
    note = (
        f"p99 {stats.p99_ms:.0f} ms{first_note}, mean batch "
        f"{load.mean_batch_size or 0:.1f}, failures {stats.failures}"
    )
    return Measured(rate, note, stats.p99_ms)


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawTextHelpFormatter
    )
    parser.add_argument("--model", choices=registry.names(), default="sentiment")
    parser.add_argument("--model-store", type=Path, default=DEFAULT_MODEL_STORE)
    parser.add_argument("--duration", type=int, default=20)
    parser.add_argument("--users", type=int, default=64)
    parser.add_argument("--only", type=int, nargs="*", help="indices of candidates to run")
    parser.add_argument("--repeats", type=int, default=2, help="interleaved rounds (median)")
    parser.add_argument("--wait", type=float, default=0.0, help="users' longest think time, s")
    parser.add_argument("--list", action="store_true", help="print the candidates and stop")
    args = parser.parse_args()
    model = registry.get(args.model)
    if args.list:
        config = yaml.safe_load(model.config.read_text())
        for index, candidate in enumerate(candidates(model, config)):
            print(index, ", ".join(f"{k} {v}" for k, v in candidate.items()))
        return
    out = ROOT / "runs" / "layout" / f"{args.model}-{datetime.now():%Y%m%d-%H%M%S}"
    out.mkdir(parents=True, exist_ok=True)
    artifact = unpack_archive(args.model_store / f"{args.model}.mar", out / "artifact")
    base = served_settings(args.model)
    think = f"think time up to {args.wait} s" if args.wait else "no think time"
    table = Table(
        f"Worker layout for {args.model} ({args.users} Locust users, {think}, "
        f"median of {args.repeats} interleaved rounds)"
    )
    chosen = [
        (index, candidate)
        for index, candidate in enumerate(candidates(model, base))
        if not args.only or index in args.only
    ]
    stores = {index: archive_candidate(args, out, artifact, base, index, c) for index, c in chosen}
    rounds: dict[int, list[Measured]] = {index: [] for index, _ in chosen}
    for repeat in range(args.repeats):  # interleaved: a slow spell hits every candidate alike
        for index, _ in chosen:
            rounds[index].append(measure(args, out, stores[index], f"{index}-{repeat}"))
    for index, candidate in chosen:
        results = rounds[index]
        rates = sorted(r.rate for r in results)
        middle = results[[r.rate for r in results].index(statistics.median_high(rates))]
        unit = "tok/s" if model.layout.throughput == "tokens" else "/s"
        spread = f" ({rates[0]:.0f}-{rates[-1]:.0f})" if len(rates) > 1 else ""
        label = ", ".join(f"{k} {v}" for k, v in candidate.items())
        tails = ", ".join(f"{r.p99_ms:.0f}" for r in results)
        note = f"{middle.note}; p99 by round {tails} ms"
        table.add(label, f"{middle.rate:.0f} {unit}{spread}", note)
    (out / "layout.md").write_text(table.markdown())
    print(f"wrote {out / 'layout.md'}")


if __name__ == "__main__":
    main()
