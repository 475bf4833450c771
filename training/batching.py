"""Rows grouped into batches of similar length: little padding, so little wasted compute.

    python -m training.train_sentiment --profile tiny --out /tmp/tiny   # trains with these batches

Shared by the sentiment trainer (batches of one length for training, sorted batches for
scoring) and the teacher (shuffled buckets for fine-tuning, sorted batches for labelling).
"""

from __future__ import annotations

from collections.abc import Sequence

import torch

BUCKET_BATCHES = 50  # batches whose texts are sorted by length together (less padding)


def batch_order(
    lengths: Sequence[int], batch_size: int, generator: torch.Generator | None
) -> list[list[int]]:
    """Row indices grouped into batches of similar length.

    Rows are shuffled, sorted by length within windows of ``BUCKET_BATCHES`` batches, cut into
    batches, and the batches shuffled: short phrases then run with short batches, which on a
    CPU saves most of the per-time-step cost. ``generator=None`` keeps the order (evaluation).
    """
    if generator is None:
        order = sorted(range(len(lengths)), key=lengths.__getitem__)
        return [order[i : i + batch_size] for i in range(0, len(order), batch_size)]
    order = torch.randperm(len(lengths), generator=generator).tolist()
    window = batch_size * BUCKET_BATCHES
    batches: list[list[int]] = []
    for start in range(0, len(order), window):
        part = sorted(order[start : start + window], key=lengths.__getitem__)
        batches += [part[i : i + batch_size] for i in range(0, len(part), batch_size)]
    shuffled = torch.randperm(len(batches), generator=generator).tolist()
    return [batches[i] for i in shuffled]


def equal_length_batches(
    lengths: Sequence[int], batch_size: int, generator: torch.Generator
) -> list[list[int]]:
    """Shuffled batches whose rows all have one length, where there are enough of that length.

    A batch without padding needs no packing, and an unpacked LSTM runs on oneDNN's fused
    kernels (in bf16 under bf16 autocast) where a packed one steps through time:
    `python -m benchmarks.student_step` measures the student's step both ways. Rows are
    shuffled within their length, each length cut into full batches, and the remainders (under
    ``batch_size`` rows per length, a few percent of the rows) pooled into length-sorted
    batches that are packed.
    """
    by_length: dict[int, list[int]] = {}
    for row in torch.randperm(len(lengths), generator=generator).tolist():
        by_length.setdefault(lengths[row], []).append(row)
    batches: list[list[int]] = []
    remainder: list[int] = []
    for rows in by_length.values():
        full = len(rows) - len(rows) % batch_size
        batches += [rows[i : i + batch_size] for i in range(0, full, batch_size)]
        remainder += rows[full:]
    remainder.sort(key=lengths.__getitem__)
    batches += [remainder[i : i + batch_size] for i in range(0, len(remainder), batch_size)]
    shuffled = torch.randperm(len(batches), generator=generator).tolist()
    return [batches[i] for i in shuffled]
