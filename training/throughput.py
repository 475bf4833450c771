"""Measure the sentiment trainer's stage rates on this machine, now, in a few seconds.

    python -m training.train_sentiment --minutes 8 --out runs/s    # measures, plans, trains

A budgeted run (``--minutes``) calls `measure` after loading its data and before the teacher:
a few fine-tuning steps of a throwaway teacher, its labelling of a sample of phrases and
sentences, and a few student steps on a throwaway student; `training.budget.plan` turns the
rates into a plan. Every probe runs inside `torch.random.fork_rng` and on a fixed sample, so
measuring changes nothing that the seed decides: a run given the same plan (``--plan``) trains
the same model. The rates are only as good as the machine's load while measuring: on a busy
machine they are low and the plan small.
"""

from __future__ import annotations

import random
import time
from collections.abc import Callable, Sequence

import torch
from torch import nn

from training.budget import LABEL_ROW_TOKENS, Throughput

TEACHER_STEPS = 6  # fine-tuning steps timed (after one untimed warm-up step)
LABEL_ROWS = 256  # phrases and as many sentences labelled by the probe teacher
STUDENT_BATCHES = (12, 4)  # student batches of phrases and of sentences in a timed pass


def words(text: str) -> int:
    """A text's length as the plan counts it (PTB text: tokens are space-separated)."""
    return len(text.split())


def sample(texts: Sequence[str], count: int, seed: int = 0) -> list[str]:
    """A fixed sample (with repeats where ``texts`` is short): the same on every run."""
    rng = random.Random(seed)
    if len(texts) >= count:
        return rng.sample(list(texts), count)
    return [texts[rng.randrange(len(texts))] for _ in range(count)]


def length_groups(texts: Sequence[str], groups: int, size: int, seed: int = 0) -> list[str]:
    """``groups`` runs of ``size`` texts, each run of one length, lengths drawn as the texts
    have them: the student's real batches are of one length (`equal_length_batches`), and a
    small plain sample would have too few rows of each length to make such batches."""
    by_length: dict[int, list[str]] = {}
    for text in texts:
        by_length.setdefault(words(text), []).append(text)
    rng = random.Random(seed)
    out: list[str] = []
    for _ in range(groups):
        pool = by_length[words(texts[rng.randrange(len(texts))])]
        out += [pool[rng.randrange(len(pool))] for _ in range(size)]
    return out


def _rate(amount: float, run: Callable[[], object]) -> float:
    started = time.perf_counter()
    run()
    return amount / max(time.perf_counter() - started, 1e-6)


def teacher_rates(
    sentences: Sequence[str], labels: Sequence[int], phrases: Sequence[str], batch_size: int
) -> tuple[float, float]:
    """(fine-tuning steps/s, labelling words/s) of a throwaway teacher, as the real stages run
    them (bf16 autocast where native; length-sorted labelling batches)."""
    from training.precision import autocast, resolve_precision
    from training.teacher import Teacher, teacher_logits

    device = torch.device("cpu")
    precision = resolve_precision("auto", device)
    teacher = Teacher()
    teacher.train()
    optimizer = torch.optim.AdamW(teacher.parameters(), lr=1e-5, fused=True)
    rows = list(zip(sentences, labels, strict=True))
    rng = random.Random(0)
    batches = [rng.choices(rows, k=batch_size) for _ in range(TEACHER_STEPS + 1)]

    def step(batch: list[tuple[str, int]]) -> None:
        with autocast(precision, device):
            logits = teacher(teacher.encode([text for text, _ in batch]))
        loss = nn.functional.cross_entropy(logits.float(), torch.tensor([y for _, y in batch]))
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()

    step(batches[0])
    steps = _rate(TEACHER_STEPS, lambda: [step(b) for b in batches[1:]])
    texts = sample(phrases, LABEL_ROWS) + sample(sentences, LABEL_ROWS)
    amount = sum(words(t) + LABEL_ROW_TOKENS for t in texts)
    label = _rate(amount, lambda: teacher_logits(teacher, texts, progress=False))
    return steps, label


def measure(
    sentences: Sequence[str],
    labels: Sequence[int],
    phrases: Sequence[str],
    student_probe: Callable[[], Callable[[list[str]], None]],
    with_teacher: bool,
    teacher_batch: int,
    student_batch: int,
) -> Throughput:
    """All three rates. ``student_probe()`` builds a throwaway student (inside the forked RNG:
    its initialisation must not move the seed's stream) and returns a function that trains it
    once over given texts. Without a teacher its rates are not measured (nor needed): 0."""
    with torch.random.fork_rng(devices=[]):
        steps, label = (
            teacher_rates(sentences, labels, phrases, teacher_batch) if with_teacher else (0, 0)
        )
        phrase_batches, sentence_batches = STUDENT_BATCHES
        texts = length_groups(phrases, phrase_batches, student_batch)
        if with_teacher:  # perturbed sentences join the phrases
            texts += length_groups(sentences, sentence_batches, student_batch, seed=1)
        student_pass = student_probe()
        student_pass(texts)  # warm-up: first-use allocations and kernel choice
        student = _rate(sum(map(words, texts)), lambda: student_pass(texts))
    return Throughput(steps, label, student)
