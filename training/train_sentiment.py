"""Train the sentiment classifier (a bidirectional LSTM) and write its artifact folder.

    python -m training.train_sentiment --out artifacts/sentiment         # the default recipe
    python -m training.train_sentiment --teacher-epochs 0 --out /tmp/s   # without the teacher
    python -m training.train_sentiment --profile tiny --out /tmp/tiny    # seconds, for tests
    python -m training.train_sentiment --profile budget --out /tmp/s     # 8 wall-clock minutes
    python -m training.train_sentiment --plan /tmp/s/metrics.json ...    # repeat a run's plan

The default recipe is fixed in stages, so its minutes follow the CPU. ``--minutes M`` (the
``budget`` profile: `training.budget.SENTIMENT_BUDGET_MINUTES`) makes the run a wall-clock
budget instead: it measures its stages' throughput once its data is loaded
(`training.throughput`), plans how many rows the teacher labels, how many perturbed copies and
how many student epochs fit (`training.budget.plan`), prints one line per decision and keeps the
plan in metrics.json under ``budget``. The stages then run in the recipe's order with that
plan, so a seed gives the same model wherever the same plan runs (``--plan`` repeats one).

The default student reads PTB-style words (`models.text`) starting from GloVe 6B 50d vectors
widened by 50 columns of the teacher's own reading of each word, and learns from the 67k GLUE
training phrases with their gold labels and from a teacher: a small pretrained encoder
(all-MiniLM-L6-v2) fine-tuned on the 6,920 training sentences, whose logits on the phrases and
on perturbed copies of the sentences the student imitates (Tang et al. 2019). The teacher and
the vectors are training-time dependencies: the archive holds the
BiLSTM, its vocabulary and the embedding rows of that vocabulary. The dev split of the same
source is scored after every epoch and the best epoch is the one saved; SST-2's test split is
never read. Metrics (dev accuracy, confusion matrix, per-epoch history, the teacher's own dev
accuracy) go to ``<out>/metrics.json`` and into the artifact's config.json. The recipe was
chosen on dev by means of seeds (docs/experiments/sentiment.md).
"""

from __future__ import annotations

import json
import tempfile
import time
from collections.abc import Sequence
from dataclasses import asdict, replace
from pathlib import Path
from typing import Any

import torch
from tqdm import tqdm

from models import atomic
from models.artifact import save_artifact
from training import budget, cli
from training.data import LABELS, load_sentiment
from training.sentiment_fit import fit, student_pass
from training.sentiment_inputs import (
    MAX_TOKENS,
    Reader,
    make_reader,
    teacher_transfer_set,
    with_teacher_vectors,
)
from training.sentiment_options import PROFILES, TrainOptions, check_options

__all__ = ["TrainOptions", "check_options", "parse_options", "train"]


def parse_options(argv: Sequence[str] | None = None) -> TrainOptions:
    return cli.parse_options(TrainOptions(), PROFILES, argv, __doc__)


def train(options: TrainOptions) -> dict[str, Any]:
    """Run one training and write the artifact to ``options.out``; returns the metrics."""
    replayed = None
    if options.plan:  # repeat a recorded plan exactly: its levers replace the recipe's
        chosen = budget.load_plan(json.loads(Path(options.plan).read_text()))
        print(f"budget: repeating the plan of {options.plan}: {chosen}")
        options = _with_plan(options, chosen)
        replayed = {"plan": asdict(chosen), "from": options.plan}
    check_options(options)
    started = time.perf_counter()
    if options.threads:
        torch.set_num_threads(options.threads)
    torch.manual_seed(options.seed)
    out = Path(options.out)
    data = load_sentiment(options.source)
    train_split = data["train"]
    if options.max_train:
        train_split = train_split.select(range(min(options.max_train, len(train_split))))
    phrases, dev = list(train_split["sentence"]), data["dev"]
    with tempfile.TemporaryDirectory(prefix="sentiment-tok-") as scratch:
        reader = make_reader(options, phrases, Path(scratch))
        transfer = None
        teacher_data = (
            load_sentiment(options.teacher_source)["train"] if options.teacher_epochs > 0 else None
        )
        planned = replayed
        if options.minutes is not None and replayed is None:
            options, planned = _budgeted(options, reader, phrases, teacher_data, dev, started)
        if options.teacher_epochs > 0:
            transfer = teacher_transfer_set(
                options,
                reader,
                phrases,
                teacher_data["sentence"],
                teacher_data["label"],
                dev["sentence"],
            )
            if transfer.word_vectors is not None:
                reader = with_teacher_vectors(reader, transfer.word_vectors)
        deadline = None
        if planned is not None and replayed is None:
            deadline = started + options.minutes * 60 * (1 + budget.OVERRUN_SHARE)
        config, state, metrics = fit(options, reader, train_split, dev, transfer, deadline)
        metrics["seconds"] = round(time.perf_counter() - started, 1)
        if planned is not None:
            metrics["budget"] = planned
        save_artifact(
            out,
            kind="sentiment",
            model_config=asdict(config),
            state_dict=state,
            tokenizer_file=reader.file,
            lowercase=True,
            labels=list(LABELS),
            metrics=metrics,
            training=asdict(options),
        )
    atomic.write_text(out / "metrics.json", json.dumps(metrics, indent=2) + "\n")
    print(summary(metrics))
    return metrics


def _budgeted(
    options: TrainOptions,
    reader: Reader,
    phrases: list[str],
    teacher_data: Any,
    dev: Any,
    started: float,
) -> tuple[TrainOptions, dict[str, Any]]:
    """For ``--minutes``: measure, plan, say why; returns the options with the plan's levers
    applied and what metrics.json keeps of the plan."""
    assert options.minutes is not None
    from training.throughput import measure, words

    sentences = list(teacher_data["sentence"]) if teacher_data is not None else []
    work = budget.Workload(
        phrases=len(phrases),
        phrase_words=sum(map(words, phrases)),
        sentences=len(sentences),
        sentence_words=sum(map(words, sentences)),
        dev_rows=len(dev),
        dev_words=sum(map(words, dev["sentence"])),
        vocabulary=reader.tokenizer.vocab_size if options.teacher_vectors > 0 else 0,
    )
    tqdm.write(f"budget: {options.minutes:g} min; measuring this machine's throughput")
    rate = measure(
        sentences,
        list(teacher_data["label"]) if teacher_data is not None else [],
        phrases,
        lambda: student_pass(options, reader),
        lambda text: min(len(reader.tokenizer.encode(text)), MAX_TOKENS),
        with_teacher=options.teacher_epochs > 0,
        teacher_batch=work.teacher_batch,
        student_batch=options.batch_size,
    )
    recipe = budget.Plan(
        options.teacher_epochs, options.teacher_phrase_share, options.augment_copies, options.epochs
    )
    spent = time.perf_counter() - started
    choice = budget.plan(recipe, work, rate, options.minutes * 60, spent)
    for line in choice.decisions:
        tqdm.write(f"budget: {line}")
    return _with_plan(options, choice.plan), choice.record(rate)


def _with_plan(options: TrainOptions, chosen: budget.Plan) -> TrainOptions:
    return replace(
        options,
        teacher_epochs=chosen.teacher_epochs,
        teacher_phrase_share=chosen.phrase_share,
        augment_copies=chosen.copies,
        epochs=chosen.epochs,
    )


def summary(metrics: dict[str, Any]) -> str:
    """A few lines for the console: accuracy and the 2x2 confusion matrix."""
    (tn, fp), (fn, tp) = metrics["confusion_matrix"]
    teacher = (
        f"; teacher {metrics['teacher_dev_accuracy']:.4f}"
        if "teacher_dev_accuracy" in metrics
        else ""
    )
    return (
        f"dev accuracy {metrics['dev_accuracy']:.4f} (epoch {metrics['best_epoch']}, "
        f"{metrics['dev_rows']} dev rows, {metrics['seconds']} s, {metrics['threads']} threads"
        f"{teacher})\n"
        f"confusion (rows true, columns predicted)   negative  positive\n"
        f"  negative                                 {tn:8d}  {fp:8d}\n"
        f"  positive                                 {fn:8d}  {tp:8d}"
    )


def main(argv: Sequence[str] | None = None) -> None:
    options = parse_options(argv)
    train(options)
    print(f"wrote {options.out}")


def command() -> None:
    """The `rnn-serve-train-sentiment` console script."""
    cli.run(main)


if __name__ == "__main__":
    command()
