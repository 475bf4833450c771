"""Streamed generation timed from the client's side: to the first chunk, and per token after it.

    latency = single_stream_latency(run_dir, tokens=128)   # {"first_ms": ..., "per_token_ms": ...}

`make bench` (benchmarks/run.py) reads with these what a lone reader of a stream waits, and
what a session saves on a follow-up against resending the whole conversation.
"""

from __future__ import annotations

import statistics
import time
from pathlib import Path
from typing import Any

from serving.client import generate, generate_stream
from serving.connection import Connection

FOLLOW_UP = "\nROMEO:\n"  # the new line of a conversation's next turn


def timed_stream(connection: Connection, payload: dict[str, Any]) -> tuple[float, float, int]:
    """(ms to the first chunk, ms to the end, generated tokens) of one streamed request, read
    to its end so that the server is idle again for the next measurement."""
    started = time.perf_counter()
    first, generated = None, 0
    for chunk in generate_stream(connection, payload):
        first = first or time.perf_counter()
        generated = chunk.get("generated_tokens", generated)
    ended = time.perf_counter()
    return (first - started) * 1000, (ended - started) * 1000, generated


def first_chunk_ms(connection: Connection, payload: dict[str, Any]) -> float:
    return timed_stream(connection, payload)[0]


def single_stream_latency(run_dir: Path, tokens: int, requests_count: int = 5) -> dict[str, float]:
    """One client streaming one request at a time: mean time to the first chunk, and the time
    per output token after it (the inter-token latency a reader of the stream sees)."""
    connection = Connection.from_run_dir(run_dir)
    payload = {"prompt": "ROMEO:", "max_new_tokens": tokens, "temperature": 0.8, "stop": []}
    first_ms, per_token_ms = [], []
    for seed in range(requests_count):
        first, total, generated = timed_stream(connection, {**payload, "seed": seed})
        first_ms.append(first)
        per_token_ms.append((total - first) / max(1, generated - 1))
    return {"first_ms": statistics.mean(first_ms), "per_token_ms": statistics.mean(per_token_ms)}


def follow_up_first_chunks(
    connection: Connection, history: str, repeats: int
) -> tuple[list[float], list[float]]:
    """Time to the first chunk of a follow-up after ``history``, ``repeats`` times each way:
    continuing a session (the server reads only the new line) and resending the whole text."""
    follow = {"max_new_tokens": 16, "temperature": 0.8, "seed": 1}
    session, resend = [], []
    for _ in range(repeats):
        opened = generate(connection, {"prompt": history, "max_new_tokens": 1, "session": "new"})
        whole = history + opened["text"] + FOLLOW_UP
        resend.append(first_chunk_ms(connection, {**follow, "prompt": whole}))
        body = {
            **follow,
            "prompt": FOLLOW_UP,
            "session": opened["session"],
            "end_session": True,
        }
        session.append(first_chunk_ms(connection, body))
    return session, resend
