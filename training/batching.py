"""Rows grouped into batches of similar length: little padding, so little wasted compute.

    python -m training.train_sentiment --profile tiny --out /tmp/tiny   # trains with these batches

Shared by the sentiment trainer (shuffled buckets for training, sorted batches for scoring)
and the teacher (sorted batches for labelling), which batch texts the same way.
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
