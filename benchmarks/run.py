"""The project's benchmark: every speed figure of the README, measured side by side in ONE run.

    make bench                     # writes runs/bench/<time>/bench.md (with its duration)
    python -m benchmarks.run --duration 20 --skip-served

Classification: the bare predictor in the served layout (the ceiling) against TorchServe under
Locust, batched serving against batchSize 1, fp32 against the batch-invariant int8 classifier
(speed and dev accuracy), and p99 latency at about half of the saturated rate. Generation: our
batched engine against the textbook one-request `generate()` loop, fp32 against int8 (speed and
validation nats/char), and served tokens/s at 64 streams and served latency per token for one
stream.
The machine is noisy (shared 2 cores): only ratios taken within one run mean much.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

import torch
import yaml

from benchmarks.ceiling import classify_ceiling
from benchmarks.cpu import cpu_split
from benchmarks.generation import (
    batch_tokens_per_second,
    best_textbook_tokens_per_second,
    engine_tokens_per_second,
    load_mix_requests,
    mix_ceiling,
)
from benchmarks.plot import plot
from loadtest import metrics, report
from loadtest import run as loadtest
from models.classifier import SentimentPredictor
from models.generation import Generator
from serving.client import generate, generate_stream
from serving.server import (
    DEFAULT_MODELS,
    ServerConfig,
    missing_archives,
    server_pid,
    start,
    stop,
)
from training.archive import archive_info, build_archive, model_config_path, unpack_archive
from training.data import load_sentiment, load_text, split_text
from training.evaluate_lm import load_lm, score_text

ROOT = Path(__file__).resolve().parent.parent


@dataclass
class Table:
    """Rows of (measure, value, note) printed and written as markdown."""

    title: str
    rows: list[tuple[str, str, str]] = field(default_factory=list)

    def add(self, measure: str, value: str, note: str = "") -> None:
        self.rows.append((measure, value, note))
        print(f"  {measure:<58} {value:>14}  {note}", flush=True)

    def markdown(self) -> str:
        lines = [f"### {self.title}", "", "| measure | value | note |", "|---|---|---|"]
        lines += [f"| {m} | {v} | {n} |" for m, v, n in self.rows]
        return "\n".join(lines) + "\n"


def served_settings(name: str, model_store: Path | None = None) -> dict[str, Any]:
    """The model config packed in ``<model_store>/<name>.mar`` (what the server will run), or,
    without a store, the one in serving/ (what a new archive would get)."""
    if model_store is not None:
        return archive_info(model_store / f"{name}.mar")[1]
    return yaml.safe_load(model_config_path(name).read_text())


@contextmanager
def server(store: Path, models: tuple[str, ...], run_dir: Path):
    config = ServerConfig.on_free_ports(model_store=store, run_dir=run_dir, models=models)
    connection = start(config, timeout=300)
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


def classification(args, out: Path, tables: list[Table]) -> None:
    table = Table("Classification (sentiment)")
    tables.append(table)
    settings = served_settings("sentiment", args.model_store)
    batch, workers = settings["batchSize"], settings["minWorkers"]
    threads = settings["handler"]["torch_threads"]
    artifact = unpack_archive(args.model_store / "sentiment.mar", out / "sentiment-artifact")
    dev = load_sentiment("sst2")["dev"]
    texts, labels = list(dev["sentence"]), list(dev["label"])

    for quantize in (None, "int8"):
        torch.set_num_threads(2)
        predictor = SentimentPredictor.from_artifact(artifact, quantize=quantize)
        predicted = [p["label"] for p in predictor.predict(texts)]
        correct = sum(p == predictor.labels[y] for p, y in zip(predicted, labels, strict=True))
        table.add(
            f"dev accuracy, {quantize or 'fp32'}",
            f"{correct / len(texts):.4f}",
            "872 SST-2 dev sentences",
        )
    ceilings = {}
    for quantize in (None, "int8"):
        ceilings[quantize] = classify_ceiling(
            str(artifact), texts, batch, workers, threads, args.duration / 2, quantize
        )
        table.add(
            f"ceiling: bare predictor, {workers} proc x {threads} thread, batch {batch}, "
            f"{quantize or 'fp32'}",
            f"{ceilings[quantize]:.0f} /s",
            "sentences per second",
        )
    if args.skip_served:
        return
    served: dict[str, float] = {}
    for variant, batch_size in (("served", batch), ("batch1", 1)):
        store = out / f"store-{variant}"
        config = {**settings, "batchSize": batch_size}
        config_file = out / f"sentiment-{variant}.yaml"
        config_file.write_text(yaml.safe_dump(config))
        build_archive("sentiment", artifact, store, config_file)
        run_dir = out / f"server-{variant}"
        with server(store, ("sentiment",), run_dir):
            result = locust(
                run_dir,
                out / f"locust-{variant}",
                "classify",
                args.users,
                args.duration,
                {"LOADTEST_MAX_WAIT": "0"},
            )
        rate = result["stats"]["/predictions/sentiment"].requests_per_s
        served[variant] = rate
        load = result["loads"]["sentiment"]
        table.add(
            f"served under Locust ({args.users} users, no wait), batchSize {batch_size}",
            f"{rate:.0f} /s",
            f"p99 {result['stats']['/predictions/sentiment'].p99_ms:.0f} ms, "
            f"mean batch {load.mean_batch_size or 0:.1f}, failures "
            f"{result['stats']['/predictions/sentiment'].failures}",
        )
        table.add(f"CPU while served, batchSize {batch_size}", result["cpu"].describe(), "")
        if variant == "served":
            half_users, wait = half_saturation(rate)
            with server(store, ("sentiment",), out / "server-half"):
                result = locust(
                    out / "server-half",
                    out / "locust-half",
                    "classify",
                    half_users,
                    args.duration,
                    {"LOADTEST_MAX_WAIT": str(wait)},
                )
            half = result["stats"]["/predictions/sentiment"]
            table.add(
                f"p99 at ~half saturation ({half.requests_per_s:.0f} /s, {half_users} users)",
                f"{half.p99_ms:.0f} ms",
                f"p50 {half.p50_ms:.0f} ms; goal <= 50 ms",
            )
    chosen = ceilings[settings["handler"].get("quantize")]
    table.add("served / ceiling of the served model", f"{served['served'] / chosen:.2f}", "")
    table.add("served / fp32 ceiling", f"{served['served'] / ceilings[None]:.2f}", "goal >= 0.9")
    table.add("batched / batchSize 1", f"{served['served'] / served['batch1']:.2f}", "goal >= 3")


def half_saturation(saturated: float) -> tuple[int, float]:
    """Users and think time for about half the saturated rate: each user sends one request
    per (mean think time + latency), so rate ~ users / (wait / 2 + 0.02 s)."""
    wait = 0.2
    users = max(1, round(0.5 * saturated * (wait / 2 + 0.02)))
    return users, wait


def generation(args, out: Path, tables: list[Table]) -> None:
    table = Table("Generation (language model)")
    tables.append(table)
    artifact = unpack_archive(args.model_store / "lm.mar", out / "lm-artifact")
    validation = split_text(load_text("tinyshakespeare"))[1]
    torch.set_num_threads(2)
    for quantize in (None, "int8"):
        scored = score_text(*load_lm(artifact, quantize), validation)
        table.add(
            f"validation nats/char, {quantize or 'fp32'}",
            f"{scored['nats_per_char']:.4f}",
            f"{scored['tokens']} tokens, {scored['chars']} chars",
        )
    model, tokenizer = load_lm(artifact)
    prompt = tokenizer.encode("ROMEO:")
    baseline = best_textbook_tokens_per_second(model, prompt, args.tokens)
    textbook = baseline.rate
    table.add(
        "textbook loop (nn.LSTM step + multinomial), 1 request",
        f"{textbook:.0f} tok/s",
        f"median of 3 x >= 2 s (spread {baseline.low:.0f}-{baseline.high:.0f}), warmed up, "
        f"{baseline.threads} thread(s): the better of 1 and 2",
    )
    for quantize in (None, "int8"):
        generator = Generator.from_artifact(artifact, quantize=quantize)
        for streams in (1, 16, 64):
            rate = engine_tokens_per_second(generator, streams, args.tokens)
            table.add(
                f"engine, {quantize or 'fp32'}, {streams} streams",
                f"{rate:.0f} tok/s",
                f"{rate / textbook:.1f}x textbook",
            )
    settings = served_settings("lm", args.model_store)
    served_mode = settings["handler"].get("quantize")
    mix = batch_tokens_per_second(
        Generator.from_artifact(artifact, quantize=served_mode),
        load_mix_requests(64, args.tokens),
    )
    table.add(
        f"engine, {served_mode or 'fp32'}, 64 streams of Locust's request mix, 1 process",
        f"{mix:.0f} tok/s",
        "validation prompts (prefill included), mixed sampling and stops; 2 threads",
    )
    # The served layout's decoding processes: each worker, and its helper (decode_processes).
    workers = settings["minWorkers"] * int(settings["handler"].get("decode_processes", 1))
    threads = settings["handler"]["torch_threads"]
    ceiling = mix_ceiling(str(artifact), served_mode, 64, args.tokens, workers, threads)
    table.add(
        f"engine, same mix, served layout ({workers} proc x {threads} thread)",
        f"{ceiling:.0f} tok/s",
        f"{64 // workers} streams per process, all at once: the best raw loop",
    )
    if args.skip_served:
        return
    run_dir = out / "server-lm"
    with server(args.model_store, ("lm",), run_dir):
        served_generation(args, out, run_dir, table, textbook, max(mix, ceiling))
        latency = single_stream_latency(run_dir, args.tokens)
        table.add(
            "served single stream: time per output token after the first",
            f"{latency['per_token_ms']:.2f} ms",
            "one client streaming one request at a time; goal <= 1 ms",
        )
        table.add(
            "served single stream: time to first chunk",
            f"{latency['first_ms']:.0f} ms",
            f"a lone request: prompt + {settings['handler']['tokens_per_call']} tokens "
            "(one handler call); goal <= 20 ms",
        )
        continuation_costs(run_dir, table)


def served_generation(
    args, out: Path, run_dir: Path, table: Table, textbook: float, best_raw: float
) -> None:
    """64 Locust users without think time, half of them streaming (the first chunk timed)."""
    result = locust(
        run_dir,
        out / "locust-lm64",
        "generation",
        64,
        args.duration,
        {"LOADTEST_MAX_WAIT": "0", "LOADTEST_MAX_NEW_TOKENS": str(args.tokens)},
    )
    served = result["loads"]["lm"].tokens_per_s or 0.0
    table.add(
        "served, 64 streams (Locust, no wait)",
        f"{served:.0f} tok/s",
        f"mean rows per handler call {result['loads']['lm'].mean_batch_size or 0:.1f}",
    )
    table.add(
        "served / best raw loop, same request mix, 64 streams",
        f"{served / best_raw:.2f}",
        "goal >= 0.9",
    )
    table.add("served at 64 streams / textbook loop", f"{served / textbook:.1f}x", "goal >= 40x")
    table.add("CPU while served at 64 streams", result["cpu"].describe(), "")
    first = result["stats"].get(report.FIRST_CHUNK)
    if first is not None and first.p99_ms is not None:
        table.add(
            "served at 64 streams: time to first chunk, p50 / p99",
            f"{first.p50_ms:.0f} / {first.p99_ms:.0f} ms",
            f"{first.requests} streams",
        )


HISTORY_CHARS = (10, 1000, 3990)  # 3,990 + the new line stay inside the 4,000-character prompt
FOLLOW_UP = "\nROMEO:\n"


def continuation_costs(run_dir: Path, table: Table, repeats: int = 9) -> None:
    """Time to first chunk of a follow-up after a history of each length: continuing a
    session (the server reads only the new line) against resending the whole text."""
    from serving.server import Connection

    connection = Connection.from_run_dir(run_dir)
    validation = split_text(load_text("tinyshakespeare"))[1]
    follow = {"max_new_tokens": 16, "temperature": 0.8, "seed": 1}
    flat = {}
    for chars in HISTORY_CHARS:
        history = validation[:chars]
        resend, session = [], []
        for _ in range(repeats):
            opened = generate(
                connection, {"prompt": history, "max_new_tokens": 1, "session": "new"}
            )
            whole = history + opened["text"] + FOLLOW_UP
            resend.append(first_chunk_ms(connection, {**follow, "prompt": whole}))
            body = {
                **follow,
                "prompt": FOLLOW_UP,
                "session": opened["session"],
                "end_session": True,
            }
            session.append(first_chunk_ms(connection, body))
        flat[chars] = statistics.median(session)
        table.add(
            f"follow-up after {chars:,} chars of history: first chunk, session / resend",
            f"{flat[chars]:.0f} / {statistics.median(resend):.0f} ms",
            f"median of {repeats}",
        )
    table.add(
        "session follow-up, first chunk at the longest / shortest history",
        f"{flat[HISTORY_CHARS[-1]] / flat[HISTORY_CHARS[0]]:.2f}x",
        "goal <= 1.2x (flat)",
    )


def timed_stream(connection, payload: dict[str, Any]) -> tuple[float, float, int]:
    """(ms to the first chunk, ms to the end, generated tokens) of one streamed request, read
    to its end so that the server is idle again for the next measurement."""
    started = time.perf_counter()
    first, generated = None, 0
    for chunk in generate_stream(connection, payload):
        first = first or time.perf_counter()
        generated = chunk.get("generated_tokens", generated)
    ended = time.perf_counter()
    return (first - started) * 1000, (ended - started) * 1000, generated


def first_chunk_ms(connection, payload: dict[str, Any]) -> float:
    return timed_stream(connection, payload)[0]


def single_stream_latency(run_dir: Path, tokens: int, requests_count: int = 5) -> dict[str, float]:
    """One client streaming one request at a time: mean time to the first chunk, and the time
    per output token after it (the inter-token latency a reader of the stream sees)."""
    from serving.server import Connection

    connection = Connection.from_run_dir(run_dir)
    payload = {"prompt": "ROMEO:", "max_new_tokens": tokens, "temperature": 0.8, "stop": []}
    first_ms, per_token_ms = [], []
    for seed in range(requests_count):
        first, total, generated = timed_stream(connection, {**payload, "seed": seed})
        first_ms.append(first)
        per_token_ms.append((total - first) / max(1, generated - 1))
    return {"first_ms": statistics.mean(first_ms), "per_token_ms": statistics.mean(per_token_ms)}


def provenance(args: argparse.Namespace) -> str:
    """What this run measured: its arguments, the commit, and the archives by hash."""
    try:
        commit = subprocess.run(
            ["git", "rev-parse", "--short", "HEAD"],
            cwd=ROOT,
            capture_output=True,
            text=True,
            check=True,
        ).stdout.strip()
        dirty = subprocess.run(["git", "diff", "--quiet"], cwd=ROOT, check=False).returncode
        commit += " (with uncommitted changes)" if dirty else ""
    except (OSError, subprocess.CalledProcessError):
        commit = "unknown (not a git checkout)"
    lines = [f"Arguments: `{' '.join(sys.argv[1:]) or '(defaults)'}`; commit {commit}.", ""]
    for archive in sorted(Path(args.model_store).glob("*.mar")):
        digest = hashlib.sha256(archive.read_bytes()).hexdigest()[:16]
        lines.append(f"- `{archive.name}` sha256 {digest}…")
    return "\n".join(lines) + "\n\n"


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawTextHelpFormatter
    )
    parser.add_argument("--model-store", type=Path, default=ROOT / "model_store")
    parser.add_argument("--duration", type=int, default=30, help="seconds per Locust run")
    parser.add_argument("--users", type=int, default=48, help="Locust users for saturation")
    parser.add_argument("--tokens", type=int, default=128, help="tokens per generation request")
    parser.add_argument("--skip-served", action="store_true", help="in-process figures only")
    parser.add_argument("--only", choices=("classification", "generation"), default=None)
    args = parser.parse_args(argv)
    missing = missing_archives(args.model_store, DEFAULT_MODELS)
    if missing:
        sys.exit(f"error: no {', '.join(missing)} archive in {args.model_store}: run `make models`")
    out = ROOT / "runs" / "bench" / datetime.now().strftime("%Y%m%d-%H%M%S")
    out.mkdir(parents=True, exist_ok=True)
    tables: list[Table] = []
    started = time.monotonic()
    with tempfile.TemporaryDirectory():
        if args.only in (None, "classification"):
            print("classification", flush=True)
            classification(args, out, tables)
        if args.only in (None, "generation"):
            print("generation", flush=True)
            generation(args, out, tables)
    header = (
        f"# Benchmark {out.name}\n\nOne run, {os.cpu_count()} CPU cores, "
        f"torch {torch.__version__}, {(time.monotonic() - started) / 60:.1f} min.\n\n"
        + provenance(args)
    )
    (out / "bench.md").write_text(header + "\n".join(t.markdown() for t in tables))
    (out / "bench.json").write_text(json.dumps([t.__dict__ for t in tables], indent=2))
    print(f"wrote {out / 'bench.md'} and {plot(out)}")


if __name__ == "__main__":
    from training import cli

    cli.run(main)
