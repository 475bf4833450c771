"""The budget's teacher probes: a dozen fine-tuning steps must predict a whole epoch's steps per
second, and a few labelling chunks the whole labelling's words per second, or the planner drops
(or keeps) a teacher on a wrong figure. Measured on the AMD EPYC without AVX-512: the real
fine-tune ran 1.67 steps/s, a probe of random rows said 1.11; the real labelling 3,430 words/s,
a probe of random chunks 1,372."""

from __future__ import annotations

import random
from types import SimpleNamespace

import pytest
import torch

from training import throughput
from training.batching import batch_order

SECONDS_PER_PADDED_CHAR = 1e-4  # a step costs its batch's padded characters, no more


@pytest.fixture
def clock(monkeypatch) -> SimpleNamespace:
    """The probes' clock, moved only by the fake work below: what each probe times is exactly
    the cost the test charges."""
    fake = SimpleNamespace(now=0.0)
    monkeypatch.setattr(throughput, "time", SimpleNamespace(perf_counter=lambda: fake.now))
    return fake


def sst2_like_lengths(rows: int = 6920, seed: int = 1) -> list[int]:
    """Sentence lengths in characters spread as SST-2's are (short to ~250, most near 100)."""
    rng = random.Random(seed)
    return [max(5, min(260, int(rng.lognormvariate(4.5, 0.5)))) for _ in range(rows)]


@pytest.mark.parametrize("fine_tune_seed", [13, 14])
def test_the_probe_predicts_an_epochs_steps_per_second(clock, fine_tune_seed):
    lengths = sst2_like_lengths()

    def step(rows: list[int]) -> None:  # costs what its padding costs
        clock.now += SECONDS_PER_PADDED_CHAR * max(lengths[i] for i in rows) * len(rows)

    probed = throughput.fine_tune_steps_per_s(lengths, 32, step)

    # The epoch the fine-tune runs (`training.teacher.fine_tune` draws its batches with the
    # run's seed): its steps over the seconds its batches cost.
    epoch = batch_order(lengths, 32, torch.Generator().manual_seed(fine_tune_seed))
    seconds = sum(SECONDS_PER_PADDED_CHAR * max(lengths[i] for i in b) * len(b) for b in epoch)
    assert probed == pytest.approx(len(epoch) / seconds, rel=0.05)


SECONDS_PER_PADDED_TOKEN = 1e-5  # labelling a batch costs its padded tokens


def padded_label_seconds(texts: list[str]) -> float:
    """What `training.teacher.teacher_logits` costs on ``texts``: batches of 256 rows sorted by
    length, each padded to its longest row's tokens (its words, [CLS] and [SEP])."""
    tokens = [len(t.split()) + 2 for t in texts]
    batches = batch_order([len(t) for t in texts], 256, None)
    return sum(SECONDS_PER_PADDED_TOKEN * max(tokens[i] for i in b) * len(b) for b in batches)


def test_the_label_probe_predicts_the_labellings_words_per_second(clock):
    rng = random.Random(2)
    sentences = [" ".join(["w"] * max(2, n // 5)) for n in sst2_like_lengths()]
    phrases = [" ".join(["w"] * rng.randint(1, 12)) for _ in range(60000)]

    def label(chunk: list[str]) -> None:
        clock.now += padded_label_seconds(chunk)

    probed = throughput.label_words_per_s(phrases, sentences, label)
    for labelled in (sentences, phrases[:20000] + sentences):  # the plans' two kinds of work
        units = sum(len(t.split()) + throughput.LABEL_ROW_TOKENS for t in labelled)
        assert probed == pytest.approx(units / padded_label_seconds(labelled), rel=0.15)
