"""Scoring speed: characters scored per second through the API against the in-process
evaluator on the same text, and what a scoring load does to a concurrent stream.

    python -m benchmarks.scoring --model-store model_store --out runs/bench-scoring

- **Throughput**: the validation text cut into documents, each sent as a scoring-only request
  (`echo`, `max_tokens: 0`, `logprobs: 0`) by 16 and then 64 concurrent clients; against
  `training.evaluate_lm`'s scorer in the served precision (`step_nll`, its 8 streams) on the
  same characters in this process. Printed as characters per second and their ratio, from one run.
- **Sharing the loop**: a streamed generation's time per token alone, and while 16 clients
  keep sending scoring requests (they read their prompts in the same decode steps).

The server is started here on free ports from the archive (its own settings: `quantize: auto`,
two decode processes); the evaluator runs with the same torch thread count as one worker.
"""

from __future__ import annotations

import argparse
import json
import tempfile
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import requests
import torch

from benchmarks.harness import server
from benchmarks.streams import timed_stream
from evaluation.harness import documents
from serving.connection import Connection
from serving.server_config import DEFAULT_MODEL_STORE

DOC_CHARS = 1000
CONCURRENCY = (16, 64)
DEFAULT_CHARS = 64_000  # validation characters scored
STREAM = {"prompt": "ROMEO:", "max_new_tokens": 200, "temperature": 0.8, "seed": 1}


def score(connection: Connection, text: str) -> None:
    reply = requests.post(
        f"{connection.inference_url}/predictions/lm/1.0/v1/completions",
        json={"prompt": text, "max_tokens": 0, "echo": True, "logprobs": 0},
        headers=connection.inference_headers(),
        timeout=600,
    )
    reply.raise_for_status()


def api_chars_per_second(connection: Connection, docs: list[str], clients: int) -> float:
    started = time.perf_counter()
    with ThreadPoolExecutor(clients) as pool:
        list(pool.map(lambda doc: score(connection, doc), docs))
    return sum(len(doc) for doc in docs) / (time.perf_counter() - started)


def evaluator_chars_per_second(archive: Path, text: str) -> float:
    from models.decode_step import DecodeStep
    from training.archive import packed_quantize, unpack_archive
    from training.evaluate_lm import load_model, step_nll
    from training.lm_scoring import EVAL_STREAMS

    torch.set_num_threads(1)  # as one serving worker runs
    with tempfile.TemporaryDirectory() as unpacked:
        model, tokenizer = load_model(unpack_archive(archive, unpacked))
        step = DecodeStep(model, quantize=packed_quantize(archive))
        ids = torch.tensor(tokenizer.encode(text))
        started = time.perf_counter()
        step_nll(step, ids, EVAL_STREAMS)
        return len(text) / (time.perf_counter() - started)


def stream_ms_per_token(connection: Connection, docs: list[str] | None) -> float:
    """Time per token of one streamed generation, with 16 clients scoring ``docs`` over and
    over meanwhile (None: alone)."""
    done = threading.Event()

    def load() -> None:
        index = 0
        while not done.is_set():
            score(connection, docs[index % len(docs)])
            index += 1

    with ThreadPoolExecutor(16) as pool:
        workers = [pool.submit(load) for _ in range(16)] if docs else []
        time.sleep(1.0 if docs else 0)  # the scoring rows are in the loop before the stream
        first, total, generated = timed_stream(connection, STREAM)
        done.set()
        for worker in workers:
            worker.result()
    return (total - first) / max(1, generated - 1)


def measure(store: Path, out: Path, chars: int) -> dict[str, Any]:
    from training.data import load_text, split_text

    text = split_text(load_text("tinyshakespeare"))[1][:chars]
    docs = documents(text, len(text), DOC_CHARS)
    scored = "".join(docs)
    figures: dict[str, Any] = {"chars": len(scored), "documents": len(docs)}
    figures["evaluator_chars_per_s"] = evaluator_chars_per_second(store / "lm.mar", scored)
    with server(store, ("lm",), out / "server") as connection:
        score(connection, docs[0])  # warm-up
        for clients in CONCURRENCY:
            rate = api_chars_per_second(connection, docs, clients)
            figures[f"api_chars_per_s_{clients}"] = rate
            figures[f"api_vs_evaluator_{clients}"] = rate / figures["evaluator_chars_per_s"]
        figures["stream_ms_per_token_alone"] = stream_ms_per_token(connection, None)
        figures["stream_ms_per_token_scoring_load"] = stream_ms_per_token(connection, docs)
    out.mkdir(parents=True, exist_ok=True)
    (out / "scoring.json").write_text(json.dumps(figures, indent=2) + "\n")
    return figures


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--model-store", type=Path, default=DEFAULT_MODEL_STORE)
    parser.add_argument("--out", default="runs/bench-scoring")
    parser.add_argument("--chars", type=int, default=DEFAULT_CHARS, help="characters scored")
    args = parser.parse_args()
    figures = measure(Path(args.model_store), Path(args.out), args.chars)
    print(f"{figures['chars']:,} characters in {figures['documents']} documents")
    print(
        f"  in-process evaluator (as served, 8 streams)  "
        f"{figures['evaluator_chars_per_s']:,.0f} chars/s"
    )
    for clients in CONCURRENCY:
        rate, ratio = figures[f"api_chars_per_s_{clients}"], figures[f"api_vs_evaluator_{clients}"]
        print(
            f"  API, {clients:2d} concurrent scoring requests  {rate:,.0f} chars/s ({ratio:.2f}x)"
        )
    print(
        f"  a concurrent stream: {figures['stream_ms_per_token_alone']:.2f} ms/token alone, "
        f"{figures['stream_ms_per_token_scoring_load']:.2f} ms/token beside 16 scoring clients"
    )


if __name__ == "__main__":
    main()
