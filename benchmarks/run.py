"""The project's benchmark: every speed figure of docs/benchmarks.md, side by side in ONE run.

    make bench                     # writes runs/bench/<time>/bench.md (with its duration)
    python -m benchmarks.readme_tables      # then write its tables into docs/benchmarks.md
    python -m benchmarks.run --duration 20 --skip-served

Classification: the bare predictor in the served layout (the ceiling) against TorchServe under
Locust, batched serving against batchSize 1, fp32 against the batch-invariant int8 classifier
(speed and dev accuracy), and p99 latency at about half of the saturated rate. Generation: our
batched engine against the textbook one-request `generate()` loop, fp32 against int8 (speed and
validation nats/char), and served tokens/s at 64 streams and served latency per token for one
stream.
Each side's fair figure: served rate per core of the server's own processes (TorchServe's
frontend, workers and helpers, from the CPU split) against the bare model's rate per core
(benchmarks/efficiency.py), free of the cores Locust takes on this machine.
The machine is noisy (shared 2 cores): only ratios taken within one run mean much.
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import tempfile
import time
from datetime import datetime
from pathlib import Path
from typing import Any

import torch
import yaml

from benchmarks import scoring
from benchmarks.ceiling import classify_ceiling
from benchmarks.cpu import CpuSplit
from benchmarks.efficiency import CLASSIFY_PER_CORE_GOAL, GENERATE_PER_CORE_GOAL, efficiency_row
from benchmarks.generation import (
    batch_tokens_per_second,
    best_textbook_tokens_per_second,
    engine_tokens_per_second,
    load_mix_requests,
    mix_ceiling,
)
from benchmarks.harness import half_saturation, locust, served_settings, server, server_percentiles
from benchmarks.plot import plot
from benchmarks.results import (
    BENCH_MD,
    BENCH_RUNS,
    ROOT,
    RunInfo,
    Table,
    archive_digests,
    cpu_model,
    git_commit,
    write_run,
)
from benchmarks.streams import follow_up_first_chunks, single_stream_latency
from loadtest import report
from models.classifier_predictor import ClassifierPredictor
from models.generation import Generator
from serving.connection import Connection
from serving.lifecycle import missing_archives, missing_archives_message
from serving.server_config import DEFAULT_MODELS
from training.archive import build_archive, unpack_archive
from training.data import load_sentiment, load_text, split_text
from training.evaluate_lm import load_lm, score_text

HISTORY_CHARS = (10, 1000, 3990)  # 3,990 + the new line stay inside the 4,000-character prompt


def classification(args: argparse.Namespace, out: Path, tables: list[Table]) -> None:
    """Dev accuracy and the bare predictor's ceiling in fp32 and int8, then the served rate
    batched and one by one, and p99 at about half of the batched rate."""
    table = Table("Classification (sentiment)")
    tables.append(table)
    settings = served_settings("sentiment", args.model_store)
    artifact = unpack_archive(args.model_store / "sentiment.mar", out / "sentiment-artifact")
    dev = load_sentiment("sst2")["dev"]
    texts, labels = list(dev["sentence"]), list(dev["label"])
    classifier_dev_accuracy(artifact, texts, labels, table)
    ceilings = classifier_ceilings(args, artifact, texts, settings, table)
    if args.skip_served:
        return
    served: dict[str, float] = {}
    for variant, batch_size in (("served", settings["batchSize"]), ("batch1", 1)):
        store = archive_with_batch_size(out, artifact, settings, variant, batch_size)
        served[variant], split = saturated_classifier(args, out, store, variant, batch_size, table)
        if variant == "served":
            served_split = split
            p99_at_half_saturation(args, out, store, served[variant], table)
    chosen = ceilings[settings["handler"].get("quantize")]
    table.add("served / ceiling of the served model", f"{served['served'] / chosen:.2f}", "")
    # The bare predictor's processes each keep their threads busy for the whole timed run.
    bare_cores = settings["minWorkers"] * settings["handler"]["torch_threads"]
    row = efficiency_row("classification", "/s", served["served"], served_split, chosen, bare_cores)
    table.add(*row, goal=CLASSIFY_PER_CORE_GOAL)
    table.add("served / fp32 ceiling", f"{served['served'] / ceilings[None]:.2f}", "goal >= 0.9")
    table.add("batched / batchSize 1", f"{served['served'] / served['batch1']:.2f}", "goal >= 3")


def classifier_dev_accuracy(artifact: Path, texts: list, labels: list, table: Table) -> None:
    """fp32 and int8 on SST-2 dev: quantizing must not cost accuracy."""
    for quantize in (None, "int8"):
        torch.set_num_threads(2)
        predictor = ClassifierPredictor.from_artifact(artifact, quantize=quantize)
        predicted = [p["label"] for p in predictor.predict(texts)]
        correct = sum(p == predictor.labels[y] for p, y in zip(predicted, labels, strict=True))
        table.add(
            f"dev accuracy, {quantize or 'fp32'}",
            f"{correct / len(texts):.4f}",
            "872 SST-2 dev sentences",
        )


def classifier_ceilings(
    args: argparse.Namespace, artifact: Path, texts: list, settings: dict[str, Any], table: Table
) -> dict[str | None, float]:
    """Sentences/s of the bare predictor in the served layout, fp32 and int8: what serving
    could reach with nothing else on the cores."""
    batch, workers = settings["batchSize"], settings["minWorkers"]
    threads = settings["handler"]["torch_threads"]
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
    return ceilings


def archive_with_batch_size(
    out: Path, artifact: Path, settings: dict[str, Any], variant: str, batch_size: int
) -> Path:
    """A model store holding the sentiment archive with only its batchSize changed."""
    store = out / f"store-{variant}"
    config_file = out / f"sentiment-{variant}.yaml"
    config_file.write_text(yaml.safe_dump({**settings, "batchSize": batch_size}))
    build_archive("sentiment", artifact, store, config_file)
    return store


def saturated_classifier(
    args: argparse.Namespace, out: Path, store: Path, variant: str, batch_size: int, table: Table
) -> tuple[float, CpuSplit]:
    """Requests/s served to Locust users without think time, and where the cores went."""
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
    stats = result["stats"]["/predictions/sentiment"]
    load = result["loads"]["sentiment"]
    table.add(
        f"served under Locust ({args.users} users, no wait), batchSize {batch_size}",
        f"{stats.requests_per_s:.0f} /s",
        f"p99 {stats.p99_ms:.0f} ms, mean batch {load.mean_batch_size or 0:.1f}, failures "
        f"{stats.failures}",
    )
    table.add(f"CPU while served, batchSize {batch_size}", result["cpu"].describe(), "")
    return stats.requests_per_s, result["cpu"]


def p99_at_half_saturation(
    args: argparse.Namespace, out: Path, store: Path, saturated: float, table: Table
) -> None:
    """The latency a moderately loaded server gives: users with think time for half the rate."""
    half_users, wait = half_saturation(saturated)
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
    inside = server_percentiles(out / "server-half", "/predictions/sentiment", (0.5, 0.99))
    if inside:
        table.add(
            "the same, in the server (its access log): p50 / p99",
            f"{inside[0]} / {inside[1]} ms",
            "from receiving a request to answering it",
        )
    table.add("CPU at ~half saturation", result["cpu"].describe(), "")


def generation(args: argparse.Namespace, out: Path, tables: list[Table]) -> None:
    """Validation nats/char, the textbook loop against our engine in process, then the served
    tokens/s at 64 streams and what one stream and a follow-up wait."""
    table = Table("Generation (language model)")
    tables.append(table)
    artifact = unpack_archive(args.model_store / "lm.mar", out / "lm-artifact")
    validation = split_text(load_text("tinyshakespeare"))[1]
    torch.set_num_threads(2)
    lm_validation_quality(artifact, validation, table)
    textbook = textbook_rate(artifact, args.tokens, table)
    engine_rates(artifact, args.tokens, textbook, table)
    settings = served_settings("lm", args.model_store)
    best_raw = raw_rates_on_request_mix(args, artifact, settings, table)
    if args.skip_served:
        return
    run_dir = out / "server-lm"
    with server(args.model_store, ("lm",), run_dir):
        served_generation(args, out, run_dir, table, textbook, best_raw)
        single_stream_costs(run_dir, args.tokens, settings, table)
        continuation_costs(run_dir, validation, table)
    scoring_costs(args.model_store, out / "scoring", table)


def scoring_costs(store: Path, out: Path, table: Table) -> None:
    """Scoring through the API (echo, max_tokens 0) against the in-process evaluator on the
    same characters, and a stream's time per token beside a scoring load (benchmarks.scoring,
    its own server)."""
    figures = scoring.measure(store, out, scoring.DEFAULT_CHARS)
    evaluator = figures["evaluator_chars_per_s"]
    table.add("scoring: in-process evaluator (int8, 8 streams)", f"{evaluator:,.0f} chars/s")
    for clients in scoring.CONCURRENCY:
        rate = figures[f"api_chars_per_s_{clients}"]
        table.add(
            f"scoring: API, {clients} concurrent scoring requests / evaluator",
            f"{rate / evaluator:.2f}",
            f"{rate:,.0f} chars/s",
        )
    alone = figures["stream_ms_per_token_alone"]
    loaded = figures["stream_ms_per_token_scoring_load"]
    table.add(
        "scoring: a stream's ms/token beside 16 scoring clients / alone",
        f"{loaded / alone:.2f}x",
        f"{loaded:.2f} vs {alone:.2f} ms/token",
    )


def lm_validation_quality(artifact: Path, validation: str, table: Table) -> None:
    """fp32 and int8 validation nats/char: quantizing must not cost quality."""
    for quantize in (None, "int8"):
        scored = score_text(*load_lm(artifact, quantize), validation)
        table.add(
            f"validation nats/char, {quantize or 'fp32'}",
            f"{scored['nats_per_char']:.4f}",
            f"{scored['tokens']} tokens, {scored['chars']} chars",
        )


def textbook_rate(artifact: Path, tokens: int, table: Table) -> float:
    """Tokens/s of the one-request `nn.LSTM` + `multinomial` loop: what the engine must beat."""
    model, tokenizer = load_lm(artifact)
    prompt = tokenizer.encode("ROMEO:")
    baseline = best_textbook_tokens_per_second(model, prompt, tokens)
    table.add(
        "textbook loop (nn.LSTM step + multinomial), 1 request",
        f"{baseline.rate:.0f} tok/s",
        f"median of 3 x >= 2 s (spread {baseline.low:.0f}-{baseline.high:.0f}), warmed up, "
        f"{baseline.threads} thread(s): the better of 1 and 2",
    )
    return baseline.rate


def engine_rates(artifact: Path, tokens: int, textbook: float, table: Table) -> None:
    """Our batched engine at 1, 16 and 64 streams, fp32 and int8, against the textbook loop."""
    for quantize in (None, "int8"):
        generator = Generator.from_artifact(artifact, quantize=quantize)
        for streams in (1, 16, 64):
            rate = engine_tokens_per_second(generator, streams, tokens)
            table.add(
                f"engine, {quantize or 'fp32'}, {streams} streams",
                f"{rate:.0f} tok/s",
                f"{rate / textbook:.1f}x textbook",
            )


def raw_rates_on_request_mix(
    args: argparse.Namespace, artifact: Path, settings: dict[str, Any], table: Table
) -> tuple[float, float]:
    """The served model's engine on Locust's request mix, in one process and in the served
    layout; returns the better (tok/s and the cores it ran on), the best a server could do
    with these requests."""
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
    # The one-process mix runs 2 threads, the served layout one per process: both on 2 cores.
    return max((mix, 2.0), (ceiling, float(workers * threads)))


def served_generation(
    args: argparse.Namespace,
    out: Path,
    run_dir: Path,
    table: Table,
    textbook: float,
    best_raw: tuple[float, float],
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
    raw, raw_cores = best_raw
    table.add(
        "served / best raw loop, same request mix, 64 streams",
        f"{served / raw:.2f}",
        "goal >= 0.9",
    )
    row = efficiency_row("generation, 64 streams", "tok/s", served, result["cpu"], raw, raw_cores)
    table.add(*row, goal=GENERATE_PER_CORE_GOAL)
    table.add("served at 64 streams / textbook loop", f"{served / textbook:.1f}x", "goal >= 40x")
    table.add("CPU while served at 64 streams", result["cpu"].describe(), "")
    first = result["stats"].get(report.FIRST_CHUNK)
    if first is not None and first.p99_ms is not None:
        table.add(
            "served at 64 streams: time to first chunk, p50 / p99",
            f"{first.p50_ms:.0f} / {first.p99_ms:.0f} ms",
            f"{first.requests} streams",
        )


def single_stream_costs(run_dir: Path, tokens: int, settings: dict[str, Any], table: Table) -> None:
    """What a lone reader of a stream waits: per token, and for the first chunk."""
    latency = single_stream_latency(run_dir, tokens)
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


def continuation_costs(run_dir: Path, validation: str, table: Table, repeats: int = 9) -> None:
    """Time to first chunk of a follow-up after a history of each length: continuing a
    session (the server reads only the new line) against resending the whole text."""
    connection = Connection.from_run_dir(run_dir)
    flat = {}
    for chars in HISTORY_CHARS:
        session, resend = follow_up_first_chunks(connection, validation[:chars], repeats)
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
        sys.exit(f"error: {missing_archives_message(args.model_store, missing)}")
    out = BENCH_RUNS / datetime.now().strftime("%Y%m%d-%H%M%S")
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
