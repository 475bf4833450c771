"""The project's benchmark: every speed figure of docs/benchmarks.md, side by side in ONE run.

    make bench                     # writes runs/bench/<time>/bench.md (with its duration)
    python -m benchmarks.readme_tables      # then write its tables into docs/benchmarks.md
    python -m benchmarks.run --duration 20 --skip-served
    python -m benchmarks.run --only sentiment               # one model's table

One table per served model, of the kind its registry entry declares (`handlers.registry.Bench`,
planned by benchmarks/sections.py). Classification: the bare predictor in the served layout
(the ceiling) against TorchServe under Locust, batched serving against batchSize 1, fp32
against the batch-invariant int8 classifier (speed and dev accuracy), and p99 latency at about
half of the saturated rate (a classifier whose entry names no ceilings: the served rows alone).
Generation: our batched engine against the textbook one-request `generate()` loop, fp32
against int8 (speed and validation nats/char), and served tokens/s at 64 streams and served
latency per token for one stream.
Each side's fair figure: served rate per core of the server's own processes (TorchServe's
frontend, workers and helpers, from the CPU split) against the bare model's rate per core
(benchmarks/efficiency.py), free of the cores Locust takes on this machine.
The machine is noisy (shared 2 cores): only ratios taken within one run mean much.
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from datetime import datetime
from pathlib import Path

import torch

from benchmarks import sections
from benchmarks.plot import plot
from benchmarks.results import (
    BENCH_MD,
    BENCH_RUNS,
    RunInfo,
    Table,
    archive_digests,
    git_commit,
    write_run,
)
from serving.lifecycle import missing_archives, missing_archives_message
from serving.server_config import DEFAULT_MODEL_STORE, DEFAULT_MODELS
from training.machine import cpu_model


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawTextHelpFormatter
    )
    parser.add_argument("--model-store", type=Path, default=DEFAULT_MODEL_STORE)
    parser.add_argument("--duration", type=int, default=30, help="seconds per Locust run")
    parser.add_argument("--users", type=int, default=48, help="Locust users for saturation")
    parser.add_argument("--tokens", type=int, default=128, help="tokens per generation request")
    parser.add_argument("--skip-served", action="store_true", help="in-process figures only")
    parser.add_argument(
        "--only", nargs="+", choices=DEFAULT_MODELS, default=(), help="these models' tables only"
    )
    args = parser.parse_args(argv)
    planned = sections.plan(only=args.only)
    missing = missing_archives(args.model_store, tuple(section.model for section in planned))
    if missing:
        sys.exit(f"error: {missing_archives_message(args.model_store, missing)}")
    out = BENCH_RUNS / datetime.now().strftime("%Y%m%d-%H%M%S")
    out.mkdir(parents=True, exist_ok=True)
    tables: list[Table] = []
    started = time.monotonic()
    with tempfile.TemporaryDirectory():
        for section in planned:
            tables.append(sections.measure(args, out, section))
    info = RunInfo(
        name=out.name,
        cpu_cores=os.cpu_count(),
        torch=torch.__version__,
        minutes=(time.monotonic() - started) / 60,
        arguments=" ".join(sys.argv[1:]),
        commit=git_commit(),
        archives=archive_digests(args.model_store),
        cpu_model=cpu_model(),
    )
    write_run(out, info, tables)
    print(f"wrote {out / BENCH_MD} and {plot(out)}")


if __name__ == "__main__":
    from training import cli

    cli.run(main)
