"""The sentiment student's training loop: the model and its optimizer built from the options,
one epoch, the epochs with the dev split scored after each (the best one kept), and the
throughput probe the budget planner times (`training.train_sentiment` runs them)."""

from __future__ import annotations

import math
import time
from dataclasses import replace
from typing import Any

import torch
from torch import nn
from tqdm import tqdm

from models.classifier import ClassifierConfig, RecurrentClassifier, pad_batch
from training import cli
from training.batching import batch_order
from training.checkpoint import BestCheckpoint
from training.data import LABELS
from training.distillation import distillation_loss
from training.precision import autocast, resolve_precision
from training.schedule import lr_factor
from training.sentiment_inputs import (
    Reader,
    Targets,
    TransferSet,
    student_texts,
    training_targets,
    with_teacher_vectors,
)
from training.sentiment_options import BATCHINGS, TrainOptions


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


def student_pass(options: TrainOptions, reader: Reader):
    """Trains a throwaway student (of the run's shape) once over given texts: the probe of
    `training.throughput.measure`. With teacher vectors to come, its embedding is as wide."""
    if options.teacher_epochs > 0 and options.teacher_vectors > 0 and reader.embeddings is not None:
        width = (reader.embeddings.shape[0], options.teacher_vectors)
        reader = with_teacher_vectors(reader, torch.zeros(width))
    model, _ = build_model(options, reader)
    optimizer = optimizer_for(model, options)
    quiet = replace(options, progress=False)

    def run(texts: list[str]) -> None:
        targets = student_texts(reader.tokenizer, texts)
        batches = BATCHINGS[options.batching](
            [len(r) for r in targets.rows], options.batch_size, torch.Generator().manual_seed(0)
        )
        train_epoch(model, optimizer, targets, batches, quiet, 0, len(batches), 0)

    return run


def fit(
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
    model, config = build_model(options, reader)
    optimizer = optimizer_for(model, options)
    generator = torch.Generator().manual_seed(options.seed)
    lengths = [len(r) for r in targets.rows]
    total_steps = math.ceil(len(lengths) / options.batch_size) * options.epochs
    best, history = BestCheckpoint(), []
    for epoch in range(1, options.epochs + 1):
        epoch_start = time.perf_counter()
        batches = BATCHINGS[options.batching](lengths, options.batch_size, generator)
        first_step = (epoch - 1) * len(batches)
        train_loss = train_epoch(
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
    metrics = fit_metrics(
        options, best, history, targets.rows, dev_rows, reader, transfer, dev_labels
    )
    metrics["parameters"] = sum(p.numel() for p in model.parameters())
    if len(history) < options.epochs:
        metrics["stopped_after_epoch"] = len(history)  # of options.epochs: out of time
    metrics["precision"] = resolve_precision(options.precision, torch.device(options.device))
    return config, best.state_dict, metrics


def train_epoch(
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


def build_model(options: TrainOptions, reader: Reader) -> tuple[RecurrentClassifier, Any]:
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


def optimizer_for(model: RecurrentClassifier, options: TrainOptions) -> torch.optim.Optimizer:
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


def fit_metrics(options, best, history, rows, dev_rows, reader, transfer, dev_labels):
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
