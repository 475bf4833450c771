"""A TorchServe setting measured against the server without it, for the sentiment model.

    python -m benchmarks.server_settings --set async_logging=true --rounds 2

``--set`` lines are added to (or replace) serving/config.properties' settings in the second
server only. Each round serves model_store/sentiment.mar with both servers in turn: Locust's
48 users without think time (saturation), then users with think time for about half of that
rate (`make bench`'s p99 setting), so both servers meet the machine's slow and fast spells
alike. Prints requests/s, p99 and p50 per server and round, and the CPU split at saturation.
"""

from __future__ import annotations

import argparse
from pathlib import Path

from benchmarks.harness import half_saturation, locust, server
from benchmarks.results import ROOT
from serving.server_config import DEFAULT_MODEL_STORE

ENDPOINT = "/predictions/sentiment"


def measure(store: Path, run_dir: Path, overrides: dict[str, str], seconds: int) -> str:
    """One server: saturated, then at about half that rate; a line of figures."""
    with server(store, ("sentiment",), run_dir, overrides):
        saturated = locust(
            run_dir, run_dir / "saturated", "classify", 48, seconds, {"LOADTEST_MAX_WAIT": "0"}
        )
        top = saturated["stats"][ENDPOINT]
        users, wait = half_saturation(top.requests_per_s)
        half = locust(
            run_dir, run_dir / "half", "classify", users, seconds, {"LOADTEST_MAX_WAIT": str(wait)}
        )["stats"][ENDPOINT]
    cpu = saturated["cpu"]
    return (
        f"saturated {top.requests_per_s:.0f}/s p99 {top.p99_ms:.0f} ms | "
        f"half {half.requests_per_s:.0f}/s p99 {half.p99_ms:.0f} ms p50 {half.p50_ms:.0f} ms | "
        f"CPU workers {cpu.workers:.2f}, "
        f"frontend {cpu.frontend:.2f}, other {cpu.other:.2f}, idle {cpu.idle:.2f}"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--set", action="append", default=[], metavar="KEY=VALUE")
    parser.add_argument("--model-store", type=Path, default=DEFAULT_MODEL_STORE)
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--seconds", type=int, default=20)
    args = parser.parse_args()
    overrides = dict(item.split("=", 1) for item in args.set)
    out = ROOT / "runs" / "server-settings"
    servers = {"as configured": {}, ", ".join(args.set) or "(nothing set)": overrides}
    for round_ in range(args.rounds):
        for index, (name, settings) in enumerate(servers.items()):
            run_dir = out / f"{index}-{round_}"
            figures = measure(args.model_store, run_dir, settings, args.seconds)
            print(f"round {round_ + 1}, {name}: {figures}", flush=True)


if __name__ == "__main__":
    main()
