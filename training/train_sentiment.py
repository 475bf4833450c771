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
import math
import tempfile
import time
from collections.abc import Sequence
from dataclasses import asdict, dataclass, replace
from pathlib import Path
from typing import Any

import torch
from torch import nn
from tqdm import tqdm

from models import atomic
from models.artifact import save_artifact
from models.classifier import CELLS, POOLINGS, ClassifierConfig, RecurrentClassifier, pad_batch
from training import budget, cli
from training.batching import batch_order, equal_length_batches
from training.checkpoint import BestCheckpoint
from training.data import LABELS, load_sentiment
from training.distillation import distillation_loss
from training.precision import PRECISIONS, autocast, resolve_precision
from training.schedule import SHAPES, lr_factor
from training.sentiment_inputs import (
    MAX_TOKENS,
    Reader,
    Targets,
    TransferSet,
    make_reader,
    student_texts,
    teacher_transfer_set,
    training_targets,
    with_teacher_vectors,
)

TOKENIZERS = ("words", "unigram", "bpe")
BATCHINGS = {"equal": equal_length_batches, "buckets": batch_order}

# Named settings that replace the defaults below before flags are applied.
PROFILES: dict[str, dict[str, Any]] = {
    "default": {},
    # Opt-in (`make models PROFILE=fast`): half the perturbed copies for the teacher to label
    # and the student to read: about a minute shorter, a few tenths of a point lower (measured
    # per seed in docs/experiments/sentiment.md).
    "fast": dict(augment_copies=3),
    # Opt-in (`make models PROFILE=budget`): the whole run within a wall-clock budget sized so
    # that both trainers fit the first start (training.budget's arithmetic; docs/first-start.md).
    # Not the default until its quality is measured on both machine kinds.
    "budget": dict(minutes=budget.SENTIMENT_BUDGET_MINUTES),
    # Seconds on one core: for tests and `make models PROFILE=tiny`; learns little. It reads
    # words with GloVe rows like the default; the teacher has tests of its own.
    "tiny": dict(
        extra_words=500,
        teacher_epochs=0.0,
        augment_copies=0,
        hidden_dim=16,
        num_layers=1,
        epochs=2,
        lr=5e-3,
        max_train=3000,
        batch_size=64,
        word_dropout=0.0,
        embed_dropout=0.0,
        dropout=0.1,
    ),
}


MODEL = cli.field_defaults(ClassifierConfig)  # the model's shape: declared in models/classifier.py


@dataclass
class TrainOptions:
    """Everything one training run depends on; saved into the artifact's config."""

    source: str = "sst2_glue_phrases"
    out: str = "artifacts/sentiment"
    seed: int = 13
    tokenizer: str = "words"  # words (PTB, GloVe-ready) or a sentencepiece type
    vocab_size: int = 16000  # sentencepiece only
    pretrained: str = "glove"  # glove or none (words only)
    extra_words: int = 20000  # most frequent GloVe words added to the training words
    embed_dim: int = MODEL["embed_dim"]
    embed_lr: float = 0.3  # embedding learning rate as a share of lr (pretrained rows move less)
    hidden_dim: int = MODEL["hidden_dim"]
    num_layers: int = MODEL["num_layers"]
    bidirectional: bool = MODEL["bidirectional"]
    cell: str = MODEL["cell"]
    pooling: str = MODEL["pooling"]
    dropout: float = MODEL["dropout"]
    embed_dropout: float = MODEL["embed_dropout"]
    word_dropout: float = 0.1  # share of training tokens replaced by the (zero) pad embedding
    teacher_source: str = "sst2"  # the sentences the teacher is fine-tuned on
    teacher_epochs: float = 2.0  # 0 trains without a teacher
    teacher_lr: float = 1e-4
    teacher_cache: str | None = None  # a folder keeping teacher logits between runs
    teacher_phrase_share: float = 1.0  # share of the phrases the teacher labels (rest: gold)
    augment_copies: int = 6  # perturbed copies of each training sentence, teacher-labelled
    teacher_vectors: int = 50  # columns of the teacher's word vectors added to GloVe's (0: none)
    distill_weight: float = 0.8  # loss share imitating the teacher (docs/experiments)
    epochs: int = 6  # affordable: batches of one length are cheap (benchmarks.student_step)
    batch_size: int = 64
    batching: str = "equal"  # equal: one length per batch (unpacked, fast); buckets: packed
    lr: float = 2e-3
    schedule: str = "cosine"
    warmup: int = 0
    weight_decay: float = 0.0  # AdamW's decay, on every weight but the embedding's
    clip_norm: float = 1.0
    max_train: int | None = None  # use only the first N training rows (tests, quick checks)
    threads: int | None = None  # torch threads; None keeps torch's default
    device: str = "cpu"
    precision: str = "auto"  # auto: bf16 autocast where the CPU has native bf16, else fp32
    progress: bool = True
    minutes: float | None = None  # a wall-clock budget for the whole run; None: fixed recipe
    plan: str | None = None  # a metrics.json whose budget plan to repeat exactly (no measuring)
    profile: str = "default"


def parse_options(argv: Sequence[str] | None = None) -> TrainOptions:
    return cli.parse_options(TrainOptions(), PROFILES, argv, __doc__)


def check_options(options: TrainOptions) -> None:
    """Fail on a misspelt choice before minutes of data loading and tokenizer training."""
    choices = {
        "cell": (options.cell, tuple(CELLS)),
        "pooling": (options.pooling, POOLINGS),
        "schedule": (options.schedule, SHAPES),
        "tokenizer": (options.tokenizer, TOKENIZERS),
        "pretrained": (options.pretrained, ("glove", "none")),
        "precision": (options.precision, PRECISIONS),
        "batching": (options.batching, BATCHINGS),
    }
    for name, (value, allowed) in choices.items():
        if value not in allowed:
            raise ValueError(f"{name} must be one of {sorted(allowed)}, not {value!r}")
    if not 0 <= options.teacher_phrase_share <= 1:
        raise ValueError("teacher phrase share must be within [0, 1]")
    if options.minutes is not None and options.minutes <= 0:
        raise ValueError("minutes must be positive (or left out: the fixed recipe)")
    if options.pretrained == "glove" and options.tokenizer != "words":
        raise ValueError("pretrained glove vectors need --tokenizer words")
    if options.teacher_epochs > 0 and options.teacher_vectors > 0 and options.pretrained != "glove":
        raise ValueError(
            "--teacher-vectors widens the GloVe rows: needs --pretrained glove (and words), "
            "or --teacher-vectors 0"
        )


@torch.inference_mode()
def evaluate(
    model: nn.Module, rows: list[list[int]], labels: list[int], pad_id: int, batch_size: int = 256
) -> dict[str, Any]:
    """Accuracy, mean loss and the confusion matrix (rows: true label, columns: predicted)."""
    model.eval()
    device = next(model.parameters()).device
    classes = len(LABELS)
    confusion = torch.zeros(classes, classes, dtype=torch.int64)
    total_loss = 0.0
    for batch in batch_order([len(r) for r in rows], batch_size, None):
        ids, lengths = pad_batch([rows[i] for i in batch], pad_id)
        target = torch.tensor([labels[i] for i in batch])
        logits = model(ids.to(device), lengths).float().cpu()
        total_loss += nn.functional.cross_entropy(logits, target, reduction="sum").item()
        predicted = logits.argmax(dim=-1)
        confusion += torch.bincount(target * classes + predicted, minlength=classes**2).view(
            classes, classes
        )
    return {
        "accuracy": confusion.trace().item() / max(len(rows), 1),
        "loss": total_loss / max(len(rows), 1),
        "confusion_matrix": confusion.tolist(),
    }


def drop_words(ids: torch.Tensor, lengths: torch.Tensor, rate: float, pad_id: int) -> torch.Tensor:
    """Replace a random share of real tokens by the pad id (a zero embedding): the model must
    not lean on any single word."""
    if rate <= 0:
        return ids
    steps = torch.arange(ids.shape[1])[None, :]
    drop = (torch.rand(ids.shape) < rate) & (steps < lengths[:, None]) & (lengths[:, None] > 1)
    return ids.masked_fill(drop, pad_id)


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
        config, state, metrics = _fit(options, reader, train_split, dev, transfer, deadline)
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
        lambda: _student_pass(options, reader),
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


def _student_pass(options: TrainOptions, reader: Reader):
    """Trains a throwaway student (of the run's shape) once over given texts: the probe of
    `training.throughput.measure`. With teacher vectors to come, its embedding is as wide."""
    if options.teacher_epochs > 0 and options.teacher_vectors > 0 and reader.embeddings is not None:
        width = (reader.embeddings.shape[0], options.teacher_vectors)
        reader = with_teacher_vectors(reader, torch.zeros(width))
    model, _ = _build_model(options, reader)
    optimizer = _optimizer(model, options)
    quiet = replace(options, progress=False)

    def run(texts: list[str]) -> None:
        targets = student_texts(reader.tokenizer, texts)
        batches = BATCHINGS[options.batching](
            [len(r) for r in targets.rows], options.batch_size, torch.Generator().manual_seed(0)
        )
        _train_epoch(model, optimizer, targets, batches, quiet, 0, len(batches), 0)

    return run


def _fit(
    options: TrainOptions,
    reader: Reader,
    train_split: Any,
    dev_split: Any,
    transfer: TransferSet | None,
    deadline: float | None = None,
) -> tuple[ClassifierConfig, dict[str, torch.Tensor], dict[str, Any]]:
    """The training loop proper: returns the best epoch's config, weights and metrics. Past
    ``deadline`` (a `time.perf_counter` time) it stops after the epoch that would end later."""
    pad = reader.tokenizer.pad_id
    targets = training_targets(reader.tokenizer, train_split, transfer)
    dev_rows = reader.tokenizer.encode_batch(dev_split["sentence"])
    dev_labels = list(dev_split["label"])
    model, config = _build_model(options, reader)
    optimizer = _optimizer(model, options)
    generator = torch.Generator().manual_seed(options.seed)
    lengths = [len(r) for r in targets.rows]
    total_steps = math.ceil(len(lengths) / options.batch_size) * options.epochs
    best, history = BestCheckpoint(), []
    for epoch in range(1, options.epochs + 1):
        epoch_start = time.perf_counter()
        batches = BATCHINGS[options.batching](lengths, options.batch_size, generator)
        first_step = (epoch - 1) * len(batches)
        train_loss = _train_epoch(
            model, optimizer, targets, batches, options, first_step, total_steps, epoch
        )
        dev = evaluate(model, dev_rows, dev_labels, pad)
        record = {
            "epoch": epoch,
            "train_loss": train_loss,
            "dev_accuracy": dev["accuracy"],
            "dev_loss": dev["loss"],
            "seconds": round(time.perf_counter() - epoch_start, 2),
        }
        history.append(record)
        if options.progress:
            tqdm.write(
                f"epoch {epoch}: train loss {train_loss:.4f}, dev loss "
                f"{dev['loss']:.4f}, dev accuracy {dev['accuracy']:.4f} ({record['seconds']} s)"
            )
        best.offer(model, dev["accuracy"], {**dev, "epoch": epoch})
        next_ends = time.perf_counter() + record["seconds"]  # if the next epoch takes as long
        if deadline is not None and epoch < options.epochs and next_ends > deadline:
            tqdm.write(f"budget: out of time, stopping after epoch {epoch}")
            break
    metrics = _metrics(options, best, history, targets.rows, dev_rows, reader, transfer, dev_labels)
    metrics["parameters"] = sum(p.numel() for p in model.parameters())
    if len(history) < options.epochs:
        metrics["stopped_after_epoch"] = len(history)  # of options.epochs: out of time
    metrics["precision"] = resolve_precision(options.precision, torch.device(options.device))
    return config, best.state_dict, metrics


def _train_epoch(
    model: RecurrentClassifier,
    optimizer: torch.optim.Optimizer,
    targets: Targets,
    batches: list[list[int]],
    options: TrainOptions,
    step: int,
    total_steps: int,
    epoch: int,
) -> float:
    """One pass over ``batches``; returns the mean training loss per row."""
    model.train()
    pad = model.config.pad_id
    device = torch.device(options.device)
    precision = resolve_precision(options.precision, device)
    total, seen = 0.0, 0
    bar = tqdm(
        batches,
        desc=f"epoch {epoch}/{options.epochs}",
        disable=not options.progress,
        leave=False,
        mininterval=1.0,
    )
    for batch in bar:
        factor = lr_factor(step, step / total_steps, options.warmup, options.schedule)
        for group in optimizer.param_groups:
            group["lr"] = group["base_lr"] * factor
        ids, lengths = pad_batch([targets.rows[i] for i in batch], pad)
        ids = drop_words(ids, lengths, options.word_dropout, pad)
        with autocast(precision, device):
            logits = model(ids.to(device), lengths).float().cpu()
        loss = distillation_loss(
            logits, targets.gold[batch], targets.soft[batch], options.distill_weight
        )
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        if options.clip_norm > 0:
            nn.utils.clip_grad_norm_(model.parameters(), options.clip_norm)
        optimizer.step()
        step += 1
        total += loss.item() * len(batch)
        seen += len(batch)
        bar.set_postfix(loss=f"{total / seen:.4f}", refresh=False)
    return total / max(seen, 1)


def _build_model(options: TrainOptions, reader: Reader) -> tuple[RecurrentClassifier, Any]:
    config = cli.config_from(
        options,
        ClassifierConfig,
        vocab_size=reader.tokenizer.vocab_size,
        num_classes=len(LABELS),
        pad_id=reader.tokenizer.pad_id,
        **({} if reader.embeddings is None else {"embed_dim": reader.embeddings.shape[1]}),
    )
    model = RecurrentClassifier(config)
    if reader.embeddings is not None:
        with torch.no_grad():
            model.embedding.weight.copy_(reader.embeddings)
    return model.to(options.device), config


def _optimizer(model: RecurrentClassifier, options: TrainOptions) -> torch.optim.Optimizer:
    """AdamW with the embedding on its own (smaller) learning rate; ``base_lr`` per group.

    The embedding is never decayed: AdamW's decay shrinks every row each step, and most rows
    are GloVe vectors of words the training set never shows, which must keep their scale."""
    embedding = list(model.embedding.parameters())
    rest = [p for n, p in model.named_parameters() if not n.startswith("embedding.")]
    groups = [
        {"params": embedding, "base_lr": options.lr * options.embed_lr, "weight_decay": 0.0},
        {"params": rest, "base_lr": options.lr},
    ]
    # fused: one kernel over all parameters; unfused, the update of the 2.7M-row embedding cost
    # a large share of each step (`python -m benchmarks.student_step`).
    return torch.optim.AdamW(groups, lr=options.lr, weight_decay=options.weight_decay, fused=True)


def _metrics(options, best, history, rows, dev_rows, reader, transfer, dev_labels):
    facts: dict[str, Any] = {**reader.facts}
    if transfer is not None:
        predictions = transfer.facts.pop("teacher_dev_predictions")
        facts.update(transfer.facts)
        hits = sum(int(p == y) for p, y in zip(predictions, dev_labels, strict=True))
        facts["teacher_dev_accuracy"] = hits / len(dev_labels)
    return {
        "source": options.source,
        "labels": list(LABELS),
        "dev_accuracy": best.record["accuracy"],
        "dev_loss": best.record["loss"],
        "confusion_matrix": best.record["confusion_matrix"],
        "confusion_matrix_axes": "rows: true label, columns: predicted label (order of labels)",
        "best_epoch": best.record["epoch"],
        "dev_rows": len(dev_rows),
        "train_rows": len(rows),
        "vocab_size": reader.tokenizer.vocab_size,
        "threads": torch.get_num_threads(),
        "device": options.device,
        **facts,
        "history": history,
    }


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
