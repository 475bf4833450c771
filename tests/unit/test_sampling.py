"""The sampler draws from the distribution it claims to, with top-k, top-p and temperature."""

from __future__ import annotations

import torch

from models import sampling
from models.sampling import UniformStream, draw_uniforms, sample

N = 40_000


def empirical(logits: torch.Tensor, temperature=1.0, top_k=0, top_p=1.0, seed=0) -> torch.Tensor:
    generator = torch.Generator().manual_seed(seed)
    rows = logits.expand(N, -1)
    tokens = sample(
        rows,
        torch.full((N,), float(temperature)),
        torch.full((N,), top_k, dtype=torch.long),
        torch.full((N,), float(top_p)),
        torch.rand(N, generator=generator, dtype=torch.float64),
    )
    return torch.bincount(tokens, minlength=logits.shape[-1]).double() / N


def assert_matches(observed: torch.Tensor, expected: torch.Tensor) -> None:
    # Total variation distance: with N = 40k draws its noise is ~0.005; a wrong sampler
    # (off by a token, unfiltered, untempered) is off by far more.
    assert 0.5 * (observed - expected).abs().sum().item() < 0.015, (observed, expected)
    assert (observed[expected == 0] == 0).all(), "drew a token that has no probability"


LOGITS = torch.tensor([2.0, 1.0, 0.5, 0.0, -1.0, -3.0])


def test_plain_sampling_follows_the_softmax():
    assert_matches(empirical(LOGITS), torch.softmax(LOGITS.double(), 0))


def test_temperature_sharpens_and_flattens():
    for temperature in (0.5, 2.0):
        expected = torch.softmax(LOGITS.double() / temperature, 0)
        assert_matches(empirical(LOGITS, temperature=temperature), expected)


def test_top_k_keeps_only_the_k_most_likely():
    expected = torch.softmax(LOGITS.double(), 0)
    expected[3:] = 0
    assert_matches(empirical(LOGITS, top_k=3), expected / expected.sum())


def test_top_p_keeps_the_smallest_set_reaching_p():
    probs = torch.softmax(LOGITS.double(), 0)  # 0.57, 0.21, 0.13, 0.08, ...
    expected = probs.clone()
    expected[2:] = 0  # 0.57 + 0.21 >= 0.7: the first two
    assert_matches(empirical(LOGITS, top_p=0.7), expected / expected.sum())


def test_each_row_follows_its_own_parameters_in_a_mixed_batch():
    # (1.0, 2, 0.7): the nucleus is taken among the top 2 renormalised (0.73 >= 0.7 keeps one).
    settings = [(1.0, 0, 1.0), (0.5, 2, 1.0), (2.0, 0, 0.7), (1.0, 2, 0.7), (1.0, 4, 0.8)]
    rows = N * len(settings) // 2
    parameters = [settings[row % len(settings)] for row in range(rows)]
    generator = torch.Generator().manual_seed(3)
    tokens = sample(
        LOGITS.expand(rows, -1),
        torch.tensor([t for t, _, _ in parameters]),
        torch.tensor([k for _, k, _ in parameters]),
        torch.tensor([p for _, _, p in parameters]),
        torch.rand(rows, generator=generator, dtype=torch.float64),
    )
    for index, (temperature, top_k, top_p) in enumerate(settings):
        expected = torch.softmax(LOGITS.double() / temperature, 0)
        if top_k:
            expected[top_k:] = 0
        expected /= expected.sum()
        expected[(expected.cumsum(0) - expected) >= top_p] = 0
        group = tokens[index :: len(settings)]
        observed = torch.bincount(group, minlength=LOGITS.numel()).double() / group.numel()
        assert_matches(observed, expected / expected.sum())


def test_temperature_zero_is_argmax_and_rows_are_independent():
    logits = torch.tensor([[0.0, 3.0, 1.0], [5.0, 0.0, 0.0], [0.0, 0.0, 9.0]])
    tokens = sample(
        logits,
        torch.tensor([0.0, 1.0, 0.0]),
        torch.zeros(3, dtype=torch.long),
        torch.ones(3),
        torch.tensor([0.99, 0.0, 0.5], dtype=torch.float64),
    )
    assert tokens.tolist() == [1, 0, 2]


def test_row_streams_are_reproducible_and_drawn_in_blocks_like_one_by_one():
    first = draw_uniforms([UniformStream(7), UniformStream(8)])
    again = draw_uniforms([UniformStream(7), UniformStream(8)])
    assert torch.equal(first, again)
    assert first[0] != first[1]
    # Crossing block boundaries changes nothing: the numbers of one torch.rand per token.
    stream, generator = UniformStream(5, block=4), torch.Generator().manual_seed(5)
    one_by_one = [torch.rand(1, generator=generator, dtype=torch.float64).item() for _ in range(11)]
    assert [stream.next() for _ in range(11)] == one_by_one


def test_ranking_only_the_head_draws_the_same_tokens_as_ranking_every_token(monkeypatch):
    # 512 tokens like the LM's vocabulary; flat rows (high temperature, small top-k absent)
    # have nuclei that reach past the 64-token head and take the full sort instead.
    generator = torch.Generator().manual_seed(5)
    rows, vocab = 4000, 512
    logits = (
        torch.randn(rows, vocab, generator=generator) * torch.rand(rows, 1, generator=generator) * 6
    )
    pick = torch.randint(0, 4, (3, rows), generator=generator)
    temperature = torch.tensor([0.7, 1.0, 1.2, 1.5])[pick[0]]
    top_k = torch.tensor([0, 20, 50, 100])[pick[1]]
    top_p = torch.tensor([1.0, 0.9, 0.95, 0.5])[pick[2]]
    uniforms = torch.rand(rows, generator=generator, dtype=torch.float64)
    head = sampling.HEAD
    head_first = sample(logits, temperature, top_k, top_p, uniforms)
    monkeypatch.setattr(sampling, "HEAD", vocab)
    fully_ranked = sample(logits, temperature, top_k, top_p, uniforms)
    assert torch.equal(head_first, fully_ranked)
    # Both paths ran: some nucleus-only rows end inside the head, some reach past it.
    probs = torch.softmax(logits / temperature[:, None], dim=-1)
    head_mass = probs.topk(head, dim=-1).values.sum(dim=-1)
    nucleus_only = (top_k == 0) & (top_p < 1)
    assert (nucleus_only & (head_mass > top_p + 0.05)).any()
    assert (nucleus_only & (head_mass < top_p - 0.05)).any()
