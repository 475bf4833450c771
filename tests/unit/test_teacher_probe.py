"""The budget's teacher probe: a dozen fine-tuning steps must predict a whole epoch's steps per
second, or the planner drops (or keeps) a teacher on a wrong figure. Measured on the AMD EPYC
without AVX-512: the real fine-tune ran 1.67 steps/s, a probe of random rows said 1.11."""

from __future__ import annotations

import random
from types import SimpleNamespace

import pytest
import torch

from training import throughput
from training.batching import batch_order

SECONDS_PER_PADDED_CHAR = 1e-4  # a step costs its batch's padded characters, no more


def sst2_like_lengths(rows: int = 6920, seed: int = 1) -> list[int]:
    """Sentence lengths in characters spread as SST-2's are (short to ~250, most near 100)."""
    rng = random.Random(seed)
    return [max(5, min(260, int(rng.lognormvariate(4.5, 0.5)))) for _ in range(rows)]


@pytest.mark.parametrize("fine_tune_seed", [13, 14])
def test_the_probe_predicts_an_epochs_steps_per_second(monkeypatch, fine_tune_seed):
    clock = SimpleNamespace(now=0.0)
    monkeypatch.setattr(throughput, "time", SimpleNamespace(perf_counter=lambda: clock.now))
    lengths = sst2_like_lengths()

    def step(rows: list[int]) -> None:  # costs what its padding costs
        clock.now += SECONDS_PER_PADDED_CHAR * max(lengths[i] for i in rows) * len(rows)

    probed = throughput.fine_tune_steps_per_s(lengths, 32, step)

    # The epoch the fine-tune runs (`training.teacher.fine_tune` draws its batches with the
    # run's seed): its steps over the seconds its batches cost.
    epoch = batch_order(lengths, 32, torch.Generator().manual_seed(fine_tune_seed))
    seconds = sum(SECONDS_PER_PADDED_CHAR * max(lengths[i] for i in b) * len(b) for b in epoch)
    assert probed == pytest.approx(len(epoch) / seconds, rel=0.05)
