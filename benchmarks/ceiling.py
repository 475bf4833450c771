"""Raw in-process throughput: the ceiling that serving is compared against.

The served layout is W worker processes with T torch threads each, so the ceiling runs the
same layout: W processes, each looping one-forward-pass batches of the served batch size.
"""

from __future__ import annotations

import multiprocessing as mp
import time
from collections.abc import Callable
from typing import Any

import torch


def _classify_loop(args: tuple[str, list[str], int, int, float, str | None]) -> tuple[int, float]:
    from models.classifier_predictor import ClassifierPredictor

    artifact, texts, batch_size, threads, seconds, quantize = args
    torch.set_num_threads(threads)
    predictor = ClassifierPredictor.from_artifact(artifact, quantize=quantize)
    batches = [texts[i : i + batch_size] for i in range(0, len(texts) - batch_size + 1, batch_size)]
    predictor.predict(batches[0])  # warm-up
    done, started = 0, time.perf_counter()
    while time.perf_counter() - started < seconds:
        for batch in batches:
            predictor.predict(batch)
            done += len(batch)
            if time.perf_counter() - started >= seconds:
                break
    return done, time.perf_counter() - started


def run_in_processes(
    function: Callable[[Any], tuple[int, float]], args: Any, processes: int
) -> float:
    """Items per second summed over ``processes`` copies of ``function`` running together."""
    context = mp.get_context("spawn")
    with context.Pool(processes) as pool:
        results = pool.map(function, [args] * processes)
    return sum(done / seconds for done, seconds in results)


def classify_ceiling(
    artifact: str,
    texts: list[str],
    batch_size: int,
    workers: int,
    threads: int,
    seconds: float = 10.0,
    quantize: str | None = None,
) -> float:
    """Sentences per second of the bare predictor in the served worker layout."""
    args = (artifact, texts, batch_size, threads, seconds, quantize)
    return run_in_processes(_classify_loop, args, workers)
