"""Measure the sentiment trainer's stage rates on this machine, now, in seconds.

    python -m training.train_sentiment --minutes 8 --out runs/s    # measures, plans, trains

A budgeted run (``--minutes``) calls `measure` after loading its data and before the teacher:
fine-tuning steps of a throwaway teacher, its labelling of a sample of phrases and sentences,
and training steps of a throwaway student; `training.budget.plan` turns the rates into a plan.
Each probe runs a fixed sample in order and stops after PROBE_SECONDS, so measuring takes
about a minute at most even on a busy machine (about ten seconds on an idle one). Every probe
runs inside `torch.random.fork_rng`, so measuring changes nothing that the seed decides: a run
given the same plan (``--plan``) trains the same model. The rates are only as good as the
machine's load while measuring: on a busy machine they are low and the plan small.
"""

from __future__ import annotations

import random
import time
from collections.abc import Callable, Sequence
from typing import Any

import torch

from training.batching import batch_order
from training.budget import LABEL_ROW_TOKENS, Throughput

TEACHER_STEPS = 12  # fine-tuning steps timed (after one untimed warm-up step)
LABEL_ROWS = 1024  # phrases and as many sentences labelled by the probe teacher
LABEL_CHUNK = 64  # rows labelled per timed call: neighbouring lengths, as the real batches have
PROBE_SECONDS = 15.0  # each probe stops after the chunk that passes this: bounded when busy
GROUP_POOL = 5000  # texts sampled to draw the student's one-length batches from
STUDENT_BATCHES = (24, 8)  # student batches of phrases and of sentences, one timed at a time


def words(text: str) -> int:
    """A text's length as the plan counts it (PTB text: tokens are space-separated)."""
    return len(text.split())


def sample(texts: Sequence[str], count: int, seed: int = 0) -> list[str]:
    """A fixed sample (with repeats where ``texts`` is short): the same on every run."""
    rng = random.Random(seed)
    if len(texts) >= count:
        return rng.sample(list(texts), count)
    return [texts[rng.randrange(len(texts))] for _ in range(count)]


def length_groups(
    texts: Sequence[str], groups: int, size: int, length: Callable[[str], int], seed: int = 0
) -> list[list[str]]:
    """``groups`` runs of ``size`` texts, each run of one ``length`` (the student's tokens),
    lengths drawn as a fixed sample of the texts has them: the student's real batches are of
    one length (`equal_length_batches`); a batch of mixed lengths is packed, and slower."""
    pool_texts = sample(texts, min(len(texts), GROUP_POOL), seed)
    by_length: dict[int, list[str]] = {}
    for text in pool_texts:
        by_length.setdefault(length(text), []).append(text)
    rng = random.Random(seed)
    out: list[list[str]] = []
    for _ in range(groups):
        pool = by_length[length(pool_texts[rng.randrange(len(pool_texts))])]
        out.append([pool[rng.randrange(len(pool))] for _ in range(size)])
    return out


def rate(
    chunks: Sequence[Any], run: Callable[[Any], object], amount: Callable[[Any], float]
) -> float:
    """Amount per second over ``chunks`` run in order, stopping after the chunk that passes
    PROBE_SECONDS: a fixed sample, measured for at most about that long however busy the
    machine is."""
    started, done = time.perf_counter(), 0.0
    for chunk in chunks:
        run(chunk)
        done += amount(chunk)
        if time.perf_counter() - started >= PROBE_SECONDS:
            break
    return done / max(time.perf_counter() - started, 1e-6)


def fine_tune_steps_per_s(
    lengths: Sequence[int], batch_size: int, step: Callable[[list[int]], None]
) -> float:
    """Steps per second of an epoch of `training.teacher.fine_tune` over rows of these
    ``lengths`` (characters), from TEACHER_STEPS of its batches. The batches are drawn as the
    fine-tune draws them (length-bucketed: random rows padded to their longest ran ~30% slow),
    and since a step's cost follows its padded length and a few batches' lengths are not an
    epoch's, the probe measures padded characters per second and divides by an epoch's mean
    padded characters per step."""
    order = batch_order(lengths, batch_size, torch.Generator().manual_seed(0))

    def padded(rows: list[int]) -> int:
        return max(lengths[i] for i in rows) * len(rows)

    per_step = sum(map(padded, order)) / len(order)
    step(order[0])  # warm-up: first-use allocations, the optimiser's state
    return rate(order[1 : TEACHER_STEPS + 1], step, padded) / per_step


def teacher_rates(
    sentences: Sequence[str], labels: Sequence[int], phrases: Sequence[str], batch_size: int
) -> tuple[float, float]:
    """(fine-tuning steps/s, labelling words/s) of a throwaway teacher, as the real stages run
    them (bf16 autocast where native; length-sorted labelling batches)."""
    from training.precision import resolve_precision
    from training.teacher import Teacher, teacher_logits, train_step

    device = torch.device("cpu")
    precision = resolve_precision("auto", device)
    teacher = Teacher()
    teacher.train()
    optimizer = torch.optim.AdamW(teacher.parameters(), lr=1e-5, fused=True)

    def step(rows: list[int]) -> None:
        texts, answers = [sentences[i] for i in rows], [labels[i] for i in rows]
        train_step(teacher, optimizer, texts, answers, precision, device)

    steps = fine_tune_steps_per_s([len(t) for t in sentences], batch_size, step)
    label = label_words_per_s(
        phrases, sentences, lambda chunk: teacher_logits(teacher, chunk, progress=False)
    )
    return steps, label


def label_words_per_s(
    phrases: Sequence[str], sentences: Sequence[str], label: Callable[[list[str]], object]
) -> float:
    """Words per second (LABEL_ROW_TOKENS more per row) of the teacher's labelling, timed as
    the real stage runs: `training.teacher.teacher_logits` sorts every row by length, so its
    batches carry little padding. The probe labels a fixed sample of phrases and sentences
    sorted the same way, in chunks of neighbouring lengths (chunks of random rows, each padded
    to its longest sentence, read 1,372 words/s on the AMD EPYC without AVX-512 where the run
    labelled 3,430). The chunks go shortest, longest, next shortest...: a probe cut short by a
    busy machine still times both kinds."""
    texts = sorted(
        (
            t
            for pair in zip(sample(phrases, LABEL_ROWS), sample(sentences, LABEL_ROWS), strict=True)
            for t in pair
        ),
        key=len,
    )
    chunks = [texts[i : i + LABEL_CHUNK] for i in range(0, len(texts), LABEL_CHUNK)]
    ends = [chunks[i // 2] if i % 2 == 0 else chunks[-1 - i // 2] for i in range(len(chunks))]
    return rate(ends, label, lambda chunk: sum(words(t) + LABEL_ROW_TOKENS for t in chunk))


def measure(
    sentences: Sequence[str],
    labels: Sequence[int],
    phrases: Sequence[str],
    student_probe: Callable[[], Callable[[list[str]], None]],
    student_length: Callable[[str], int],
    with_teacher: bool,
    teacher_batch: int,
    student_batch: int,
) -> Throughput:
    """All three rates. ``student_probe()`` builds a throwaway student (inside the forked RNG:
    its initialisation must not move the seed's stream) and returns a function that trains it
    once over given texts; ``student_length`` is a text's length in the student's tokens.
    Without a teacher its rates are not measured (nor needed): 0."""
    with torch.random.fork_rng(devices=[]):
        steps, label = (
            teacher_rates(sentences, labels, phrases, teacher_batch) if with_teacher else (0, 0)
        )
        phrase_batches, sentence_batches = STUDENT_BATCHES
        groups = length_groups(phrases, phrase_batches, student_batch, student_length)
        if with_teacher:  # perturbed sentences join the phrases, one batch in four
            extra = length_groups(sentences, sentence_batches, student_batch, student_length, 1)
            groups = _interleave(groups, extra)
        student_pass = student_probe()
        student_pass(groups[0])  # warm-up: first-use allocations and kernel choice
        student = rate(groups[1:], student_pass, lambda batch: sum(map(words, batch)))
    return Throughput(steps, label, student)


def _interleave(many: list[list[str]], few: list[list[str]]) -> list[list[str]]:
    """``few`` spread evenly among ``many``: any prefix of the probe has both kinds."""
    every = max(1, len(many) // max(len(few), 1))
    out: list[list[str]] = []
    for i, group in enumerate(many):
        out.append(group)
        if (i + 1) % every == 0 and few:
            out.append(few.pop(0))
    return out + few
