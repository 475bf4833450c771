"""Raw generation throughput: our batched engine against the textbook `generate()` loop."""

from __future__ import annotations

import random
import statistics
import time
from dataclasses import dataclass

import torch

from benchmarks.ceiling import run_in_processes
from loadtest.payloads import generation_payload
from models.generation import GenerationRequest, Generator
from models.language_model import RecurrentLM


@torch.inference_mode()
def _textbook_loop(model: RecurrentLM, prompt_ids: list[int], tokens: int) -> int:
    logits, state = model(torch.tensor([prompt_ids]))
    last = logits[0, -1]
    for _ in range(tokens):
        probs = torch.softmax(last / 0.8, dim=-1)
        token = torch.multinomial(probs, 1)
        logits, state = model(token.view(1, 1), state)
        last = logits[0, -1]
    return tokens


def textbook_tokens_per_second(
    model: RecurrentLM, prompt_ids: list[int], tokens: int, min_seconds: float = 2.0
) -> float:
    """One request at a time: `nn.LSTM` on one token, softmax, `torch.multinomial` (the lesson's
    loop). The baseline every speed-up here is measured against, so it gets a fair chance: a
    warm-up, then whole requests repeated for at least ``min_seconds``."""
    model.eval()
    _textbook_loop(model, prompt_ids, 8)
    done, started = 0, time.perf_counter()
    while time.perf_counter() - started < min_seconds:
        done += _textbook_loop(model, prompt_ids, tokens)
    return done / (time.perf_counter() - started)


@dataclass
class Baseline:
    """The textbook loop at its best thread count: median tokens/s of the repeats, and spread."""

    rate: float
    low: float
    high: float
    threads: int


def best_textbook_tokens_per_second(
    model: RecurrentLM,
    prompt_ids: list[int],
    tokens: int,
    threads: tuple[int, ...] = (1, 2),
    repeats: int = 3,
) -> Baseline:
    """Each thread count timed ``repeats`` times (interleaved, so drift hits both alike); the
    count with the best median wins."""
    before = torch.get_num_threads()
    rates: dict[int, list[float]] = {count: [] for count in threads}
    try:
        for _ in range(repeats):
            for count in threads:
                torch.set_num_threads(count)
                rates[count].append(textbook_tokens_per_second(model, prompt_ids, tokens))
    finally:
        torch.set_num_threads(before)
    best = max(threads, key=lambda count: statistics.median(rates[count]))
    measured = rates[best]
    return Baseline(statistics.median(measured), min(measured), max(measured), best)


def engine_tokens_per_second(
    generator: Generator, streams: int, tokens: int, prompt: str = "ROMEO:"
) -> float:
    """Summed tokens/s of ``streams`` sampled requests for one short prompt, in one loop."""
    requests = [
        GenerationRequest(prompt, max_new_tokens=tokens, temperature=0.8, seed=i)
        for i in range(streams)
    ]
    return batch_tokens_per_second(generator, requests)


def load_mix_requests(count: int, tokens: int, seed: int = 0) -> list[GenerationRequest]:
    """The requests Locust's generation users send (loadtest/payloads.py: validation prompts,
    mixed temperatures, top-k/top-p and stop strings), each asking for ``tokens`` tokens."""
    rng = random.Random(seed)
    requests = []
    for _ in range(count):
        payload = {**generation_payload(rng), "max_new_tokens": tokens}
        requests.append(GenerationRequest(**payload))
    return requests


def batch_tokens_per_second(generator: Generator, requests: list[GenerationRequest]) -> float:
    """Summed generated tokens/s of ``requests`` decoded together (prefill included)."""
    tokens, seconds = timed_generate(generator, requests)
    return tokens / seconds


def timed_generate(generator: Generator, requests: list[GenerationRequest]) -> tuple[int, float]:
    """Generated tokens and seconds of one loop over all ``requests``, after a warm-up."""
    generator.generate(requests[:1])
    started = time.perf_counter()
    results = generator.generate(requests)
    return sum(r.generated_tokens for r in results), time.perf_counter() - started


def _mix_loop(args: tuple[str, str | None, int, int, int]) -> tuple[int, float]:
    """One process of `mix_ceiling`: its own engine, ``streams`` mix requests decoded together."""
    artifact, quantize, streams, tokens, threads = args
    torch.set_num_threads(threads)
    generator = Generator.from_artifact(artifact, quantize=quantize)
    return timed_generate(generator, load_mix_requests(streams, tokens))


def mix_ceiling(
    artifact: str, quantize: str | None, streams: int, tokens: int, workers: int, threads: int
) -> float:
    """Summed tokens/s of Locust's request mix in the served layout: ``workers`` processes of
    ``threads`` threads, ``streams`` split evenly among them, all running at once."""
    args = (artifact, quantize, streams // workers, tokens, threads)
    return run_in_processes(_mix_loop, args, workers)
