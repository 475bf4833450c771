"""Choose the worker layout by measurement: workers x threads, batchSize, maxBatchDelay.

    python -m benchmarks.layout --model sentiment     # ~3 minutes
    python -m benchmarks.layout --model lm           # ~5 minutes

Each candidate is archived with its own model-config, served, and saturated by Locust for the
same time, one after the other in one run; the table goes to runs/layout/<time>/layout.md. The
winner is then written by hand into serving/<model>-config.yaml (the one source of truth).
"""

from __future__ import annotations

import argparse
from datetime import datetime
from pathlib import Path

import yaml

from benchmarks.run import ROOT, Table, locust, served_settings, server, unpack
from loadtest.report import FIRST_CHUNK
from training.archive import build_archive

CANDIDATES = {
    "sentiment": [
        {"workers": 2, "threads": 1, "batchSize": 16, "maxBatchDelay": 5},
        {"workers": 1, "threads": 2, "batchSize": 16, "maxBatchDelay": 5},
        {"workers": 2, "threads": 1, "batchSize": 32, "maxBatchDelay": 5},
        {"workers": 2, "threads": 1, "batchSize": 8, "maxBatchDelay": 5},
        {"workers": 2, "threads": 1, "batchSize": 16, "maxBatchDelay": 20},
    ],
    # Continuous batching: one worker (see serving/lm-config.yaml); what is left to choose is
    # its threads, how many rows it decodes together and how many tokens per handler call.
    "lm": [
        {"workers": 1, "threads": 1, "batchSize": 64, "maxBatchDelay": 1, "tokens_per_call": 2},
        {"workers": 1, "threads": 1, "batchSize": 64, "maxBatchDelay": 1, "tokens_per_call": 4},
        {"workers": 1, "threads": 1, "batchSize": 64, "maxBatchDelay": 1, "tokens_per_call": 8},
        {"workers": 1, "threads": 1, "batchSize": 64, "maxBatchDelay": 1, "tokens_per_call": 16},
        {"workers": 1, "threads": 1, "batchSize": 64, "maxBatchDelay": 1, "tokens_per_call": 32},
        {"workers": 1, "threads": 2, "batchSize": 64, "maxBatchDelay": 1, "tokens_per_call": 8},
        {"workers": 1, "threads": 1, "batchSize": 96, "maxBatchDelay": 1, "tokens_per_call": 8},
    ],
}
SCENARIO = {"sentiment": "classify", "lm": "generation"}  # lm: half of the users stream


def model_config(base: dict, candidate: dict) -> dict:
    config = {**base, "batchSize": candidate["batchSize"]}
    config.update(minWorkers=candidate["workers"], maxWorkers=candidate["workers"])
    config["maxBatchDelay"] = candidate["maxBatchDelay"]
    config["handler"] = {**base.get("handler", {}), "torch_threads": candidate["threads"]}
    if "tokens_per_call" in candidate:
        config["handler"]["tokens_per_call"] = candidate["tokens_per_call"]
    return config


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawTextHelpFormatter
    )
    parser.add_argument("--model", choices=sorted(CANDIDATES), default="sentiment")
    parser.add_argument("--model-store", type=Path, default=ROOT / "model_store")
    parser.add_argument("--duration", type=int, default=20)
    parser.add_argument("--users", type=int, default=64)
    parser.add_argument("--only", type=int, nargs="*", help="indices of candidates to run")
    args = parser.parse_args()
    out = ROOT / "runs" / "layout" / f"{args.model}-{datetime.now():%Y%m%d-%H%M%S}"
    out.mkdir(parents=True, exist_ok=True)
    artifact = unpack(args.model_store / f"{args.model}.mar", out / "artifact")
    base = served_settings(args.model)
    table = Table(f"Worker layout for {args.model} ({args.users} Locust users, no think time)")
    for index, candidate in enumerate(CANDIDATES[args.model]):
        if args.only and index not in args.only:
            continue
        config_file = out / f"config-{index}.yaml"
        config_file.write_text(yaml.safe_dump(model_config(base, candidate)))
        store = out / f"store-{index}"
        build_archive(args.model, artifact, store, config_file)
        run_dir = out / f"server-{index}"
        env = {"LOADTEST_MAX_WAIT": "0", "LOADTEST_MAX_NEW_TOKENS": "128"}
        with server(store, (args.model,), run_dir):
            result = locust(
                run_dir,
                out / f"locust-{index}",
                SCENARIO[args.model],
                args.users,
                args.duration,
                env,
            )
        load = result["loads"][args.model]
        endpoint = f"/predictions/{args.model}"
        stats = result["stats"][endpoint]
        throughput = (
            f"{load.tokens_per_s:.0f} tok/s"
            if args.model == "lm"
            else f"{stats.requests_per_s:.0f} /s"
        )
        label = ", ".join(f"{k} {v}" for k, v in candidate.items())
        first = result["stats"].get(FIRST_CHUNK)
        first_note = f", first chunk p99 {first.p99_ms:.0f} ms" if first and first.p99_ms else ""
        table.add(
            label,
            throughput,
            f"p99 {stats.p99_ms:.0f} ms{first_note}, mean batch "
            f"{load.mean_batch_size or 0:.1f}, failures {stats.failures}",
        )
    (out / "layout.md").write_text(table.markdown())
    print(f"wrote {out / 'layout.md'}")


if __name__ == "__main__":
    main()
