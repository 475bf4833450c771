"""`make bench`'s generation table: validation nats/char, the textbook loop against our
engine in process, the served tokens/s at 64 streams, what one stream and a follow-up wait,
and scoring (a registry entry's `Bench` of kind "generation": benchmarks/sections.py plans
it, benchmarks/run.py runs it)."""

from __future__ import annotations

import argparse
import statistics
from pathlib import Path
from typing import Any

import torch

from benchmarks import goals, scoring
from benchmarks.efficiency import efficiency_row
from benchmarks.generation import (
    batch_tokens_per_second,
    best_textbook_tokens_per_second,
    engine_tokens_per_second,
    load_mix_requests,
    mix_ceiling,
)
from benchmarks.harness import locust, served_settings, server
from benchmarks.results import Table
from benchmarks.sections import Section
from benchmarks.streams import follow_up_first_chunks, single_stream_latency
from handlers.lm.api import MAX_PROMPT_CHARS
from loadtest import report
from models.generation import Generator
from serving.connection import Connection
from training.archive import unpack_archive
from training.data import load_text, split_text
from training.evaluate_lm import load_lm, score_text

# The longest history leaves room for the follow-up line inside the longest prompt allowed.
# Concurrent streams of the served figures (Locust users, the raw loops they are held to).
STREAMS = 64
HISTORY_CHARS = (10, 1000, MAX_PROMPT_CHARS - 10)


def measure(args: argparse.Namespace, out: Path, section: Section) -> Table:
    """Validation nats/char, the textbook loop against our engine in process, then the served
    tokens/s at 64 streams and what one stream and a follow-up wait."""
    table = section.table()
    name = section.model
    artifact = unpack_archive(args.model_store / f"{name}.mar", out / f"{name}-artifact")
    validation = split_text(load_text(section.data))[1]
    torch.set_num_threads(2)
    lm_validation_quality(artifact, validation, table)
    textbook = textbook_rate(artifact, args.tokens, table)
    engine_rates(artifact, args.tokens, textbook, table)
    settings = served_settings(name, args.model_store)
    best_raw = raw_rates_on_request_mix(args, artifact, settings, table)
    if args.skip_served:
        return table
    run_dir = out / f"server-{name}"
    with server(args.model_store, (name,), run_dir):
        served_generation(args, out, run_dir, section, table, textbook, best_raw)
        single_stream_costs(run_dir, args.tokens, settings, table)
        continuation_costs(run_dir, validation, table)
    scoring_costs(args.model_store, out / "scoring", table)
    return table


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
    table.rate(
        "textbook loop (nn.LSTM step + multinomial), 1 request",
        baseline.rate,
        "tok/s",
        f"median of 3 x >= 2 s (spread {baseline.low:.0f}-{baseline.high:.0f}), warmed up, "
        f"{baseline.threads} thread(s): the better of 1 and 2",
    )
    return baseline.rate


def engine_rates(artifact: Path, tokens: int, textbook: float, table: Table) -> None:
    """Our batched engine at 1, 16 and 64 streams, fp32 and int8, against the textbook loop."""
    for quantize in (None, "int8"):
        generator = Generator.from_artifact(artifact, quantize=quantize)
        for streams in (1, 16, STREAMS):
            rate = engine_tokens_per_second(generator, streams, tokens)
            table.rate(
                f"engine, {quantize or 'fp32'}, {streams} streams",
                rate,
                "tok/s",
                f"{rate / textbook:.1f}x textbook",
            )


def raw_rates_on_request_mix(
    args: argparse.Namespace, artifact: Path, settings: dict[str, Any], table: Table
) -> tuple[float, float]:
    """The served model's engine on Locust's request mix, in one process and in the served
    layout; returns the better (tok/s and the cores it ran on), the best a server could do
    with these requests."""
    generator = Generator.from_artifact(artifact, quantize=settings["handler"].get("quantize"))
    served_mode = generator.quantize  # "auto" resolved for this machine
    mix = batch_tokens_per_second(generator, load_mix_requests(STREAMS, args.tokens))
    table.rate(
        f"engine, {served_mode or 'fp32'}, {STREAMS} streams of Locust's request mix, 1 process",
        mix,
        "tok/s",
        "validation prompts (prefill included), mixed sampling and stops; 2 threads",
    )
    # The served layout's decoding processes: each worker, and its helper (decode_processes).
    workers = settings["minWorkers"] * int(settings["handler"].get("decode_processes", 1))
    threads = settings["handler"]["torch_threads"]
    ceiling = mix_ceiling(str(artifact), served_mode, STREAMS, args.tokens, workers, threads)
    table.rate(
        f"engine, same mix, served layout ({workers} proc x {threads} thread)",
        ceiling,
        "tok/s",
        f"{STREAMS // workers} streams per process, all at once: the best raw loop",
    )
    # The one-process mix runs 2 threads, the served layout one per process: both on 2 cores.
    return max((mix, 2.0), (ceiling, float(workers * threads)))


def served_generation(
    args: argparse.Namespace,
    out: Path,
    run_dir: Path,
    section: Section,
    table: Table,
    textbook: float,
    best_raw: tuple[float, float],
) -> None:
    """64 Locust users without think time, half of them streaming (the first chunk timed)."""
    result = locust(
        run_dir,
        out / f"locust-{section.model}{STREAMS}",
        section.scenario,
        STREAMS,
        args.duration,
        {"LOADTEST_MAX_WAIT": "0", "LOADTEST_MAX_NEW_TOKENS": str(args.tokens)},
    )
    load = result["loads"][section.model]
    served = load.tokens_per_s or 0.0
    table.rate(
        f"served, {STREAMS} streams (Locust, no wait)",
        served,
        "tok/s",
        f"mean rows per handler call {load.mean_batch_size or 0:.1f}",
    )
    raw, raw_cores = best_raw
    table.add(
        f"served / best raw loop, same request mix, {STREAMS} streams",
        f"{served / raw:.2f}",
        "",
        goals.SERVED_VS_RAW_LOOP,
        served / raw,
    )
    table.put(
        efficiency_row(
            f"generation, {STREAMS} streams",
            "tok/s",
            served,
            result["cpu"],
            raw,
            raw_cores,
            goals.GENERATE_PER_CORE,
        )
    )
    table.add(
        f"served at {STREAMS} streams / textbook loop",
        f"{served / textbook:.1f}x",
        "",
        goals.SERVED_VS_TEXTBOOK,
        served / textbook,
    )
    table.add(f"CPU while served at {STREAMS} streams", result["cpu"].describe(), "")
    first = result["stats"].get(report.FIRST_CHUNK)
    if first is not None and first.p99_ms is not None:
        table.add(
            f"served at {STREAMS} streams: time to first chunk, p50 / p99",
            f"{first.p50_ms:.0f} / {first.p99_ms:.0f} ms",
            f"{first.requests} streams",
        )


def single_stream_costs(run_dir: Path, tokens: int, settings: dict[str, Any], table: Table) -> None:
    """What a lone reader of a stream waits: per token, and for the first chunk."""
    latency = single_stream_latency(run_dir, tokens)
    table.add(
        "served single stream: time per output token after the first",
        f"{latency['per_token_ms']:.2f} ms",
        "one client streaming one request at a time",
        goals.STREAM_TOKEN_MS,
        latency["per_token_ms"],
    )
    table.add(
        "served single stream: time to first chunk",
        f"{latency['first_ms']:.0f} ms",
        f"a lone request: prompt + {settings['handler']['tokens_per_call']} tokens "
        "(one handler call)",
        goals.FIRST_CHUNK_MS,
        latency["first_ms"],
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
    longest = flat[HISTORY_CHARS[-1]] / flat[HISTORY_CHARS[0]]
    table.add(
        "session follow-up, first chunk at the longest / shortest history",
        f"{longest:.2f}x",
        "",
        goals.SESSION_FLAT,
        longest,
    )
