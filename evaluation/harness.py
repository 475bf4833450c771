"""lm-evaluation-harness against the served LM, on tasks built from Tiny Shakespeare's held-out
text, next to `training.evaluate_lm`'s figure for the same documents.

    make eval      # the server of `make serve` (or one of its own), default documents
    python -m evaluation.harness --run-dir runs/server --archive model_store/lm.mar \\
        --documents 20 --questions 40 --out runs/eval

The harness (`lm-eval`, the `eval` dependency group: installed with ``--no-deps``, no torch)
runs its ``local-completions`` model against our OpenAI route. Its default tokenizer backend
asks the server's ``tokenizer_info`` / ``tokenize`` routes (handlers/lm/tokenize_api.py), so
it counts context in the served pieces; nothing is downloaded (HF_HUB_OFFLINE=1). Two tasks,
both over local JSONL files written here:

- ``rnn_serve_shakespeare``: the validation split cut into documents at line ends, scored
  with ``loglikelihood_rolling`` (each document one window from the start marker ``<s>``,
  i.e. the model's start state). Printed as nats per character beside `document_nll` of the
  in-process scorer (the served precision) on the same documents: they agree within `AGREEMENT`.
- ``rnn_serve_next_line``: a few lines of the play, then which of two lines comes next: the
  one the play has, or one from elsewhere in it (accuracy; chance is 0.5).
"""

from __future__ import annotations

import argparse
import json
import math
import os
import random
import sys
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from serving.server_config import DEFAULT_RUN_DIR

AGREEMENT = 0.01  # nats/char: the harness through the server vs the in-process scorer
DOC_CHARS = 1500  # a document: whole lines, about this long (one rolling window)
CONTEXT_LINES = 3  # lines of the play before each next-line question
ROLLING_TASK = "rnn_serve_shakespeare"
CHOICE_TASK = "rnn_serve_next_line"
MAX_LENGTH = 2048  # the harness's window in tokens (a document fits in one)


def documents(text: str, count: int, size: int = DOC_CHARS) -> list[str]:
    """The first ``count`` documents of ``text``: consecutive runs of whole lines, each ending
    at the first line end past ``size`` characters."""
    docs, start = [], 0
    while len(docs) < count and start < len(text):
        end = text.find("\n", start + size)
        end = len(text) if end < 0 else end + 1
        docs.append(text[start:end])
        start = end
    return docs


def next_line_questions(text: str, count: int, seed: int = 0) -> list[dict[str, Any]]:
    """``count`` questions: ``CONTEXT_LINES`` lines of the play, the line that follows them and
    a line from elsewhere (in a random order; ``label`` is the true one's index)."""
    lines = [line + "\n" for line in text.split("\n")]
    spoken = [i for i in range(CONTEXT_LINES, len(lines) - 1) if len(lines[i].strip()) > 20]
    rng = random.Random(seed)
    questions = []
    for index in rng.sample(spoken, min(count, len(spoken))):
        other = rng.choice([i for i in spoken if lines[i] != lines[index]])
        choices = [lines[index], lines[other]]
        rng.shuffle(choices)
        context = "".join(lines[index - CONTEXT_LINES : index])
        questions.append(
            {"context": context, "choices": choices, "label": choices.index(lines[index])}
        )
    return questions


def write_tasks(folder: Path, docs: list[str], questions: list[dict[str, Any]]) -> None:
    """The two tasks' data (JSONL) and their YAML definitions, for the harness's task loader."""
    folder.mkdir(parents=True, exist_ok=True)
    for name, rows in (("documents", [{"text": d} for d in docs]), ("questions", questions)):
        with open(folder / f"{name}.jsonl", "w", encoding="utf-8") as handle:
            handle.writelines(json.dumps(row) + "\n" for row in rows)
    common = "dataset_path: json\ntest_split: test\n"
    (folder / f"{ROLLING_TASK}.yaml").write_text(
        f"task: {ROLLING_TASK}\n{common}"
        f"dataset_kwargs:\n  data_files:\n    test: {folder / 'documents.jsonl'}\n"
        "output_type: loglikelihood_rolling\n"
        'doc_to_text: ""\ndoc_to_target: "{{text}}"\n'
        "metric_list:\n  - metric: bits_per_byte\n",
        encoding="utf-8",
    )
    (folder / f"{CHOICE_TASK}.yaml").write_text(
        f"task: {CHOICE_TASK}\n{common}"
        f"dataset_kwargs:\n  data_files:\n    test: {folder / 'questions.jsonl'}\n"
        "output_type: multiple_choice\n"
        'doc_to_text: "{{context}}"\ndoc_to_choice: "{{choices}}"\ndoc_to_target: label\n'
        'target_delimiter: ""\n'
        "metric_list:\n  - metric: acc\n",
        encoding="utf-8",
    )


def run_harness(folder: Path, base_url: str, key: str | None, concurrent: int) -> dict[str, Any]:
    """``lm_eval.simple_evaluate`` with ``local-completions`` on our route; its samples too."""
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    os.environ.setdefault("HF_DATASETS_OFFLINE", "1")
    if key:
        os.environ["OPENAI_API_KEY"] = key  # local-completions' bearer token
    import lm_eval
    from lm_eval.tasks import TaskManager

    args = {
        "model": "lm",
        "base_url": f"{base_url}/predictions/lm/1.0/v1/completions",
        "num_concurrent": concurrent,
        "max_retries": 1,
        "max_length": MAX_LENGTH,
        "timeout": 300,
    }
    if key:
        args["auth_token"] = key  # the remote tokenizer's bearer token
    return lm_eval.simple_evaluate(
        model="local-completions",
        model_args=",".join(f"{name}={value}" for name, value in args.items()),
        tasks=[ROLLING_TASK, CHOICE_TASK],
        task_manager=TaskManager(include_path=str(folder)),
        log_samples=True,
        batch_size=1,
    )


def harness_nats(results: dict[str, Any]) -> float:
    """Total negative log-likelihood (nats) of the rolling task's documents, from its samples."""
    samples = results["samples"][ROLLING_TASK]
    return -sum(float(_first_number(sample["resps"])) for sample in samples)


def _first_number(value: Any) -> float:
    while isinstance(value, (list, tuple)):
        value = value[0]
    return float(value)


def evaluator_nats(archive: Path, docs: list[str]) -> float:
    """`training.evaluate_lm`'s scorer with the archive's own settings (as served here), each
    document alone from the start state."""
    from models.decode_step import DecodeStep
    from training.archive import packed_quantize, unpack_archive
    from training.evaluate_lm import document_nll, load_model

    with tempfile.TemporaryDirectory() as unpacked:
        model, tokenizer = load_model(unpack_archive(archive, unpacked))
        step = DecodeStep(model, quantize=packed_quantize(archive))
        return sum(document_nll(step, tokenizer.encode(doc)) for doc in docs)


def evaluate(
    base_url: str,
    key: str | None,
    archive: Path,
    text: str,
    out: Path,
    count: int,
    questions: int,
    concurrent: int = 4,
) -> dict[str, Any]:
    """Run both tasks through the server and the in-process scorer; the figures as a dict."""
    docs = documents(text, count)
    write_tasks(out / "tasks", docs, next_line_questions(text, questions))
    results = run_harness(out / "tasks", base_url, key, concurrent)
    chars = sum(len(doc) for doc in docs)
    served = harness_nats(results) / chars
    local = evaluator_nats(archive, docs) / chars
    figures = {
        "documents": len(docs),
        "chars": chars,
        "harness_nats_per_char": served,
        "evaluate_lm_nats_per_char": local,
        "difference": served - local,
        "agree": abs(served - local) < AGREEMENT,
        "bits_per_byte": results["results"][ROLLING_TASK]["bits_per_byte,none"],
        "next_line_accuracy": results["results"][CHOICE_TASK]["acc,none"],
        "next_line_questions": questions,
    }
    (out / "eval.json").write_text(json.dumps(figures, indent=2) + "\n", encoding="utf-8")
    return figures


def report(figures: dict[str, Any]) -> str:
    return "\n".join(
        [
            f"Tiny Shakespeare validation, {figures['documents']} documents, "
            f"{figures['chars']:,} characters:",
            f"  lm-eval (local-completions) through the server  "
            f"{figures['harness_nats_per_char']:.4f} nats/char",
            f"  training.evaluate_lm in-process (same model)     "
            f"{figures['evaluate_lm_nats_per_char']:.4f} nats/char",
            f"  difference {figures['difference']:+.6f} "
            f"({'within' if figures['agree'] else 'NOT within'} {AGREEMENT})",
            f"next line, {figures['next_line_questions']} questions (chance 0.5): "
            f"accuracy {figures['next_line_accuracy']:.3f}",
        ]
    )


@contextmanager
def served(run_dir: Path, archive: Path, out: Path) -> Iterator[Any]:
    """The server running from ``run_dir`` (`make serve`), or else one of our own on free
    ports serving ``archive`` until the evaluation ends."""
    from serving.connection import Connection
    from serving.lifecycle import server_pid, start, stop
    from serving.server_config import ServerConfig

    if server_pid(run_dir.resolve()) is not None:
        yield Connection.from_run_dir(run_dir)
        return
    own = out / "server"
    config = ServerConfig.on_free_ports(
        model_store=archive.parent, run_dir=own, models=(archive.stem,)
    )
    print(f"no server runs from {run_dir}: starting one serving {archive}", flush=True)
    try:
        yield start(config)
    finally:
        stop(own)


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--run-dir", default=DEFAULT_RUN_DIR, help="a running `make serve`")
    parser.add_argument("--archive", default="model_store/lm.mar")
    parser.add_argument("--documents", type=int, default=20)
    parser.add_argument("--questions", type=int, default=40)
    parser.add_argument("--concurrent", type=int, default=4)
    parser.add_argument("--out", default="runs/eval")
    args = parser.parse_args()
    from training.data import load_text, split_text

    text = split_text(load_text("tinyshakespeare"))[1]
    with served(Path(args.run_dir), Path(args.archive), Path(args.out)) as connection:
        figures = evaluate(
            connection.inference_url,
            connection.inference_key,
            Path(args.archive),
            text,
            Path(args.out),
            args.documents,
            args.questions,
            args.concurrent,
        )
    print(report(figures))
    print(
        f"(written to {Path(args.out) / 'eval.json'}; ln 2 x bits/byte = "
        f"{figures['bits_per_byte'] * math.log(2):.4f} for this ASCII text)"
    )
    if not figures["agree"]:
        sys.exit(1)


if __name__ == "__main__":
    main()
